package smart

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The subset of `smartctl --json` (json_format_version 1) this package
// reads. Field names are smartctl's; every leaf that smartctl prints as a
// number is a num, so that a value of another kind reads as absent.
type sjDoc struct {
	Smartctl *struct {
		Version    []num `json:"version"`
		ExitStatus num   `json:"exit_status"`
		Messages   []struct {
			String   string `json:"string"`
			Severity string `json:"severity"`
		} `json:"messages"`
	} `json:"smartctl"`
	Device *struct {
		Name     string `json:"name"`
		InfoName string `json:"info_name"`
		Type     string `json:"type"`
		Protocol string `json:"protocol"`
	} `json:"device"`
	Devices []sjScanDevice `json:"devices"`

	ModelName       string `json:"model_name"`
	SCSIModelName   string `json:"scsi_model_name"`
	Vendor          string `json:"vendor"`
	Product         string `json:"product"`
	SCSIVendor      string `json:"scsi_vendor"`
	SCSIProduct     string `json:"scsi_product"`
	SerialNumber    string `json:"serial_number"`
	FirmwareVersion string `json:"firmware_version"`
	Revision        string `json:"revision"`
	SCSIRevision    string `json:"scsi_revision"`
	WWN             *struct {
		NAA num `json:"naa"`
		OUI num `json:"oui"`
		ID  num `json:"id"`
	} `json:"wwn"`
	LogicalUnitID  string `json:"logical_unit_id"`
	NVMeNamespaces []struct {
		EUI64 *struct {
			OUI   num `json:"oui"`
			ExtID num `json:"ext_id"`
		} `json:"eui64"`
	} `json:"nvme_namespaces"`
	UserCapacity *struct {
		Bytes num `json:"bytes"`
	} `json:"user_capacity"`
	NVMeTotalCapacity num `json:"nvme_total_capacity"`
	PowerOnTime       *struct {
		Hours num `json:"hours"`
	} `json:"power_on_time"`
	Temperature *struct {
		Current num `json:"current"`
	} `json:"temperature"`
	SmartStatus *struct {
		Passed *bool `json:"passed"`
		NVMe   *struct {
			Value num `json:"value"`
		} `json:"nvme"`
	} `json:"smart_status"`

	ATAAttributes *struct {
		Revision num      `json:"revision"`
		Table    []sjAttr `json:"table"`
	} `json:"ata_smart_attributes"`
	ATAErrorLog *struct {
		Summary  *sjErrorLog `json:"summary"`
		Extended *sjErrorLog `json:"extended"`
	} `json:"ata_smart_error_log"`
	ATASelfTestLog *struct {
		Standard *sjSelfTestLog `json:"standard"`
		Extended *sjSelfTestLog `json:"extended"`
	} `json:"ata_smart_self_test_log"`

	NVMeLog *sjNVMeLog `json:"nvme_smart_health_information_log"`

	SCSIGrownDefects *num `json:"scsi_grown_defect_list"`
	SCSIErrorLog     *struct {
		Read   *sjSCSICounters `json:"read"`
		Write  *sjSCSICounters `json:"write"`
		Verify *sjSCSICounters `json:"verify"`
	} `json:"scsi_error_counter_log"`
	SCSIPercentUsed *num `json:"scsi_percentage_used_endurance_indicator"`
}

type sjScanDevice struct {
	Name     string `json:"name"`
	InfoName string `json:"info_name"`
	Type     string `json:"type"`
	Protocol string `json:"protocol"`
}

type sjAttr struct {
	ID         num     `json:"id"`
	Name       string  `json:"name"`
	Value      num     `json:"value"`
	Worst      num     `json:"worst"`
	Thresh     num     `json:"thresh"`
	WhenFailed *string `json:"when_failed"`
	Flags      struct {
		Value      num   `json:"value"`
		Prefailure *bool `json:"prefailure"`
	} `json:"flags"`
	Raw struct {
		Value  num    `json:"value"`
		String string `json:"string"`
	} `json:"raw"`
}

