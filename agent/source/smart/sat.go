package smart

import (
	"errors"
	"fmt"
	"time"
)

// The ATA commands the native reader sends, wrapped in SCSI ATA
// PASS-THROUGH (16) (SAT-3 §12.2.2): the kernel's libata and the SATLs of
// SAS HBAs translate it. Only these five are ever sent, and only to disks
// whose SCSI vendor is "ATA".
const (
	ataCheckPowerMode = 0xe5
	ataIdentifyDevice = 0xec
	ataSMART          = 0xb0

	smartReadData       = 0xd0
	smartReadThresholds = 0xd1
	smartReturnStatus   = 0xda

	// The SMART command's signature in LBA 23:8, and what RETURN STATUS
	// puts there when a threshold is exceeded (ACS-3 7.48.10).
	smartLBAMid, smartLBAHigh       = 0x4f, 0xc2
	smartFailedMid, smartFailedHigh = 0xf4, 0x2c

	satPassThrough16 = 0x85
)

// ataCommand is one 28-bit ATA command.
type ataCommand struct {
	command, features, count, lbaLow, lbaMid, lbaHigh uint8
	// dataIn is the number of 512-byte sectors read (PIO data-in); 0 is a
	// non-data command whose output registers are asked back (CK_COND).
	dataIn int
}

// cdb encodes c as ATA PASS-THROUGH (16), as smartctl does: protocol 4
// (PIO data-in) with the length in the count field for reads, protocol 3
// (non-data) with CK_COND for commands whose answer is in the registers.
func (c ataCommand) cdb() [16]byte {
	var b [16]byte
	b[0] = satPassThrough16
	if c.dataIn > 0 {
		b[1] = 4 << 1
		b[2] = 1<<3 | 1<<2 | 2 // T_DIR from device, BYT_BLOK, T_LENGTH in the count field
	} else {
		b[1] = 3 << 1
		b[2] = 1<<5 | 1<<3 | 1<<2 // CK_COND (T_DIR and BYT_BLOK as smartctl sets them)
	}
	b[4] = c.features
	b[6] = c.count
	b[8] = c.lbaLow
	b[10] = c.lbaMid
	b[12] = c.lbaHigh
	b[14] = c.command
	return b
}

func (c ataCommand) String() string {
	switch c.command {
	case ataCheckPowerMode:
		return "CHECK POWER MODE"
	case ataIdentifyDevice:
		return "IDENTIFY DEVICE"
	case ataSMART:
		switch c.features {
		case smartReadData:
			return "SMART READ DATA"
		case smartReadThresholds:
			return "SMART READ THRESHOLDS"
		case smartReturnStatus:
			return "SMART RETURN STATUS"
		}
		return fmt.Sprintf("SMART feature 0x%02x", c.features)
	}
	return fmt.Sprintf("ATA command 0x%02x", c.command)
}

var (
	cmdCheckPowerMode = ataCommand{command: ataCheckPowerMode}
	cmdIdentify       = ataCommand{command: ataIdentifyDevice, count: 1, dataIn: 1}
	cmdReadData       = ataCommand{command: ataSMART, features: smartReadData, count: 1, lbaMid: smartLBAMid, lbaHigh: smartLBAHigh, dataIn: 1}
	cmdReadThresholds = ataCommand{command: ataSMART, features: smartReadThresholds, count: 1, lbaLow: 1, lbaMid: smartLBAMid, lbaHigh: smartLBAHigh, dataIn: 1}
	cmdReturnStatus   = ataCommand{command: ataSMART, features: smartReturnStatus, lbaMid: smartLBAMid, lbaHigh: smartLBAHigh}
)

// ATARegisters are the output registers of an ATA command as a SATL
// returns them in sense data.
type ATARegisters struct {
	Error, Count, LBALow, LBAMid, LBAHigh, Device, Status uint8
}

// ATA status register bits.
const (
	ataStatusErr = 1 << 0
	ataStatusDF  = 1 << 5 // device fault
)

