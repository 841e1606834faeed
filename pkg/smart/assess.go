package smart

import (
	"fmt"
	"slices"
	"strings"
)

// Severity ranks a Finding.
type Severity uint8

// Severities, in increasing order. Info carries evidence a fleet rule may
// weigh (a counter that is often non-zero on healthy drives); Warning is a
// drive that has started to lose sectors or data; Critical is a drive that
// says it is failing or has stopped protecting data.
const (
	SeverityInfo Severity = iota + 1
	SeverityWarning
	SeverityCritical
)

// String returns "info", "warning" or "critical".
func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarning:
		return "warning"
	case SeverityCritical:
		return "critical"
	}
	return fmt.Sprintf("Severity(%d)", uint8(s))
}

// MarshalText makes severities readable in JSON and logs.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one verdict of the drive about itself.
type Finding struct {
	// Code is stable and dotted: "smart.overall_failed",
	// "ata.reallocated_sectors", "nvme.critical_warning.spare", ...
	Code     string
	Severity Severity
	Detail   string
	// Attribute is the ATA attribute ID the finding is about, 0 otherwise.
	Attribute uint8
	// Value is the count or level that raised the finding (a raw attribute
	// value, media errors, percentage used), for rules that compare it.
	Value uint64
}

// The codes Assess can return.
const (
	CodeOverallFailed = "smart.overall_failed"

	CodeATAPrefailFailingNow  = "ata.prefail_failing_now"
	CodeATAPrefailFailedPast  = "ata.prefail_failed_past"
	CodeATAOldAgeFailingNow   = "ata.oldage_failing_now"
	CodeATAOldAgeFailedPast   = "ata.oldage_failed_past"
	CodeATAReallocated        = "ata.reallocated_sectors"
	CodeATAReportedUncorrect  = "ata.reported_uncorrect"
	CodeATACommandTimeout     = "ata.command_timeout"
	CodeATAPending            = "ata.pending_sectors"
	CodeATAOfflineUncorrect   = "ata.offline_uncorrectable"
	CodeATAErrorLog           = "ata.error_log"
	CodeATAErrorLogUNC        = "ata.error_log.uncorrectable"
	CodeATASelfTestFailed     = "ata.selftest_failed"
	CodeNVMeCriticalWarning   = "nvme.critical_warning" // + "." + bit name
	CodeNVMeSpareBelow        = "nvme.spare_below_threshold"
	CodeNVMePercentageUsed    = "nvme.percentage_used"
	CodeNVMeMediaErrors       = "nvme.media_errors"
	CodeSCSIGrownDefects      = "scsi.grown_defects"
	CodeSCSIUncorrectedErrors = "scsi.uncorrected_errors"
)

// Assess returns the drive's own verdicts on its health, most severe first.
// It judges one reading: it has no thresholds of its own beyond the drive's
// (any non-zero sector or error counter counts), no history and no peers.
// A report of a drive left in standby has no data and gets no findings.
func Assess(r *Report) []Finding {
	if r == nil || r.Standby {
		return nil
	}
	var out []Finding
	add := func(f Finding) { out = append(out, f) }

	if r.OverallPassed != nil && !*r.OverallPassed {
		// For NVMe smartctl derives "failed" from the critical warning byte;
		// its bits below say more, so the overall verdict would only repeat
		// them.
		if r.NVMe == nil || r.NVMe.CriticalWarning == 0 {
			add(Finding{Code: CodeOverallFailed, Severity: SeverityCritical,
				Detail: "the drive's overall health self-assessment failed"})
		}
	}
	if h := r.ATA; h != nil {
		assessATA(h, add)
	}
	if h := r.NVMe; h != nil {
		assessNVMe(h, add)
	}
	if h := r.SCSI; h != nil {
		if d := h.GrownDefects; d != nil && *d > 0 {
			add(Finding{Code: CodeSCSIGrownDefects, Severity: SeverityWarning, Value: *d,
				Detail: fmt.Sprintf("%d blocks in the grown defect list", *d)})
		}
		if n, ok := h.UncorrectedErrors(); ok && n > 0 {
			add(Finding{Code: CodeSCSIUncorrectedErrors, Severity: SeverityWarning, Value: n,
				Detail: fmt.Sprintf("%d uncorrected read/write/verify errors", n)})
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return int(b.Severity) - int(a.Severity) })
	return out
}

