package smart

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	smartgo "github.com/anatol/smart.go"

	"github.com/hwheal/hwheal/pkg/smart"
)

// NativeReader reads drives through the kernel's pass-through ioctls,
// without smartctl:
//
//   - NVMe: one Get Log Page for the SMART / Health Information log (02h,
//     512 bytes, NSID FFFFFFFFh, valid on every controller) through
//     github.com/anatol/smart.go. Nothing else: identity comes from sysfs,
//     which the kernel filled from Identify at probe time, so no Identify
//     (smart.go's walks every namespace) and never the error log.
//   - ATA (a SCSI disk whose vendor is "ATA"): CHECK POWER MODE first, and
//     a drive in standby is reported as such and not read; then IDENTIFY
//     DEVICE, SMART RETURN STATUS, READ DATA and READ THRESHOLDS, each an
//     ATA PASS-THROUGH (16) through SG_IO with the time left as its
//     timeout. smart.go has neither CHECK POWER MODE nor RETURN STATUS
//     and hides the raw pages, and it sends IDENTIFY on open, before the
//     power mode could be checked, so these commands are issued here.
//
// Other drives (SAS, USB bridges, RAID volumes) are ErrNotSupported: no
// command is sent to them.
type NativeReader struct {
	openSAT  func(path string) (satDevice, error)
	openNVMe func(path string) (nvmeDevice, error)
}

// satDevice is an open device that takes SAT commands.
type satDevice interface {
	passThrough
	Close() error
}

// nvmeDevice is an open NVMe device that reads its health log.
type nvmeDevice interface {
	ReadSMART() (*smartgo.NvmeSMARTLog, error)
	Close() error
}

// NewNativeReader returns the reader that uses the host's ioctls.
func NewNativeReader() *NativeReader {
	return &NativeReader{openSAT: openSG, openNVMe: openNVMe}
}

// Name implements Reader.
func (r *NativeReader) Name() string { return "native" }

// Read implements Reader.
func (r *NativeReader) Read(ctx context.Context, d Disk) (*smart.Report, error) {
	switch d.Protocol {
	case smart.ProtocolNVMe:
		return r.readNVMe(ctx, d)
	case smart.ProtocolATA:
		return r.readATA(ctx, d)
	}
	what := string(d.Protocol)
	if what == "" {
		what = "a drive of unknown type"
	}
	return nil, fmt.Errorf("%s: %w natively for %s (only ATA and NVMe)", d.Name, ErrNotSupported, what)
}

// openErr names a failed open or ioctl: ErrNotSupported for a device
// without the ioctl, the errno (permission, absent) otherwise.
func openErr(d Disk, what string, err error) error {
	if notSupportedErrno(err) {
		return fmt.Errorf("%s: %w: %s on %s: %w", d.Name, ErrNotSupported, what, d.Path, err)
	}
	return fmt.Errorf("%s: %s on %s: %w", d.Name, what, d.Path, err)
}

func (r *NativeReader) readNVMe(ctx context.Context, d Disk) (*smart.Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dev, err := r.openNVMe(d.Path)
	if err != nil {
		return nil, openErr(d, "open", err)
	}
	defer dev.Close()
	l, err := dev.ReadSMART()
	if err != nil {
		return nil, openErr(d, "NVMe Get Log Page 02h (SMART / Health Information)", err)
	}
	h, err := nvmeHealth(l)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	passed := h.CriticalWarning == 0 // as smartctl derives it
	return &smart.Report{
		Protocol:      smart.ProtocolNVMe,
		Device:        d.Path,
		DeviceType:    "nvme",
		Model:         d.Model,
		Serial:        d.Serial,
		PowerOnHours:  h.PowerOnHours,
		TemperatureC:  h.TemperatureC,
		OverallPassed: &passed,
		NVMe:          h,
	}, nil
}

