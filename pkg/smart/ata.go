package smart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ATAPageSize is the size of every ATA SMART page and of IDENTIFY DEVICE data.
const ATAPageSize = 512

// The layout of SMART READ DATA and READ THRESHOLDS (ATA/ATAPI-7 and later,
// and the de-facto vendor layout of the attribute table that every drive
// since ATA-3 follows): a 2-byte revision, 30 entries of 12 bytes from
// byte 2, the checksum in byte 511.
const (
	ataAttrOffset   = 2
	ataAttrSize     = 12
	ataAttrEntries  = 30
	ataChecksumByte = 511
)

// ErrChecksum marks a page whose bytes do not sum to 0 mod 256. Parsers that
// return it still return what they decoded: smartctl, too, only warns,
// because some drives' firmware gets the checksum wrong while the data is
// good. Callers decide whether to trust it.
var ErrChecksum = errors.New("checksum mismatch")

// ParseATASmartPages decodes the 512-byte SMART READ DATA page (feature D0h)
// and, when thresholds is not nil, the 512-byte SMART READ THRESHOLDS page
// (feature D1h) of the same drive.
//
// On a checksum mismatch it returns the decoded health together with an
// error wrapping ErrChecksum. Other errors (wrong length, an all-zero data
// page) return no health.
func ParseATASmartPages(data, thresholds []byte) (*ATAHealth, error) {
	if len(data) != ATAPageSize {
		return nil, fmt.Errorf("SMART data page: %d bytes, want %d", len(data), ATAPageSize)
	}
	if thresholds != nil && len(thresholds) != ATAPageSize {
		return nil, fmt.Errorf("SMART thresholds page: %d bytes, want %d", len(thresholds), ATAPageSize)
	}
	if allZero(data) {
		// A zero page sums to zero too: without this check a drive (or a
		// pass-through layer) that returned nothing would look healthy.
		return nil, errors.New("SMART data page: all zeros (no data returned)")
	}
	var errs []error
	if s := sum8(data); s != 0 {
		errs = append(errs, fmt.Errorf("SMART data page: %w (sum 0x%02x)", ErrChecksum, s))
	}
	if thresholds != nil {
		if s := sum8(thresholds); s != 0 {
			errs = append(errs, fmt.Errorf("SMART thresholds page: %w (sum 0x%02x)", ErrChecksum, s))
		}
	}

	h := &ATAHealth{Revision: binary.LittleEndian.Uint16(data)}
	for i := range ataAttrEntries {
		e := data[ataAttrOffset+i*ataAttrSize:][:ataAttrSize]
		id := e[0]
		if id == 0 {
			continue // empty slot
		}
		raw := uint64(e[5]) | uint64(e[6])<<8 | uint64(e[7])<<16 |
			uint64(e[8])<<24 | uint64(e[9])<<32 | uint64(e[10])<<40
		a := ATAAttribute{
			ID:         id,
			Name:       defaultAttrName(id),
			Flags:      binary.LittleEndian.Uint16(e[1:3]),
			Value:      e[3],
			Worst:      e[4],
			Raw:        raw,
			RawString:  strconv.FormatUint(raw, 10),
			Prefailure: e[1]&1 != 0,
		}
		if thresholds != nil {
			a.Threshold = findThreshold(thresholds, i, id)
		}
		a.FailedNow, a.FailedPast = attrState(a.Value, a.Worst, a.Threshold)
		h.Attributes = append(h.Attributes, a)
	}
	return h, errors.Join(errs...)
}

// findThreshold looks for the threshold entry of attribute id, first in the
// same slot (where every drive puts it) and then anywhere, as smartctl does.
func findThreshold(page []byte, slot int, id uint8) uint8 {
	entry := func(i int) []byte { return page[ataAttrOffset+i*ataAttrSize:][:ataAttrSize] }
	if e := entry(slot); e[0] == id {
		return e[1]
	}
	for i := range ataAttrEntries {
		if e := entry(i); e[0] == id {
			return e[1]
		}
	}
	return 0
}

// attrState is smartctl's ata_get_attr_state: threshold 0 means "always
// passing" (ATA-3), otherwise the normalized value at or below the
// threshold fails.
func attrState(value, worst, threshold uint8) (now, past bool) {
	if threshold == 0 {
		return false, false
	}
	return value <= threshold, worst <= threshold || value <= threshold
}

