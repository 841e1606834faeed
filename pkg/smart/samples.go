package smart

import "strconv"

// ObservationSource is the source name of the observations that carry these
// samples: the agent's SMART source, and saved smartctl files or Backblaze
// rows replayed offline.
const ObservationSource = "smart"

// Sample names. Every observation carries SampleStandby and
// SampleReadError; the rest are there when the drive was read and reported
// them. Counters are totals over the drive's life.
const (
	// 1 when the drive was in a low-power mode and was left alone (no
	// other sample then), 0 when it was read.
	SampleStandby = "standby"
	// 1 when the drive could not be read this interval (the error is
	// logged), 0 otherwise; SampleReadTimeout is 1 when that was because
	// the read did not finish in time or an earlier one is still stuck.
	SampleReadError   = "read_error"
	SampleReadTimeout = "read_timeout"
	// 1 when smartctl read the drive, 0 when the native reader did.
	SampleReadBySmartctl = "read_by_smartctl"

	// The drive's own overall verdict: 1 passed, 0 failed (ATA SMART
	// RETURN STATUS; NVMe: critical warning 0; SCSI: informational
	// exceptions).
	SampleSmartPassed  = "smart_passed"
	SampleTemperature  = "temperature_celsius"
	SamplePowerOnHours = "power_on_hours"

	// ATA: every attribute the drive reports, as
	// ata_attr_<id>_value, _worst, _thresh (normalized, higher is better,
	// at or below thresh fails; thresh 0 never fails) and _raw (the 48 raw
	// bits). The counters below are read from the raw values the way
	// smartctl shows them (5: low 16 bits).
	SampleATAReallocated          = "ata_reallocated_sectors"   // 5
	SampleATAReportedUncorrect    = "ata_reported_uncorrect"    // 187
	SampleATACommandTimeout       = "ata_command_timeout"       // 188
	SampleATAPending              = "ata_pending_sectors"       // 197
	SampleATAOfflineUncorrectable = "ata_offline_uncorrectable" // 198
	SampleATAUDMACRCErrors        = "ata_udma_crc_errors"       // 199

	// ATA, the drive's own verdict per attribute (smartctl's WHEN_FAILED
	// column) for the attributes that predict failure: how many
	// pre-failure attributes are at or below their threshold now
	// (FAILING_NOW, what fails the overall verdict), and how many were in
	// the past but are not now (In_the_past: their worst value was). Only
	// the pre-failure flag tells these apart from old-age attributes at
	// their threshold, and no other sample carries it. Every reading of an
	// attribute table has both, 0 included.
	SampleATAPrefailFailingNow = "ata_prefail_failing_now"
	SampleATAPrefailFailedPast = "ata_prefail_failed_past"
	// ATA logs, where the reading has them (smartctl -a or -x; the agent's
	// own readings leave the logs alone). SampleATASelfTestErrors is the
	// number of failed self-tests no later passed extended test superseded,
	// sent when there is one. SampleATAErrorLogLastUNC is the number the
	// drive gave the newest uncorrectable read (UNC) its error log kept
	// (its lifetime error count at the time), 0 when none of the kept
	// entries is one; sent when the log has entries. It grows with every
	// new UNC the drive logs, also once the log holds nothing else.
	SampleATASelfTestErrors  = "ata_selftest_errors"
	SampleATAErrorLogLastUNC = "ata_error_log_last_unc"

	// NVMe SMART / Health Information log (02h).
	SampleNVMeCriticalWarning       = "nvme_critical_warning" // the bit mask
	SampleNVMeAvailableSpare        = "nvme_available_spare"  // percent
	SampleNVMeAvailableSpareThresh  = "nvme_available_spare_threshold"
	SampleNVMePercentageUsed        = "nvme_percentage_used"
	SampleNVMeMediaErrors           = "nvme_media_errors"
	SampleNVMeUnsafeShutdowns       = "nvme_unsafe_shutdowns"
	SampleNVMePowerCycles           = "nvme_power_cycles"
	SampleNVMeErrorLogEntries       = "nvme_num_err_log_entries"
	SampleNVMeDataUnitsRead         = "nvme_data_units_read" // thousands of 512-byte units
	SampleNVMeDataUnitsWritten      = "nvme_data_units_written"
	SampleNVMeHostReadCommands      = "nvme_host_read_commands"
	SampleNVMeHostWriteCommands     = "nvme_host_write_commands"
	SampleNVMeControllerBusyMinutes = "nvme_controller_busy_minutes"
	SampleNVMeWarningTempMinutes    = "nvme_warning_temp_minutes"
	SampleNVMeCriticalTempMinutes   = "nvme_critical_temp_minutes"
	SampleNVMeEnduranceGroupWarning = "nvme_endurance_group_critical_warning"

	// SCSI (read by smartctl).
	SampleSCSIGrownDefects       = "scsi_grown_defects"
	SampleSCSIUncorrectedErrors  = "scsi_uncorrected_errors"
	SampleSCSIPercentageUsedEndu = "scsi_percentage_used_endurance"
)

// Sample is one named value of a drive's reading.
type Sample struct {
	Name  string
	Value float64
}

// AttrSample names an ATA attribute sample: ata_attr_<id>_<field>, field
// value, worst, thresh or raw.
func AttrSample(id uint8, field string) string {
	return "ata_attr_" + strconv.Itoa(int(id)) + "_" + field
}

