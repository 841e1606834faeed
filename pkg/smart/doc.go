// Package smart owns hwheal's normalized model of a drive's health and the
// parsers that fill it: smartctl's JSON output (smartctl 7+, -a/-x), nvme-cli's
// `nvme smart-log -o json`, and the raw pages a native reader fetches with
// pass-through ioctls (ATA SMART READ DATA and READ THRESHOLDS, ATA IDENTIFY
// DEVICE, the NVMe SMART / Health Information log page 02h).
//
// It also owns Assess, the drive's own verdicts read from that model: an
// overall-health failure, attributes at or below their thresholds, NVMe
// critical-warning bits, and the non-zero error counters that precede
// failures (reallocated, pending and uncorrectable sectors, media errors).
// Fleet rules (outliers among peers, rates over time) are not here: they
// belong to the detectors that consume Findings.
//
// The package does no device I/O and imports nothing from the project: the
// agent's SMART source reads devices (never waking a spun-down disk) and maps
// a Report to observations.
package smart