// Sense is decoded SCSI sense data.
type Sense struct {
	// Descriptor is true for descriptor format (response codes 72h/73h),
	// false for fixed format (70h/71h).
	Descriptor     bool
	Key, ASC, ASCQ uint8
	// ATA holds the registers of an ATA Status Return descriptor (09h), or
	// of fixed-format sense that carries them (ASC/ASCQ 00h/1Dh, "ATA
	// pass through information available", or flagged valid as libata
	// does for a failed command); nil when there are none.
	ATA *ATARegisters
}

// Sense keys the reader tells apart.
const (
	senseNoSense        = 0x0
	senseRecoveredError = 0x1
	senseIllegalRequest = 0x5
	senseAbortedCommand = 0xb
)

// ParseSense decodes SCSI sense data as returned by SG_IO (SPC-4 4.4):
// fixed or descriptor format, and the ATA registers a SATL returns for a
// pass-through command (SAT-3 12.2.2.6 descriptor, 12.2.2.7 fixed).
func ParseSense(b []byte) (Sense, error) {
	if len(b) < 1 {
		return Sense{}, errors.New("sense data: empty")
	}
	var s Sense
	switch code := b[0] & 0x7f; code {
	case 0x70, 0x71:
		if len(b) < 3 {
			return Sense{}, fmt.Errorf("fixed sense data: %d bytes, want at least 3", len(b))
		}
		s.Key = b[2] & 0x0f
		// The additional length (byte 7) bounds what follows; a SATL that
		// wrote fewer bytes than it claims gives only what it wrote.
		n := len(b)
		if len(b) > 7 {
			n = min(n, 8+int(b[7]))
		}
		if n > 13 {
			s.ASC, s.ASCQ = b[12], b[13]
		}
		// SAT puts the registers in the INFORMATION and COMMAND-SPECIFIC
		// INFORMATION fields with ASC/ASCQ 00h/1Dh; libata also for a
		// failed command, flagging the fields valid (bit 7 of byte 0).
		if n > 11 && ((n > 13 && s.ASC == 0x00 && s.ASCQ == 0x1d) || b[0]&0x80 != 0) {
			s.ATA = &ATARegisters{
				Error: b[3], Status: b[4], Device: b[5], Count: b[6],
				LBALow: b[9], LBAMid: b[10], LBAHigh: b[11],
			}
		}
	case 0x72, 0x73:
		if len(b) < 4 {
			return Sense{}, fmt.Errorf("descriptor sense data: %d bytes, want at least 4", len(b))
		}
		s.Descriptor = true
		s.Key, s.ASC, s.ASCQ = b[1]&0x0f, b[2], b[3]
		if len(b) < 8 {
			return s, nil
		}
		end := min(len(b), 8+int(b[7]))
		for i := 8; i+1 < end; {
			typ, l := b[i], int(b[i+1])
			if typ == 0x09 && l >= 0x0c && i+14 <= end {
				d := b[i:]
				s.ATA = &ATARegisters{
					Error: d[3], Count: d[5], LBALow: d[7], LBAMid: d[9], LBAHigh: d[11],
					Device: d[12], Status: d[13],
				}
				break
			}
			i += 2 + l
		}
	default:
		return Sense{}, fmt.Errorf("sense data: response code 0x%02x is neither fixed nor descriptor format", code)
	}
	return s, nil
}

// sgResult is what the kernel says about one SG_IO command.
type sgResult struct {
	status       uint8  // SCSI status: 0 GOOD, 2 CHECK CONDITION, ...
	hostStatus   uint16 // DID_*: 0 OK, 3 DID_TIME_OUT, ...
	driverStatus uint16 // DRIVER_*: 8 DRIVER_SENSE
	sense        []byte // the sense bytes written
}

const (
	scsiStatusGood           = 0x00
	scsiStatusCheckCondition = 0x02
	hostTimeOut              = 0x03
	driverSense              = 0x08
)

// ATAError is an ATA command the drive (or the SATL) failed, with the
// registers it returned.
type ATAError struct {
	Command string
	Regs    ATARegisters
}