// Samples turns a drive's health into samples, in a stable order: the
// verdict, temperature and hours, then every ATA attribute, the named ATA
// counters, the pre-failure verdicts and the logs, the NVMe health log,
// the SCSI counters.
func Samples(rep *Report) []Sample {
	var out []Sample
	add := func(name string, v float64) { out = append(out, Sample{Name: name, Value: v}) }
	if rep.OverallPassed != nil {
		add(SampleSmartPassed, b2f(*rep.OverallPassed))
	}
	if rep.TemperatureC != 0 {
		add(SampleTemperature, float64(rep.TemperatureC))
	}
	if rep.PowerOnHours != 0 {
		add(SamplePowerOnHours, float64(rep.PowerOnHours))
	}
	if h := rep.ATA; h != nil {
		for _, a := range h.Attributes {
			add(AttrSample(a.ID, "value"), float64(a.Value))
			add(AttrSample(a.ID, "worst"), float64(a.Worst))
			add(AttrSample(a.ID, "thresh"), float64(a.Threshold))
			add(AttrSample(a.ID, "raw"), float64(a.Raw))
		}
		for _, c := range []struct {
			name string
			get  func() (uint64, bool)
		}{
			{SampleATAReallocated, h.ReallocatedSectors},
			{SampleATAReportedUncorrect, h.ReportedUncorrect},
			{SampleATACommandTimeout, h.CommandTimeout},
			{SampleATAPending, h.PendingSectors},
			{SampleATAOfflineUncorrectable, h.OfflineUncorrectable},
			{SampleATAUDMACRCErrors, h.UDMACRCErrors},
		} {
			if v, ok := c.get(); ok {
				add(c.name, float64(v))
			}
		}
		if len(h.Attributes) > 0 {
			var now, past float64
			for _, a := range h.Attributes {
				switch {
				case !a.Prefailure:
				case a.FailedNow:
					now++
				case a.FailedPast:
					past++
				}
			}
			add(SampleATAPrefailFailingNow, now)
			add(SampleATAPrefailFailedPast, past)
		}
		if h.SelfTestErrors > 0 {
			add(SampleATASelfTestErrors, float64(h.SelfTestErrors))
		}
		if len(h.ErrorLog) > 0 {
			add(SampleATAErrorLogLastUNC, float64(lastUNC(h.ErrorLog)))
		}
	}
	if h := rep.NVMe; h != nil {
		add(SampleNVMeCriticalWarning, float64(h.CriticalWarning))
		add(SampleNVMeAvailableSpare, float64(h.AvailableSpare))
		add(SampleNVMeAvailableSpareThresh, float64(h.AvailableSpareThreshold))
		add(SampleNVMePercentageUsed, float64(h.PercentageUsed))
		add(SampleNVMeMediaErrors, float64(h.MediaErrors))
		add(SampleNVMeUnsafeShutdowns, float64(h.UnsafeShutdowns))
		add(SampleNVMePowerCycles, float64(h.PowerCycles))
		add(SampleNVMeErrorLogEntries, float64(h.NumErrLogEntries))
		add(SampleNVMeDataUnitsRead, float64(h.DataUnitsRead))
		add(SampleNVMeDataUnitsWritten, float64(h.DataUnitsWritten))
		add(SampleNVMeHostReadCommands, float64(h.HostReadCommands))
		add(SampleNVMeHostWriteCommands, float64(h.HostWriteCommands))
		add(SampleNVMeControllerBusyMinutes, float64(h.ControllerBusyMinutes))
		add(SampleNVMeWarningTempMinutes, float64(h.WarningTempMinutes))
		add(SampleNVMeCriticalTempMinutes, float64(h.CriticalTempMinutes))
		add(SampleNVMeEnduranceGroupWarning, float64(h.EnduranceGroupCriticalWarning))
	}
	if h := rep.SCSI; h != nil {
		if h.GrownDefects != nil {
			add(SampleSCSIGrownDefects, float64(*h.GrownDefects))
		}
		if n, ok := h.UncorrectedErrors(); ok {
			add(SampleSCSIUncorrectedErrors, float64(n))
		}
		if h.PercentageUsedEndurance != nil {
			add(SampleSCSIPercentageUsedEndu, float64(*h.PercentageUsedEndurance))
		}
	}
	return out
}

// lastUNC is the highest error number among the uncorrectable reads
// (UNC, as Assess counts them) of the log's entries, 0 for none.
func lastUNC(log []ATAErrorLogEntry) uint64 {
	var n uint64
	for _, e := range log {
		if hasToken(e.Description, "UNC") {
			n = max(n, e.Number)
		}
	}
	return n
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ReadingSamples is every sample of one successful reading of a drive, as
// the agent sends it and an offline replay rebuilds it: SampleStandby and
// SampleReadError first; for a drive in standby nothing else (it was left
// alone); otherwise SampleReadBySmartctl and the drive's health (Samples).
func ReadingSamples(rep *Report, bySmartctl bool) []Sample {
	if rep.Standby {
		return []Sample{{SampleStandby, 1}, {SampleReadError, 0}}
	}
	return append([]Sample{{SampleStandby, 0}, {SampleReadError, 0}, {SampleReadBySmartctl, b2f(bySmartctl)}}, Samples(rep)...)
}