// ATAIdentity is what IDENTIFY DEVICE says about the drive.
type ATAIdentity struct {
	Model    string
	Serial   string
	Firmware string
	WWN      string // "0x5000cca264eb01d7", empty when the drive has none
	// CapacityBytes is the user-addressable sectors times the logical
	// sector size.
	CapacityBytes      uint64
	LogicalSectorSize  uint32
	PhysicalSectorSize uint32
	// RotationRate is in rpm; 1 means a solid-state drive, 0 not reported.
	RotationRate  uint16
	SMARTSupport  bool
	SMARTEnabled  bool
	ChecksumValid bool // false when the page carries no checksum signature
}

// ParseATAIdentify decodes the 512-byte IDENTIFY DEVICE data (command ECh),
// which a native reader needs for the model, serial and WWN that smartctl
// gets the same way. Like ParseATASmartPages, it returns the identity along
// with an error wrapping ErrChecksum when word 255 carries the signature
// A5h and the bytes do not sum to zero.
func ParseATAIdentify(page []byte) (*ATAIdentity, error) {
	if len(page) != ATAPageSize {
		return nil, fmt.Errorf("IDENTIFY DEVICE data: %d bytes, want %d", len(page), ATAPageSize)
	}
	if allZero(page) {
		return nil, errors.New("IDENTIFY DEVICE data: all zeros (no data returned)")
	}
	w := func(i int) uint16 { return binary.LittleEndian.Uint16(page[2*i:]) }
	id := &ATAIdentity{
		Serial:   ataString(page[20:40]),
		Firmware: ataString(page[46:54]),
		Model:    ataString(page[54:94]),
	}
	// Words 82-87: command sets supported (82, 83, 84) and enabled (85-87);
	// bits 15:14 of words 83/84/87 must read 01 for the rest to be valid.
	valid := func(word uint16) bool { return word&0xc000 == 0x4000 }
	id.SMARTSupport = w(82)&1 != 0
	id.SMARTEnabled = w(85)&1 != 0

	sectors := uint64(w(60)) | uint64(w(61))<<16
	if valid(w(83)) && w(83)&(1<<10) != 0 { // 48-bit address feature set
		if s48 := uint64(w(100)) | uint64(w(101))<<16 | uint64(w(102))<<32 | uint64(w(103))<<48; s48 != 0 {
			sectors = s48
		}
	}
	id.LogicalSectorSize, id.PhysicalSectorSize = 512, 512
	if w106 := w(106); valid(w106) {
		if w106&(1<<12) != 0 { // logical sector longer than 256 words
			if words := uint32(w(117)) | uint32(w(118))<<16; words != 0 {
				id.LogicalSectorSize = 2 * words
			}
		}
		if w106&(1<<13) != 0 {
			id.PhysicalSectorSize = id.LogicalSectorSize << (w106 & 0xf)
		} else {
			id.PhysicalSectorSize = id.LogicalSectorSize
		}
	}
	id.CapacityBytes = sectors * uint64(id.LogicalSectorSize)

	// WWN in words 108-111, most significant word first, present when word
	// 87 (or 84) says so.
	if (valid(w(87)) && w(87)&(1<<8) != 0) || (valid(w(84)) && w(84)&(1<<8) != 0) {
		wwn := uint64(w(108))<<48 | uint64(w(109))<<32 | uint64(w(110))<<16 | uint64(w(111))
		if wwn != 0 {
			id.WWN = fmt.Sprintf("0x%016x", wwn)
		}
	}
	if r := w(217); r == 1 || (r >= 0x401 && r <= 0xfffe) {
		id.RotationRate = r
	}

	if page[510] == 0xa5 {
		if s := sum8(page); s != 0 {
			return id, fmt.Errorf("IDENTIFY DEVICE data: %w (sum 0x%02x)", ErrChecksum, s)
		}
		id.ChecksumValid = true
	}
	return id, nil
}