type sjErrorLog struct {
	Count num `json:"count"`
	Table []struct {
		ErrorNumber   num    `json:"error_number"`
		LifetimeHours num    `json:"lifetime_hours"`
		Description   string `json:"error_description"`
	} `json:"table"`
}

type sjSelfTestLog struct {
	ErrorCountTotal    *num `json:"error_count_total"`
	ErrorCountOutdated *num `json:"error_count_outdated"`
	Table              []struct {
		Type struct {
			Value num `json:"value"`
		} `json:"type"`
		Status struct {
			Passed *bool `json:"passed"`
		} `json:"status"`
	} `json:"table"`
}

type sjNVMeLog struct {
	CriticalWarning         num   `json:"critical_warning"`
	Temperature             num   `json:"temperature"`
	AvailableSpare          num   `json:"available_spare"`
	AvailableSpareThreshold num   `json:"available_spare_threshold"`
	PercentageUsed          num   `json:"percentage_used"`
	DataUnitsRead           num   `json:"data_units_read"`
	DataUnitsWritten        num   `json:"data_units_written"`
	HostReads               num   `json:"host_reads"`
	HostWrites              num   `json:"host_writes"`
	ControllerBusyTime      num   `json:"controller_busy_time"`
	PowerCycles             num   `json:"power_cycles"`
	PowerOnHours            num   `json:"power_on_hours"`
	UnsafeShutdowns         num   `json:"unsafe_shutdowns"`
	MediaErrors             num   `json:"media_errors"`
	NumErrLogEntries        num   `json:"num_err_log_entries"`
	WarningTempTime         num   `json:"warning_temp_time"`
	CriticalCompTime        num   `json:"critical_comp_time"`
	TemperatureSensors      []num `json:"temperature_sensors"`
}

type sjSCSICounters struct {
	TotalErrorsCorrected   num `json:"total_errors_corrected"`
	TotalUncorrectedErrors num `json:"total_uncorrected_errors"`
	GigabytesProcessed     num `json:"gigabytes_processed"`
}