// nvmeHealth turns smart.go's decoded log page back into its 512 bytes
// (its layout is the page's) and parses them with pkg/smart, so that both
// readers share one parser and its checks (an all-zero page is an error:
// smart.go does not look at the status an NVMe passthrough ioctl returns).
func nvmeHealth(l *smartgo.NvmeSMARTLog) (*smart.NVMeHealth, error) {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, l); err != nil {
		return nil, fmt.Errorf("encode NVMe SMART log: %w", err)
	}
	return smart.ParseNVMeSmartLog(b.Bytes())
}

func (r *NativeReader) readATA(ctx context.Context, d Disk) (*smart.Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dev, err := r.openSAT(d.Path)
	if err != nil {
		return nil, openErr(d, "open", err)
	}
	defer dev.Close()
	run := func(c ataCommand, data []byte) (*ATARegisters, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := dev.do(c.cdb(), data, commandTimeout(ctx))
		if err != nil {
			return nil, openErr(d, c.String()+" (SG_IO)", err)
		}
		regs, err := c.evaluate(res)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		return regs, nil
	}

	rep := &smart.Report{Protocol: smart.ProtocolATA, Device: d.Path, DeviceType: "sat", Model: d.Model, Serial: d.Serial}
	regs, err := run(cmdCheckPowerMode, nil)
	var ataErr *ATAError
	switch {
	case errors.As(err, &ataErr):
		// The drive refused CHECK POWER MODE, so its mode is unknown: as
		// smartctl -n standby does, it is not read rather than risk a
		// spin-up.
		rep.Standby, rep.PowerMode = true, "UNKNOWN"
		return rep, nil
	case err != nil:
		return nil, err
	}
	mode, down := PowerMode(regs.Count)
	rep.PowerMode = mode
	if down {
		rep.Standby = true
		return rep, nil
	}

	page := make([]byte, smart.ATAPageSize)
	if _, err := run(cmdIdentify, page); err != nil {
		return nil, err
	}
	id, err := smart.ParseATAIdentify(page)
	switch {
	case errors.Is(err, smart.ErrChecksum):
		rep.Warnings = append(rep.Warnings, err.Error())
	case err != nil:
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	rep.Model, rep.Serial, rep.Firmware, rep.WWN, rep.CapacityBytes = id.Model, id.Serial, id.Firmware, id.WWN, id.CapacityBytes
	if !id.SMARTSupport {
		return nil, fmt.Errorf("%s: %w by the drive (IDENTIFY DEVICE word 82)", d.Name, ErrNotSupported)
	}
	if !id.SMARTEnabled {
		return nil, fmt.Errorf("%s: SMART is disabled on the drive (IDENTIFY DEVICE word 85); `smartctl -s on` enables it", d.Name)
	}

	regs, err = run(cmdReturnStatus, nil)
	if err != nil {
		return nil, err
	}
	if passed, ok := smartStatus(*regs); ok {
		rep.OverallPassed = &passed
	} else {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("SMART RETURN STATUS: LBA mid/high 0x%02x/0x%02x is neither pass nor fail", regs.LBAMid, regs.LBAHigh))
	}

	data := make([]byte, smart.ATAPageSize)
	if _, err := run(cmdReadData, data); err != nil {
		return nil, err
	}
	thresholds := make([]byte, smart.ATAPageSize)
	if _, err := run(cmdReadThresholds, thresholds); err != nil {
		return nil, err
	}
	h, err := smart.ParseATASmartPages(data, thresholds)
	switch {
	case errors.Is(err, smart.ErrChecksum) && h != nil:
		// smartctl only warns too: some firmware gets the sum wrong.
		rep.Warnings = append(rep.Warnings, err.Error())
	case err != nil:
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	rep.ATA = h
	rep.PowerOnHours, _ = h.PowerOnHours()
	rep.TemperatureC, _ = h.TemperatureC()
	return rep, nil
}

// commandTimeout is the time left for one command: what remains of ctx,
// at least a second (the drive needs that much), 10 s without a deadline.
func commandTimeout(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return 10 * time.Second
	}
	return max(time.Until(dl), time.Second)
}