func assessATA(h *ATAHealth, add func(Finding)) {
	for _, a := range h.Attributes {
		kind := "old-age"
		if a.Prefailure {
			kind = "pre-failure"
		}
		where := fmt.Sprintf("%s attribute %d %s", kind, a.ID, a.Name)
		switch {
		case a.FailedNow && a.Prefailure:
			add(Finding{Code: CodeATAPrefailFailingNow, Severity: SeverityCritical, Attribute: a.ID, Value: uint64(a.Value),
				Detail: fmt.Sprintf("%s is at or below its threshold: value %d, threshold %d", where, a.Value, a.Threshold)})
		case a.FailedNow:
			add(Finding{Code: CodeATAOldAgeFailingNow, Severity: SeverityWarning, Attribute: a.ID, Value: uint64(a.Value),
				Detail: fmt.Sprintf("%s is at or below its threshold: value %d, threshold %d", where, a.Value, a.Threshold)})
		case a.FailedPast && a.Prefailure:
			add(Finding{Code: CodeATAPrefailFailedPast, Severity: SeverityWarning, Attribute: a.ID, Value: uint64(a.Worst),
				Detail: fmt.Sprintf("%s was at or below its threshold in the past: worst %d, threshold %d", where, a.Worst, a.Threshold)})
		case a.FailedPast:
			add(Finding{Code: CodeATAOldAgeFailedPast, Severity: SeverityInfo, Attribute: a.ID, Value: uint64(a.Worst),
				Detail: fmt.Sprintf("%s was at or below its threshold in the past: worst %d, threshold %d", where, a.Worst, a.Threshold)})
		}
	}

	// The five counters Backblaze found to precede failures. 188 is info:
	// it counts timeouts the host saw, which a cable or controller causes
	// as often as the drive, and Seagate packs three counters into it.
	counters := []struct {
		id   uint8
		code string
		sev  Severity
		what string
		get  func() (uint64, bool)
	}{
		{AttrReallocatedSectors, CodeATAReallocated, SeverityWarning, "reallocated sectors", h.ReallocatedSectors},
		{AttrReportedUncorrect, CodeATAReportedUncorrect, SeverityWarning, "uncorrectable errors reported", h.ReportedUncorrect},
		{AttrCommandTimeout, CodeATACommandTimeout, SeverityInfo, "command timeouts", h.CommandTimeout},
		{AttrPendingSectors, CodeATAPending, SeverityWarning, "sectors pending reallocation", h.PendingSectors},
		{AttrOfflineUncorrectable, CodeATAOfflineUncorrect, SeverityWarning, "sectors uncorrectable in offline scan", h.OfflineUncorrectable},
	}
	for _, c := range counters {
		if v, ok := c.get(); ok && v > 0 {
			a, _ := h.Attr(c.id)
			add(Finding{Code: c.code, Severity: c.sev, Attribute: c.id, Value: v,
				Detail: fmt.Sprintf("attribute %d %s: %d (raw %s; %s)", c.id, a.Name, v, a.RawString, c.what)})
		}
	}

	if h.ErrorLogCount > 0 {
		// Most logged errors are interface CRC errors (ICRC) or commands the
		// host issued that the drive refused: evidence, not a verdict. An
		// uncorrectable read (UNC) is the drive losing data.
		add(Finding{Code: CodeATAErrorLog, Severity: SeverityInfo, Value: h.ErrorLogCount,
			Detail: fmt.Sprintf("%d errors in the ATA error log%s", h.ErrorLogCount, newestError(h.ErrorLog))})
		var unc uint64
		for _, e := range h.ErrorLog {
			if hasToken(e.Description, "UNC") {
				unc++
			}
		}
		if unc > 0 {
			add(Finding{Code: CodeATAErrorLogUNC, Severity: SeverityWarning, Value: unc,
				Detail: fmt.Sprintf("%d of the logged errors are uncorrectable reads (UNC)%s", unc, newestError(h.ErrorLog))})
		}
	}
	if h.SelfTestErrors > 0 {
		add(Finding{Code: CodeATASelfTestFailed, Severity: SeverityWarning, Value: h.SelfTestErrors,
			Detail: fmt.Sprintf("%d failed self-tests not superseded by a passed extended test", h.SelfTestErrors)})
	}
}