// ParseSmartctlJSON parses the output of `smartctl --json` (-a, -x, -H, -A,
// -i in any combination; smartctl 7.0 and later, and the experimental JSON
// of 6.7) for one device into a Report.
//
// A drive that smartctl declined to wake (`-n standby`, message "Device is
// in STANDBY mode, exit(2)") is not an error: the Report has Standby set and
// PowerMode named, and carries no health data. Errors wrap ErrMalformed
// (not JSON: empty, truncated, a syntax error, with its offset, line and
// column), ErrNoDevice (JSON without a device section, including `smartctl
// --scan` output, which ParseSmartctlScan reads) or ErrSmartctlFailed
// (smartctl's exit status says the command line or the device open failed
// and there is no data; its messages are in the error).
//
// smartctl's other exit-status bits do not make an error: a failed SMART
// command (bit 2) leaves partial data, and bits 3-7 are the drive's health,
// which Report and Assess carry.
func ParseSmartctlJSON(r io.Reader) (*Report, error) {
	const what = "smartctl JSON"
	data, err := readJSON(r, what)
	if err != nil {
		return nil, err
	}
	var doc sjDoc
	warnings, err := decodeJSON(data, &doc, what)
	if err != nil {
		return nil, err
	}

	rep := &Report{Warnings: warnings}
	var exit ExitStatus
	if s := doc.Smartctl; s != nil {
		run := &SmartctlRun{}
		if len(s.Version) >= 2 {
			run.Version = string(s.Version[0]) + "." + string(s.Version[1])
		}
		if v, ok := s.ExitStatus.u64(); ok && v <= 0xff {
			run.ExitStatus = ExitStatus(v)
		}
		for _, m := range s.Messages {
			run.Messages = append(run.Messages, Message{Severity: m.Severity, Text: m.String})
			if mode, ok := standbyMode(m.String); ok {
				rep.Standby, rep.PowerMode = true, mode
			}
		}
		exit = run.ExitStatus
		rep.Smartctl = run
	}

	if rep.Standby {
		// smartctl stopped before reading the drive. The OS-level check
		// ("STANDBY (OS)") even stops before the device section is written.
		if doc.Device != nil {
			rep.Device, rep.DeviceType = doc.Device.Name, doc.Device.Type
			rep.Protocol = protocolOf(doc.Device.Protocol)
		}
		return rep, nil
	}
	if doc.Device == nil {
		switch {
		case doc.Devices != nil:
			return nil, fmt.Errorf("%s: %w: this is `smartctl --scan` output (%d devices), read it with ParseSmartctlScan",
				what, ErrNoDevice, len(doc.Devices))
		case rep.Smartctl != nil && exit&(ExitCommandLine|ExitDeviceOpen) != 0:
			return nil, fmt.Errorf("%s: %w: exit status %s%s", what, ErrSmartctlFailed, exit, messageSuffix(rep.Smartctl.Messages))
		}
		return nil, fmt.Errorf("%s: %w (top-level keys: %s)", what, ErrNoDevice, topKeys(data))
	}
	rep.Device = doc.Device.Name
	rep.DeviceType = doc.Device.Type
	fillIdentity(rep, &doc)

	rep.Protocol = protocolOf(doc.Device.Protocol)
	switch {
	case rep.Protocol != "":
	case doc.NVMeLog != nil:
		rep.Protocol = ProtocolNVMe
	case doc.ATAAttributes != nil:
		rep.Protocol = ProtocolATA
	case doc.SCSIErrorLog != nil || doc.SCSIGrownDefects != nil:
		rep.Protocol = ProtocolSCSI
	default:
		return nil, fmt.Errorf("%s: device %s: unknown protocol %q", what, rep.Device, doc.Device.Protocol)
	}
	if doc.SmartStatus != nil && doc.SmartStatus.Passed != nil {
		passed := *doc.SmartStatus.Passed
		rep.OverallPassed = &passed
	}
	if doc.PowerOnTime != nil {
		rep.PowerOnHours = doc.PowerOnTime.Hours.get()
	}
	if doc.Temperature != nil {
		rep.TemperatureC = doc.Temperature.Current.int()
	}

	switch rep.Protocol {
	case ProtocolATA:
		rep.ATA = ataFromJSON(&doc)
		if rep.PowerOnHours == 0 {
			rep.PowerOnHours, _ = rep.ATA.PowerOnHours()
		}
		if rep.TemperatureC == 0 {
			rep.TemperatureC, _ = rep.ATA.TemperatureC()
		}
	case ProtocolNVMe:
		rep.NVMe = nvmeFromJSON(&doc)
		if n := rep.NVMe; n != nil {
			if rep.PowerOnHours == 0 {
				rep.PowerOnHours = n.PowerOnHours
			}
			if rep.TemperatureC == 0 {
				rep.TemperatureC = n.TemperatureC
			}
		}
	case ProtocolSCSI:
		rep.SCSI = scsiFromJSON(&doc)
	}

	if exit&(ExitCommandLine|ExitDeviceOpen) != 0 && !rep.hasData() {
		return nil, fmt.Errorf("%s: device %s: %w: exit status %s%s",
			what, rep.Device, ErrSmartctlFailed, exit, messageSuffix(rep.Smartctl.Messages))
	}
	return rep, nil
}