func (e *ATAError) Error() string {
	return fmt.Sprintf("%s failed: ATA status 0x%02x, error 0x%02x", e.Command, e.Regs.Status, e.Regs.Error)
}

// evaluate turns the outcome of one pass-through command into its output
// registers (for CK_COND commands) or an error. An error wrapping
// ErrNotSupported means the path does not take ATA pass-through (a SATL
// that rejects the CDB): the command did not reach a drive.
func (c ataCommand) evaluate(r sgResult) (*ATARegisters, error) {
	if r.hostStatus != 0 {
		if r.hostStatus == hostTimeOut {
			return nil, fmt.Errorf("%s: timed out in the host adapter", c)
		}
		return nil, fmt.Errorf("%s: host adapter status 0x%02x", c, r.hostStatus)
	}
	if d := r.driverStatus &^ driverSense; d != 0 {
		return nil, fmt.Errorf("%s: driver status 0x%02x", c, d)
	}
	switch r.status {
	case scsiStatusGood:
		if c.dataIn == 0 {
			// Asked for the registers and got none: a SATL that ignores
			// CK_COND. The answer is unknown, not "all zero".
			return nil, fmt.Errorf("%s: no ATA registers returned", c)
		}
		return nil, nil
	case scsiStatusCheckCondition:
	default:
		return nil, fmt.Errorf("%s: SCSI status 0x%02x", c, r.status)
	}
	s, err := ParseSense(r.sense)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	switch {
	case s.Key == senseIllegalRequest:
		return nil, fmt.Errorf("%s: %w: ATA pass-through rejected (sense %x/%02x/%02x)", c, ErrNotSupported, s.Key, s.ASC, s.ASCQ)
	case s.ATA != nil && s.ATA.Status&(ataStatusErr|ataStatusDF) != 0:
		return nil, &ATAError{Command: c.String(), Regs: *s.ATA}
	case s.Key != senseNoSense && s.Key != senseRecoveredError:
		return nil, fmt.Errorf("%s: sense %x/%02x/%02x", c, s.Key, s.ASC, s.ASCQ)
	case s.ATA == nil:
		if c.dataIn == 0 {
			return nil, fmt.Errorf("%s: no ATA registers in the sense data", c)
		}
		return nil, nil
	}
	return s.ATA, nil
}

// PowerMode names the count register CHECK POWER MODE returns (ACS-4
// 7.3.2) and tells whether the drive is spun down: reading it would spin it
// up. Names follow smartctl's.
func PowerMode(count uint8) (name string, spunDown bool) {
	switch count {
	case 0x00:
		return "STANDBY", true
	case 0x01:
		return "STANDBY_Y", true
	case 0x40:
		return "NV_CACHE_SPUN_DOWN", true // NV cache power mode, spindle down or spinning down
	case 0x41:
		return "NV_CACHE_SPUN_UP", false
	case 0x80:
		return "IDLE", false
	case 0x81:
		return "IDLE_A", false
	case 0x82:
		return "IDLE_B", false
	case 0x83:
		return "IDLE_C", false
	case 0xff:
		return "ACTIVE_OR_IDLE", false
	}
	// A value no standard defines: do not risk it.
	return fmt.Sprintf("UNKNOWN_0x%02x", count), true
}

// smartStatus reads SMART RETURN STATUS's verdict from LBA 23:8. ok is
// false for any other value: the drive did not answer the way ATA says.
func smartStatus(r ATARegisters) (passed, ok bool) {
	switch {
	case r.LBAMid == smartLBAMid && r.LBAHigh == smartLBAHigh:
		return true, true
	case r.LBAMid == smartFailedMid && r.LBAHigh == smartFailedHigh:
		return false, true
	}
	return false, false
}

// passThrough sends one SAT command. Implementations: the SG_IO ioctl on
// Linux, and the recorded pages in tests.
type passThrough interface {
	// do sends cdb with a data-in buffer (nil for a non-data command) and
	// room for sense data, and reports what the kernel said. An error is a
	// failure of the ioctl itself, with its errno.
	do(cdb [16]byte, data []byte, timeout time.Duration) (sgResult, error)
}
