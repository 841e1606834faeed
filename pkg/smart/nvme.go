package smart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// NVMeSmartLogSize is the size of the SMART / Health Information log page.
const NVMeSmartLogSize = 512

// kelvinOffset converts the log page's kelvins to degrees Celsius; the
// specification itself rounds 273.15 down.
const kelvinOffset = 273

// ParseNVMeSmartLog decodes the NVMe SMART / Health Information log page
// (Get Log Page, log identifier 02h), as laid out in the NVMe base
// specification: byte 0 critical warning, 1-2 composite temperature (K),
// 3 available spare, 4 its threshold, 5 percentage used, 6 endurance group
// critical warning summary, 32-191 the 128-bit little-endian counters,
// 192-199 the temperature-time counters, 200-215 temperature sensors 1-8.
// A longer buffer is accepted (readers often fetch 4 KiB); bytes past 512
// are ignored.
func ParseNVMeSmartLog(page []byte) (*NVMeHealth, error) {
	if len(page) < NVMeSmartLogSize {
		return nil, fmt.Errorf("NVMe SMART log: %d bytes, want %d", len(page), NVMeSmartLogSize)
	}
	page = page[:NVMeSmartLogSize]
	if allZero(page) {
		// The composite temperature is mandatory and never 0 K: a zero page
		// is a command that returned nothing, not a healthy drive.
		return nil, errors.New("NVMe SMART log: all zeros (no data returned)")
	}
	le := binary.LittleEndian
	h := &NVMeHealth{
		CriticalWarning:               NVMeWarning(page[0]),
		TemperatureC:                  int(le.Uint16(page[1:])) - kelvinOffset,
		AvailableSpare:                page[3],
		AvailableSpareThreshold:       page[4],
		PercentageUsed:                page[5],
		EnduranceGroupCriticalWarning: page[6],
		DataUnitsRead:                 u128(page[32:]),
		DataUnitsWritten:              u128(page[48:]),
		HostReadCommands:              u128(page[64:]),
		HostWriteCommands:             u128(page[80:]),
		ControllerBusyMinutes:         u128(page[96:]),
		PowerCycles:                   u128(page[112:]),
		PowerOnHours:                  u128(page[128:]),
		UnsafeShutdowns:               u128(page[144:]),
		MediaErrors:                   u128(page[160:]),
		NumErrLogEntries:              u128(page[176:]),
		WarningTempMinutes:            le.Uint32(page[192:]),
		CriticalTempMinutes:           le.Uint32(page[196:]),
	}
	for i := range 8 {
		if k := le.Uint16(page[200+2*i:]); k != 0 { // 0: sensor not implemented
			h.TemperatureSensorsC = append(h.TemperatureSensorsC, int(k)-kelvinOffset)
		}
	}
	return h, nil
}

// u128 reads a 128-bit little-endian counter, saturating at the largest
// uint64: no drive gets there, and a saturated counter still compares as
// "very large" in every rule.
func u128(b []byte) uint64 {
	if binary.LittleEndian.Uint64(b[8:]) != 0 {
		return math.MaxUint64
	}
	return binary.LittleEndian.Uint64(b)
}