// ataString decodes an ATA string: pairs of characters swapped within each
// 16-bit word, padded with spaces.
func ataString(b []byte) string {
	s := make([]byte, len(b))
	for i := 0; i+1 < len(b); i += 2 {
		s[i], s[i+1] = b[i+1], b[i]
	}
	return strings.TrimSpace(strings.TrimRight(string(s), "\x00"))
}

// sum8 returns the sum of b modulo 256: 0 for a valid ATA page.
func sum8(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return s
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// defaultAttrName is smartctl's name for an attribute when its drive
// database has no vendor-specific one (the DEFAULT entry of drivedb.h).
// Vendor-specific names need that database, which this package does not
// carry: smartctl's JSON gives them.
func defaultAttrName(id uint8) string {
	switch id {
	case 1:
		return "Raw_Read_Error_Rate"
	case 2:
		return "Throughput_Performance"
	case 3:
		return "Spin_Up_Time"
	case 4:
		return "Start_Stop_Count"
	case 5:
		return "Reallocated_Sector_Ct"
	case 6:
		return "Read_Channel_Margin"
	case 7:
		return "Seek_Error_Rate"
	case 8:
		return "Seek_Time_Performance"
	case 9:
		return "Power_On_Hours"
	case 10:
		return "Spin_Retry_Count"
	case 11:
		return "Calibration_Retry_Count"
	case 12:
		return "Power_Cycle_Count"
	case 13:
		return "Read_Soft_Error_Rate"
	case 175:
		return "Program_Fail_Count_Chip"
	case 176:
		return "Erase_Fail_Count_Chip"
	case 177:
		return "Wear_Leveling_Count"
	case 178:
		return "Used_Rsvd_Blk_Cnt_Chip"
	case 179:
		return "Used_Rsvd_Blk_Cnt_Tot"
	case 180:
		return "Unused_Rsvd_Blk_Cnt_Tot"
	case 181:
		return "Program_Fail_Cnt_Total"
	case 182:
		return "Erase_Fail_Count_Total"
	case 183:
		return "Runtime_Bad_Block"
	case 184:
		return "End-to-End_Error"
	case 187:
		return "Reported_Uncorrect"
	case 188:
		return "Command_Timeout"
	case 189:
		return "High_Fly_Writes"
	case 190:
		return "Airflow_Temperature_Cel"
	case 191:
		return "G-Sense_Error_Rate"
	case 192:
		return "Power-Off_Retract_Count"
	case 193:
		return "Load_Cycle_Count"
	case 194:
		return "Temperature_Celsius"
	case 195:
		return "Hardware_ECC_Recovered"
	case 196:
		return "Reallocated_Event_Count"
	case 197:
		return "Current_Pending_Sector"
	case 198:
		return "Offline_Uncorrectable"
	case 199:
		return "UDMA_CRC_Error_Count"
	case 200:
		return "Multi_Zone_Error_Rate"
	case 201:
		return "Soft_Read_Error_Rate"
	case 202:
		return "Data_Address_Mark_Errs"
	case 203:
		return "Run_Out_Cancel"
	case 204:
		return "Soft_ECC_Correction"
	case 205:
		return "Thermal_Asperity_Rate"
	case 206:
		return "Flying_Height"
	case 207:
		return "Spin_High_Current"
	case 208:
		return "Spin_Buzz"
	case 209:
		return "Offline_Seek_Performnce"
	case 220:
		return "Disk_Shift"
	case 221:
		return "G-Sense_Error_Rate"
	case 222:
		return "Loaded_Hours"
	case 223:
		return "Load_Retry_Count"
	case 224:
		return "Load_Friction"
	case 225:
		return "Load_Cycle_Count"
	case 226:
		return "Load-in_Time"
	case 227:
		return "Torq-amp_Count"
	case 228:
		return "Power-off_Retract_Count"
	case 230:
		return "Head_Amplitude"
	case 231:
		return "Temperature_Celsius"
	case 232:
		return "Available_Reservd_Space"
	case 233:
		return "Media_Wearout_Indicator"
	case 240:
		return "Head_Flying_Hours"
	case 241:
		return "Total_LBAs_Written"
	case 242:
		return "Total_LBAs_Read"
	case 250:
		return "Read_Error_Retry_Rate"
	case 254:
		return "Free_Fall_Sensor"
	}
	return "Unknown_Attribute"
}