// standbyMode recognises smartctl's messages for a drive it did not read
// because of -n (smartmontools 7.3, all printed with jinf, so they reach
// the JSON "messages"): "Device is in STANDBY mode, exit(2)" (ataprint.cpp;
// scsiprint.cpp names SCSI conditions such as "STANDBY BY COMMAND"),
// "Device is in STANDBY (OS) mode, exit(2)" (smartctl.cpp, when the OS
// already knows the disk is spun down), and, with -n MODE,N,M, "CHECK POWER
// MODE not implemented, exit(M)" / "... returned unknown value 0x.., exit(M)",
// where the mode is reported as "UNKNOWN". The exit code is whatever -n
// was given, so the message, not the status, is what tells.
func standbyMode(msg string) (string, bool) {
	if strings.HasPrefix(msg, "CHECK POWER MODE ") && strings.Contains(msg, ", exit(") {
		return "UNKNOWN", true
	}
	const prefix = "Device is in "
	i := strings.Index(msg, prefix)
	if i < 0 {
		return "", false
	}
	rest := msg[i+len(prefix):]
	j := strings.Index(rest, " mode, exit(")
	if j <= 0 {
		// "Device is in IDLE mode" without exit: smartctl -n never only
		// printing the mode; the drive was read.
		return "", false
	}
	return rest[:j], true
}

func messageSuffix(ms []Message) string {
	if len(ms) == 0 {
		return ""
	}
	texts := make([]string, 0, len(ms))
	for _, m := range ms {
		texts = append(texts, strings.TrimSpace(m.Text))
	}
	return ": " + strings.Join(texts, "; ")
}

// topKeys lists the top-level keys of a JSON object, for errors about
// documents that are not smartctl output.
func topKeys(data []byte) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	if len(keys) > 8 {
		keys = append(keys[:8], "...")
	}
	return strings.Join(keys, ", ")
}

func fillIdentity(rep *Report, doc *sjDoc) {
	rep.Model = firstNonEmpty(doc.ModelName, doc.SCSIModelName, joinNonEmpty(doc.SCSIVendor, doc.SCSIProduct), joinNonEmpty(doc.Vendor, doc.Product))
	rep.Serial = strings.TrimSpace(doc.SerialNumber)
	rep.Firmware = firstNonEmpty(doc.FirmwareVersion, doc.SCSIRevision, doc.Revision)

	switch {
	case doc.WWN != nil:
		naa, _ := doc.WWN.NAA.u64()
		oui, _ := doc.WWN.OUI.u64()
		id, _ := doc.WWN.ID.u64()
		// smartctl splits the 64-bit NAA name as 4-bit NAA, 24-bit OUI,
		// 36-bit vendor id; udev's ID_WWN prints it whole.
		if w := naa<<60 | (oui&0xffffff)<<36 | id&(1<<36-1); w != 0 {
			rep.WWN = fmt.Sprintf("0x%016x", w)
		}
	case doc.LogicalUnitID != "":
		rep.WWN = strings.ToLower(strings.TrimSpace(doc.LogicalUnitID))
	case len(doc.NVMeNamespaces) > 0 && doc.NVMeNamespaces[0].EUI64 != nil:
		e := doc.NVMeNamespaces[0].EUI64
		oui, _ := e.OUI.u64()
		ext, _ := e.ExtID.u64()
		// EUI-64: 24-bit OUI, 40-bit extension; the kernel's wwid and
		// udev's ID_WWN spell it "eui." and 16 hex digits.
		if w := (oui&0xffffff)<<40 | ext&(1<<40-1); w != 0 {
			rep.WWN = fmt.Sprintf("eui.%016x", w)
		}
	}

	if v, ok := doc.NVMeTotalCapacity.u64(); ok && v > 0 {
		// The drive's whole capacity, not namespace 1's share of it.
		rep.CapacityBytes = v
	} else if doc.UserCapacity != nil {
		rep.CapacityBytes = doc.UserCapacity.Bytes.get()
	}
}

