package smart

import (
	"strconv"
	"strings"
)

// Protocol is the command set a drive speaks, as smartctl names it.
type Protocol string

// The protocols a Report can carry.
const (
	ProtocolATA  Protocol = "ATA"
	ProtocolNVMe Protocol = "NVMe"
	ProtocolSCSI Protocol = "SCSI"
)

// Report is one reading of one drive's health, whatever it was read with.
// Zero values mean "not reported": a reader that cannot tell leaves a field
// empty rather than guessing.
type Report struct {
	Protocol Protocol
	// Device is the path the drive was read through ("/dev/sda"), DeviceType
	// smartctl's -d type ("sat", "nvme", "sat+megaraid,0") where known.
	Device     string
	DeviceType string

	Model    string
	Serial   string
	WWN      string // "0x5000cca264eb01d7" (ATA/SCSI NAA) or "eui.6479a780dea5d38d" (NVMe)
	Firmware string

	CapacityBytes uint64
	PowerOnHours  uint64
	// TemperatureC is the drive's current temperature in degrees Celsius;
	// 0 means not reported (RAID volumes report 0, no drive runs at 0 °C).
	TemperatureC int

	// OverallPassed is the drive's own overall-health verdict (ATA SMART
	// RETURN STATUS, SCSI informational exceptions, NVMe critical warning as
	// smartctl derives it); nil when it was not read.
	OverallPassed *bool

	// Standby is set when the reader declined to wake a drive in a low-power
	// mode (smartctl -n standby): the report then carries identity at most,
	// no health data, and this is not an error. PowerMode is the mode named
	// ("STANDBY", "SLEEP", "IDLE_B", "STANDBY (OS)", ...).
	Standby   bool
	PowerMode string

	// Smartctl is set for reports parsed from smartctl output.
	Smartctl *SmartctlRun

	// Warnings are the parser's own notes about fields it could not read
	// (a type it did not expect); the rest of the report is still valid.
	Warnings []string

	ATA  *ATAHealth
	NVMe *NVMeHealth
	SCSI *SCSIHealth
}

// SmartctlRun describes the smartctl invocation that produced a report.
type SmartctlRun struct {
	Version    string // "7.3"
	ExitStatus ExitStatus
	Messages   []Message
}

// Message is one entry of smartctl's "messages" list.
type Message struct {
	Severity string // "information", "warning" or "error"
	Text     string
}

// ExitStatus holds smartctl's exit status, a bit mask (smartctl(8), "RETURN
// VALUES").
type ExitStatus uint8

// The bits of smartctl's exit status.
const (
	ExitCommandLine    ExitStatus = 1 << 0 // command line did not parse
	ExitDeviceOpen     ExitStatus = 1 << 1 // device open failed, no IDENTIFY, or in a low-power mode (-n)
	ExitCommandFailed  ExitStatus = 1 << 2 // some SMART or other command failed, or a checksum error
	ExitDiskFailing    ExitStatus = 1 << 3 // SMART status check returned "DISK FAILING"
	ExitPrefailFailing ExitStatus = 1 << 4 // prefail attributes <= threshold
	ExitFailedInPast   ExitStatus = 1 << 5 // attributes were <= threshold in the past
	ExitErrorLog       ExitStatus = 1 << 6 // the device error log has records
	ExitSelfTestErrors ExitStatus = 1 << 7 // the self-test log has (current) errors
)

// Has reports whether every bit of b is set in e.
func (e ExitStatus) Has(b ExitStatus) bool { return e&b == b }

