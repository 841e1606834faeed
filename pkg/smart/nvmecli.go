package smart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// nvme-cli's `smart-log -o json`. Its keys have been stable since 1.x; what
// changed is the kind of values: critical_warning became an object with a
// "value" in 2.11, 2.1 printed the 128-bit counters as strings, and
// temperatures are kelvins throughout.
type nvmeCLIDoc struct {
	CriticalWarning    json.RawMessage `json:"critical_warning"`
	Temperature        json.RawMessage `json:"temperature"`
	AvailSpare         num             `json:"avail_spare"`
	SpareThresh        num             `json:"spare_thresh"`
	PercentUsed        num             `json:"percent_used"`
	PercentageUsed     num             `json:"percentage_used"`
	EnduranceGrpWarn   num             `json:"endurance_grp_critical_warning_summary"`
	DataUnitsRead      num             `json:"data_units_read"`
	DataUnitsWritten   num             `json:"data_units_written"`
	HostReadCommands   num             `json:"host_read_commands"`
	HostWriteCommands  num             `json:"host_write_commands"`
	ControllerBusyTime num             `json:"controller_busy_time"`
	PowerCycles        num             `json:"power_cycles"`
	PowerOnHours       num             `json:"power_on_hours"`
	UnsafeShutdowns    num             `json:"unsafe_shutdowns"`
	MediaErrors        num             `json:"media_errors"`
	NumErrLogEntries   num             `json:"num_err_log_entries"`
	WarningTempTime    num             `json:"warning_temp_time"`
	CriticalCompTime   num             `json:"critical_comp_time"`
	TemperatureSensor1 json.RawMessage `json:"temperature_sensor_1"`
	TemperatureSensor2 json.RawMessage `json:"temperature_sensor_2"`
	TemperatureSensor3 json.RawMessage `json:"temperature_sensor_3"`
	TemperatureSensor4 json.RawMessage `json:"temperature_sensor_4"`
	TemperatureSensor5 json.RawMessage `json:"temperature_sensor_5"`
	TemperatureSensor6 json.RawMessage `json:"temperature_sensor_6"`
	TemperatureSensor7 json.RawMessage `json:"temperature_sensor_7"`
	TemperatureSensor8 json.RawMessage `json:"temperature_sensor_8"`
}

// ParseNVMeCLIJSON parses `nvme smart-log -o json` (nvme-cli 1.x and 2.x).
// nvme-cli does not name the device in this output, so the Report has the
// protocol and the health log only; the caller knows which device it read.
// Errors wrap ErrMalformed or, for JSON that is not a smart-log, ErrNoDevice.
func ParseNVMeCLIJSON(r io.Reader) (*Report, error) {
	const what = "nvme smart-log JSON"
	data, err := readJSON(r, what)
	if err != nil {
		return nil, err
	}
	var doc nvmeCLIDoc
	warnings, err := decodeJSON(data, &doc, what)
	if err != nil {
		return nil, err
	}
	if doc.CriticalWarning == nil || doc.Temperature == nil {
		return nil, fmt.Errorf("%s: %w: no critical_warning and temperature (top-level keys: %s)",
			what, ErrNoDevice, topKeys(data))
	}

	h := &NVMeHealth{
		DataUnitsRead:         doc.DataUnitsRead.get(),
		DataUnitsWritten:      doc.DataUnitsWritten.get(),
		HostReadCommands:      doc.HostReadCommands.get(),
		HostWriteCommands:     doc.HostWriteCommands.get(),
		ControllerBusyMinutes: doc.ControllerBusyTime.get(),
		PowerCycles:           doc.PowerCycles.get(),
		PowerOnHours:          doc.PowerOnHours.get(),
		UnsafeShutdowns:       doc.UnsafeShutdowns.get(),
		MediaErrors:           doc.MediaErrors.get(),
		NumErrLogEntries:      doc.NumErrLogEntries.get(),
		WarningTempMinutes:    clamp32(doc.WarningTempTime.get()),
		CriticalTempMinutes:   clamp32(doc.CriticalCompTime.get()),
	}
	cw, ok := criticalWarning(doc.CriticalWarning)
	if !ok {
		return nil, fmt.Errorf("%s: critical_warning: cannot read %s", what, clip(doc.CriticalWarning))
	}
	h.CriticalWarning = cw
	t, ok := kelvinToC(doc.Temperature)
	if !ok {
		return nil, fmt.Errorf("%s: temperature: cannot read %s", what, clip(doc.Temperature))
	}
	h.TemperatureC = t
	h.AvailableSpare, _ = doc.AvailSpare.u8()
	h.AvailableSpareThreshold, _ = doc.SpareThresh.u8()
	if v, ok := doc.PercentUsed.u8(); ok {
		h.PercentageUsed = v
	} else {
		h.PercentageUsed, _ = doc.PercentageUsed.u8()
	}
	h.EnduranceGroupCriticalWarning, _ = doc.EnduranceGrpWarn.u8()
	for _, s := range []json.RawMessage{
		doc.TemperatureSensor1, doc.TemperatureSensor2, doc.TemperatureSensor3, doc.TemperatureSensor4,
		doc.TemperatureSensor5, doc.TemperatureSensor6, doc.TemperatureSensor7, doc.TemperatureSensor8,
	} {
		if c, ok := kelvinToC(s); ok && s != nil {
			h.TemperatureSensorsC = append(h.TemperatureSensorsC, c)
		}
	}

	return &Report{
		Protocol:     ProtocolNVMe,
		PowerOnHours: h.PowerOnHours,
		TemperatureC: h.TemperatureC,
		Warnings:     warnings,
		NVMe:         h,
	}, nil
}

// criticalWarning reads a number, or nvme-cli 2.11's object whose "value"
// is the byte (its other members are that byte's bits spelled out).
func criticalWarning(raw json.RawMessage) (NVMeWarning, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var obj struct {
			Value num `json:"value"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return 0, false
		}
		raw = json.RawMessage(obj.Value)
		if obj.Value == "" {
			return 0, false
		}
	}
	var n num
	if err := n.UnmarshalJSON(raw); err != nil {
		return 0, false
	}
	v, ok := n.u64()
	if !ok || v > 0xff {
		return 0, false
	}
	return NVMeWarning(v), true
}

// kelvinToC reads a temperature as nvme-cli prints it: kelvins as a number
// or string, or with a unit when a version or -H added one ("324 K",
// "51 °C", "51 C").
func kelvinToC(raw json.RawMessage) (int, bool) {
	var n num
	if err := n.UnmarshalJSON(raw); err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(n))
	celsius := false
	if i := strings.IndexFunc(s, func(r rune) bool { return r != '-' && r != '.' && (r < '0' || r > '9') }); i >= 0 {
		unit := strings.TrimSpace(s[i:])
		s = s[:i]
		switch strings.TrimPrefix(unit, "°") {
		case "C", "Celsius":
			celsius = true
		case "K", "Kelvin":
		default:
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < -1e6 || f > 1e6 {
		return 0, false
	}
	if celsius {
		return int(f), true
	}
	if f == 0 { // sensor not implemented
		return 0, false
	}
	return int(f) - kelvinOffset, true
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