func ataFromJSON(doc *sjDoc) *ATAHealth {
	if doc.ATAAttributes == nil && doc.ATAErrorLog == nil && doc.ATASelfTestLog == nil {
		return nil
	}
	h := &ATAHealth{}
	if t := doc.ATAAttributes; t != nil {
		if v, ok := t.Revision.u64(); ok && v <= 0xffff {
			h.Revision = uint16(v)
		}
		for _, ja := range t.Table {
			id, ok := ja.ID.u64()
			if !ok || id == 0 || id > 255 {
				continue
			}
			a := ATAAttribute{ID: uint8(id), Name: ja.Name}
			a.Value, _ = ja.Value.u8()
			a.Worst, _ = ja.Worst.u8()
			a.Threshold, _ = ja.Thresh.u8()
			a.Raw = ja.Raw.Value.get()
			a.RawString = ja.Raw.String
			if a.RawString == "" {
				a.RawString = strconv.FormatUint(a.Raw, 10)
			}
			if f, ok := ja.Flags.Value.u64(); ok && f <= 0xffff {
				a.Flags = uint16(f)
			}
			if ja.Flags.Prefailure != nil {
				a.Prefailure = *ja.Flags.Prefailure
			} else {
				a.Prefailure = a.Flags&1 != 0
			}
			if ja.WhenFailed != nil {
				// smartctl knows, from its drive database, the drives whose
				// normalized bytes are not valid; follow its verdict.
				switch strings.TrimSpace(*ja.WhenFailed) {
				case "now":
					a.FailedNow, a.FailedPast = true, true
				case "past":
					a.FailedPast = true
				}
			} else {
				a.FailedNow, a.FailedPast = attrState(a.Value, a.Worst, a.Threshold)
			}
			if a.Name == "" {
				a.Name = defaultAttrName(a.ID)
			}
			h.Attributes = append(h.Attributes, a)
		}
	}
	if l := doc.ATAErrorLog; l != nil {
		// -x reads the extended comprehensive log, -a the summary one.
		el := l.Extended
		if el == nil {
			el = l.Summary
		}
		if el != nil {
			h.ErrorLogCount = el.Count.get()
			for _, e := range el.Table {
				h.ErrorLog = append(h.ErrorLog, ATAErrorLogEntry{
					Number:        e.ErrorNumber.get(),
					LifetimeHours: e.LifetimeHours.get(),
					Description:   e.Description,
				})
			}
		}
	}
	if l := doc.ATASelfTestLog; l != nil {
		st := l.Extended
		if st == nil {
			st = l.Standard
		}
		if st != nil {
			h.SelfTestErrors = selfTestErrors(st)
		}
	}
	return h
}

// selfTestErrors prefers smartctl's own count (total minus outdated) and
// otherwise counts failed tests newer than the last passed extended test,
// which is what makes older failures outdated.
func selfTestErrors(st *sjSelfTestLog) uint64 {
	if st.ErrorCountTotal != nil {
		total := st.ErrorCountTotal.get()
		var outdated uint64
		if st.ErrorCountOutdated != nil {
			outdated = st.ErrorCountOutdated.get()
		}
		if outdated > total {
			return 0
		}
		return total - outdated
	}
	var n uint64
	for _, t := range st.Table { // newest first
		passed := t.Status.Passed
		if passed == nil {
			continue
		}
		if !*passed {
			n++
			continue
		}
		if typ, _ := t.Type.Value.u64(); typ == 2 || typ == 0x82 { // extended offline / captive
			break
		}
	}
	return n
}