func newestError(log []ATAErrorLogEntry) string {
	if len(log) == 0 {
		return ""
	}
	e := log[0]
	if e.Description == "" {
		return fmt.Sprintf("; newest at %d power-on hours", e.LifetimeHours)
	}
	return fmt.Sprintf("; newest at %d power-on hours: %s", e.LifetimeHours, e.Description)
}

// hasToken reports whether s contains tok as a whole word ("Error: UNC at
// LBA", "Error: ICRC, ABRT").
func hasToken(s, tok string) bool {
	return slices.Contains(strings.FieldsFunc(s, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9')
	}), tok)
}

func assessNVMe(h *NVMeHealth, add func(Finding)) {
	bits := []struct {
		bit  NVMeWarning
		name string
		sev  Severity
		what string
	}{
		{NVMeWarnSpare, "spare", SeverityCritical, "available spare is below its threshold"},
		// Temperature is the environment more often than the drive.
		{NVMeWarnTemperature, "temperature", SeverityWarning, "a temperature is outside its threshold"},
		{NVMeWarnReliability, "reliability", SeverityCritical, "NVM subsystem reliability is degraded by media or internal errors"},
		{NVMeWarnReadOnly, "read_only", SeverityCritical, "media has been placed in read-only mode"},
		{NVMeWarnVolatileBackup, "volatile_backup", SeverityCritical, "volatile memory backup device has failed"},
		{NVMeWarnPersistentMemory, "persistent_memory", SeverityCritical, "persistent memory region is read-only or unreliable"},
		{1 << 6, "reserved6", SeverityWarning, "reserved bit 6 is set"},
		{1 << 7, "reserved7", SeverityWarning, "reserved bit 7 is set"},
	}
	for _, b := range bits {
		if h.CriticalWarning.Has(b.bit) {
			add(Finding{Code: CodeNVMeCriticalWarning + "." + b.name, Severity: b.sev, Value: uint64(h.CriticalWarning),
				Detail: fmt.Sprintf("critical warning 0x%02x: %s", uint8(h.CriticalWarning), b.what)})
		}
	}
	// Bit 0 is the drive's own comparison; compare as well for drives that
	// do not set it.
	if h.AvailableSpare < h.AvailableSpareThreshold && !h.CriticalWarning.Has(NVMeWarnSpare) {
		add(Finding{Code: CodeNVMeSpareBelow, Severity: SeverityCritical, Value: uint64(h.AvailableSpare),
			Detail: fmt.Sprintf("available spare %d%% is below its threshold %d%%", h.AvailableSpare, h.AvailableSpareThreshold)})
	}
	if h.PercentageUsed >= 100 {
		add(Finding{Code: CodeNVMePercentageUsed, Severity: SeverityWarning, Value: uint64(h.PercentageUsed),
			Detail: fmt.Sprintf("%d%% of the rated endurance is used", h.PercentageUsed)})
	}
	if h.MediaErrors > 0 {
		add(Finding{Code: CodeNVMeMediaErrors, Severity: SeverityWarning, Value: h.MediaErrors,
			Detail: fmt.Sprintf("%d unrecovered media and data integrity errors", h.MediaErrors)})
	}
}
