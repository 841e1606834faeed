package hwmon

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseMillidegrees parses a hwmon temp*_input/_crit/_max or thermal zone
// temp attribute, an integer in millidegrees Celsius, into degrees.
// Negative values are real readings (an outdoor sensor, a zone in a cold
// aisle); the caller decides which thresholds mean "not set".
func ParseMillidegrees(b []byte) (float64, error) {
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	// Below absolute zero is not a temperature: drivers use such values
	// for "no reading" (THERMAL_TEMP_INVALID is -274000).
	if v < -273150 {
		return 0, fmt.Errorf("%d millidegrees is below absolute zero", v)
	}
	return float64(v) / 1000, nil
}

// SensorName turns a sensor label ("Core 0", "Physical id 0", "Tctl",
// "Sensor 1") into the prefix of its sample names ("core_0",
// "physical_id_0", "tctl", "sensor_1"): lower case letters, digits and
// single underscores. It returns "" for a label with nothing usable.
func SensorName(label string) string {
	var b strings.Builder
	pending := false
	for _, r := range strings.ToLower(label) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if pending && b.Len() > 0 {
				b.WriteByte('_')
			}
			pending = false
			b.WriteRune(r)
			continue
		}
		pending = true
	}
	return b.String()
}

// splitIndexed splits a sysfs attribute name of the form
// <prefix><index>_<attr> ("temp3_input", "trip_point_0_temp"). ok is false
// for any other name.
func splitIndexed(name, prefix string) (index int, attr string, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found {
		return 0, "", false
	}
	num, attr, found := strings.Cut(rest, "_")
	if !found || num == "" || len(num) > 6 || attr == "" {
		return 0, "", false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, "", false
		}
	}
	index, _ = strconv.Atoi(num)
	return index, attr, true
}

// thresholdSet reports whether a crit/max/trip value is a real threshold.
// Drivers write sentinels for "none": NVMe's unset thresholds read
// 65261.85 °C (0xFFFF K), others 0 or -273.15 °C.
func thresholdSet(celsius float64) bool {
	return celsius > 0 && celsius < 1000
}