func nvmeFromJSON(doc *sjDoc) *NVMeHealth {
	l := doc.NVMeLog
	if l == nil {
		return nil
	}
	h := &NVMeHealth{
		TemperatureC:          l.Temperature.int(),
		DataUnitsRead:         l.DataUnitsRead.get(),
		DataUnitsWritten:      l.DataUnitsWritten.get(),
		HostReadCommands:      l.HostReads.get(),
		HostWriteCommands:     l.HostWrites.get(),
		ControllerBusyMinutes: l.ControllerBusyTime.get(),
		PowerCycles:           l.PowerCycles.get(),
		PowerOnHours:          l.PowerOnHours.get(),
		UnsafeShutdowns:       l.UnsafeShutdowns.get(),
		MediaErrors:           l.MediaErrors.get(),
		NumErrLogEntries:      l.NumErrLogEntries.get(),
	}
	cw, _ := l.CriticalWarning.u8()
	h.CriticalWarning = NVMeWarning(cw)
	h.AvailableSpare, _ = l.AvailableSpare.u8()
	h.AvailableSpareThreshold, _ = l.AvailableSpareThreshold.u8()
	h.PercentageUsed, _ = l.PercentageUsed.u8()
	h.WarningTempMinutes = clamp32(l.WarningTempTime.get())
	h.CriticalTempMinutes = clamp32(l.CriticalCompTime.get())
	for _, t := range l.TemperatureSensors {
		if c, ok := t.i64(); ok {
			h.TemperatureSensorsC = append(h.TemperatureSensorsC, int(c))
		}
	}
	return h
}

func scsiFromJSON(doc *sjDoc) *SCSIHealth {
	h := &SCSIHealth{}
	found := false
	if d := doc.SCSIGrownDefects; d != nil {
		if v, ok := d.u64(); ok {
			h.GrownDefects, found = &v, true
		}
	}
	if l := doc.SCSIErrorLog; l != nil {
		conv := func(c *sjSCSICounters) *SCSIErrorCounters {
			if c == nil {
				return nil
			}
			found = true
			gb, _ := c.GigabytesProcessed.f64()
			return &SCSIErrorCounters{
				TotalCorrected:     c.TotalErrorsCorrected.get(),
				TotalUncorrected:   c.TotalUncorrectedErrors.get(),
				GigabytesProcessed: gb,
			}
		}
		h.Read, h.Write, h.Verify = conv(l.Read), conv(l.Write), conv(l.Verify)
	}
	if p := doc.SCSIPercentUsed; p != nil {
		if v, ok := p.u8(); ok {
			h.PercentageUsedEndurance, found = &v, true
		}
	}
	if !found {
		return nil
	}
	return h
}

// hasData tells whether smartctl got anything from the drive itself.
func (r *Report) hasData() bool {
	return r.Model != "" || r.Serial != "" || r.CapacityBytes != 0 || r.OverallPassed != nil ||
		r.ATA != nil || r.NVMe != nil || r.SCSI != nil
}

// ScanDevice is one device `smartctl --scan --json` found.
type ScanDevice struct {
	Name     string // "/dev/sda"
	InfoName string // "/dev/sda [SAT]"
	Type     string // the -d type to read it with: "sat", "nvme", "scsi", "megaraid,0"
	Protocol Protocol
}

// ParseSmartctlScan parses `smartctl --scan --json` (or --scan-open): the
// devices smartctl would read and the -d type for each.
func ParseSmartctlScan(r io.Reader) ([]ScanDevice, error) {
	const what = "smartctl --scan JSON"
	data, err := readJSON(r, what)
	if err != nil {
		return nil, err
	}
	var doc sjDoc
	if _, err := decodeJSON(data, &doc, what); err != nil {
		return nil, err
	}
	if doc.Devices == nil {
		return nil, fmt.Errorf("%s: %w: no \"devices\" list (top-level keys: %s)", what, ErrNoDevice, topKeys(data))
	}
	out := make([]ScanDevice, 0, len(doc.Devices))
	for _, d := range doc.Devices {
		out = append(out, ScanDevice{Name: d.Name, InfoName: d.InfoName, Type: d.Type, Protocol: protocolOf(d.Protocol)})
	}
	return out, nil
}

func protocolOf(s string) Protocol {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "ATA":
		return ProtocolATA
	case "NVME":
		return ProtocolNVMe
	case "SCSI":
		return ProtocolSCSI
	}
	return ""
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func joinNonEmpty(a, b string) string {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" || b == "" {
		return ""
	}
	return a + " " + b
}

func clamp32(v uint64) uint32 {
	if v > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(v)
}