// String names the bits set, "0" when none is.
func (e ExitStatus) String() string {
	if e == 0 {
		return "0"
	}
	names := make([]string, 0, 8)
	for i, n := range [8]string{
		"command-line", "device-open", "command-failed", "disk-failing",
		"prefail-failing", "failed-in-past", "error-log", "self-test-errors",
	} {
		if e&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strconv.Itoa(int(e)) + " (" + strings.Join(names, "|") + ")"
}

// ATAHealth is what an ATA drive says about itself through SMART.
type ATAHealth struct {
	// Revision is the SMART data structure revision (bytes 0-1 of the page).
	Revision   uint16
	Attributes []ATAAttribute

	// ErrorLogCount is the number of errors the drive has recorded over its
	// life (ATA error log), ErrorLog the most recent entries it kept.
	ErrorLogCount uint64
	ErrorLog      []ATAErrorLogEntry
	// SelfTestErrors counts failed self-tests that a later successful
	// extended test has not superseded (smartctl's exit bit 7 logic).
	SelfTestErrors uint64
}

// ATAAttribute is one row of the SMART attribute table.
type ATAAttribute struct {
	ID   uint8
	Name string
	// Value, Worst and Threshold are the normalized values (higher is
	// better; Threshold 0 means the attribute can never fail).
	Value     uint8
	Worst     uint8
	Threshold uint8
	// Raw is the raw value: the 48-bit little-endian bytes 5-10 of the
	// attribute entry, or smartctl's raw.value (which follows its drive
	// database where that says otherwise). RawString is smartctl's rendering
	// when it was read from smartctl, else the decimal Raw.
	Raw       uint64
	RawString string
	Flags     uint16
	// Prefailure is flag bit 0: crossing the threshold predicts failure
	// (as opposed to an old-age / usage attribute).
	Prefailure bool
	// FailedNow: Value <= Threshold. FailedPast: Worst <= Threshold (true as
	// well when FailedNow). Both false when Threshold is 0. From smartctl
	// they follow its "when_failed", which knows drives whose normalized
	// bytes are not valid.
	FailedNow  bool
	FailedPast bool
}

// ATAErrorLogEntry is one entry of the ATA error log as smartctl decodes it.
type ATAErrorLogEntry struct {
	Number        uint64
	LifetimeHours uint64
	Description   string // "Error: UNC at LBA = 0x0071bde0 = 7454176"
}

// Well-known attribute IDs: the ones Backblaze and the drive makers' own
// tools watch, and the ones the accessors below read.
const (
	AttrReallocatedSectors   uint8 = 5
	AttrPowerOnHours         uint8 = 9
	AttrReportedUncorrect    uint8 = 187
	AttrCommandTimeout       uint8 = 188
	AttrAirflowTemperature   uint8 = 190
	AttrTemperature          uint8 = 194
	AttrPendingSectors       uint8 = 197
	AttrOfflineUncorrectable uint8 = 198
	AttrUDMACRCErrors        uint8 = 199
)

// Attr returns the attribute with the given ID.
func (h *ATAHealth) Attr(id uint8) (ATAAttribute, bool) {
	if h == nil {
		return ATAAttribute{}, false
	}
	for _, a := range h.Attributes {
		if a.ID == id {
			return a, true
		}
	}
	return ATAAttribute{}, false
}

func (h *ATAHealth) raw(id uint8) (uint64, bool) {
	a, ok := h.Attr(id)
	return a.Raw, ok
}

// ReallocatedSectors is attribute 5's count of sectors the drive has
// remapped to spares: the low 16 bits of the raw value, which is what
// smartctl shows by default (raw16 with optional raw16s); drives put other
// counters in the upper words (libblockdev's Hitachi HDS721010CLA632 dump
// has raw 0x2b002b: 43 sectors, not 2,818,091).
func (h *ATAHealth) ReallocatedSectors() (uint64, bool) {
	v, ok := h.raw(AttrReallocatedSectors)
	return v & 0xffff, ok
}

// PowerOnHours is attribute 9's raw value. Only the low 24 bits count:
// smartctl's default format (raw24 with an optional 8-bit extra) and the
// vendors' hour+millisecond encodings agree on them.
func (h *ATAHealth) PowerOnHours() (uint64, bool) {
	v, ok := h.raw(AttrPowerOnHours)
	return v & 0xffffff, ok
}

// ReportedUncorrect is attribute 187's raw value: errors that ECC could not
// correct.
func (h *ATAHealth) ReportedUncorrect() (uint64, bool) { return h.raw(AttrReportedUncorrect) }

// CommandTimeout is attribute 188's raw value. Some vendors (Seagate) pack
// three 16-bit counters into it, so only "zero or not" is portable.
func (h *ATAHealth) CommandTimeout() (uint64, bool) { return h.raw(AttrCommandTimeout) }

// TemperatureC is attribute 194's current temperature (the low byte of its
// raw value; the other bytes hold min/max on many drives), or 190's when 194
// is absent.
func (h *ATAHealth) TemperatureC() (int, bool) {
	for _, id := range []uint8{AttrTemperature, AttrAirflowTemperature} {
		if v, ok := h.raw(id); ok {
			return int(v & 0xff), true
		}
	}
	return 0, false
}

// PendingSectors is attribute 197's raw value: unstable sectors waiting to
// be remapped (or rewritten successfully).
func (h *ATAHealth) PendingSectors() (uint64, bool) { return h.raw(AttrPendingSectors) }

// OfflineUncorrectable is attribute 198's raw value: sectors the offline
// scan could not read.
func (h *ATAHealth) OfflineUncorrectable() (uint64, bool) { return h.raw(AttrOfflineUncorrectable) }

// UDMACRCErrors is attribute 199's raw value: interface CRC errors, which
// point at the cable or backplane rather than the drive.
func (h *ATAHealth) UDMACRCErrors() (uint64, bool) { return h.raw(AttrUDMACRCErrors) }

// NVMeWarning is the NVMe SMART log's Critical Warning byte.
type NVMeWarning uint8

// The bits of the Critical Warning byte (NVMe base specification, SMART /
// Health Information log page, byte 0).
const (
	NVMeWarnSpare            NVMeWarning = 1 << 0 // available spare below threshold
	NVMeWarnTemperature      NVMeWarning = 1 << 1 // a temperature is above an over- or below an under-temperature threshold
	NVMeWarnReliability      NVMeWarning = 1 << 2 // NVM subsystem reliability degraded (media or internal errors)
	NVMeWarnReadOnly         NVMeWarning = 1 << 3 // media placed in read-only mode
	NVMeWarnVolatileBackup   NVMeWarning = 1 << 4 // volatile memory backup device failed
	NVMeWarnPersistentMemory NVMeWarning = 1 << 5 // persistent memory region read-only or unreliable
)

// Has reports whether every bit of b is set in w.
func (w NVMeWarning) Has(b NVMeWarning) bool { return w&b == b }

// String names the bits set, "0" when none is.
func (w NVMeWarning) String() string {
	if w == 0 {
		return "0"
	}
	names := make([]string, 0, 8)
	for i, n := range [8]string{
		"spare", "temperature", "reliability", "read_only",
		"volatile_backup", "persistent_memory", "reserved6", "reserved7",
	} {
		if w&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, "|")
}

// NVMeHealth is the NVMe SMART / Health Information log (log page 02h).
// The 128-bit counters of the page saturate at the largest uint64.
type NVMeHealth struct {
	CriticalWarning NVMeWarning
	// TemperatureC is the composite temperature in degrees Celsius.
	TemperatureC int
	// AvailableSpare and AvailableSpareThreshold are percentages of the
	// spare capacity; PercentageUsed is the vendor's estimate of life used
	// and may exceed 100 (up to 255).
	AvailableSpare                uint8
	AvailableSpareThreshold       uint8
	PercentageUsed                uint8
	EnduranceGroupCriticalWarning uint8

	// DataUnitsRead/Written count thousands of 512-byte units.
	DataUnitsRead         uint64
	DataUnitsWritten      uint64
	HostReadCommands      uint64
	HostWriteCommands     uint64
	ControllerBusyMinutes uint64
	PowerCycles           uint64
	PowerOnHours          uint64
	UnsafeShutdowns       uint64
	// MediaErrors counts unrecovered data integrity errors (ECC, CRC, LBA
	// tag mismatch): the drive lost data.
	MediaErrors uint64
	// NumErrLogEntries counts Error Information log entries over the
	// controller's life; most are commands the host got wrong.
	NumErrLogEntries    uint64
	WarningTempMinutes  uint32
	CriticalTempMinutes uint32
	// TemperatureSensorsC lists the implemented temperature sensors 1-8.
	TemperatureSensorsC []int
}

// SCSIHealth is what a SCSI/SAS drive reports in its log pages. A nil field
// means the drive (or smartctl) did not report it.
type SCSIHealth struct {
	// GrownDefects is the length of the grown defect list: blocks remapped
	// since the drive left the factory.
	GrownDefects *uint64
	// Read, Write and Verify are the error counter log pages (03h, 02h, 05h).
	Read, Write, Verify *SCSIErrorCounters
	// PercentageUsedEndurance is the SSD's life used, in percent.
	PercentageUsedEndurance *uint8
}

// SCSIErrorCounters is one SCSI error counter log page.
type SCSIErrorCounters struct {
	TotalCorrected     uint64
	TotalUncorrected   uint64
	GigabytesProcessed float64
}

// UncorrectedErrors sums the uncorrected errors of the pages reported.
func (s *SCSIHealth) UncorrectedErrors() (uint64, bool) {
	if s == nil {
		return 0, false
	}
	var sum uint64
	ok := false
	for _, c := range []*SCSIErrorCounters{s.Read, s.Write, s.Verify} {
		if c != nil {
			sum = satAdd(sum, c.TotalUncorrected)
			ok = true
		}
	}
	return sum, ok
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}
