package smart

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	smartgo "github.com/anatol/smart.go"
	"golang.org/x/sys/unix"
)

// SG_IO and struct sg_io_hdr (include/scsi/sg.h), which x/sys/unix lacks.
const (
	sgIO           = 0x2285
	sgDxferNone    = -1
	sgDxferFromDev = -3
	maxSense       = 64
)

type sgIOHdr struct {
	interfaceID    int32
	dxferDirection int32
	cmdLen         uint8
	mxSbLen        uint8
	iovecCount     uint16
	dxferLen       uint32
	dxferp         uintptr
	cmdp           uintptr
	sbp            uintptr
	timeout        uint32
	flags          uint32
	packID         int32
	usrPtr         uintptr
	status         uint8
	maskedStatus   uint8
	msgStatus      uint8
	sbLenWr        uint8
	hostStatus     uint16
	driverStatus   uint16
	resid          int32
	duration       uint32
	info           uint32
}

// sgDevice is a block device opened for SG_IO. Its buffers live in it, on
// the heap, because the kernel is handed their addresses inside the header
// where the garbage collector cannot see them.
type sgDevice struct {
	fd    int
	cdb   [16]byte
	sense [maxSense]byte
	data  [512]byte
}

// openSG opens path without waiting for a medium (O_NONBLOCK, as smartctl
// does); opening a disk sends it no command.
func openSG(path string) (satDevice, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &sgDevice{fd: fd}, nil
}

func (d *sgDevice) Close() error { return unix.Close(d.fd) }

func (d *sgDevice) do(cdb [16]byte, data []byte, timeout time.Duration) (sgResult, error) {
	if len(data) > len(d.data) {
		return sgResult{}, fmt.Errorf("SG_IO: %d-byte transfer, at most %d", len(data), len(d.data))
	}
	d.cdb = cdb
	clear(d.sense[:])
	clear(d.data[:])
	hdr := sgIOHdr{
		interfaceID:    'S',
		dxferDirection: sgDxferNone,
		cmdLen:         uint8(len(d.cdb)),
		mxSbLen:        uint8(len(d.sense)),
		cmdp:           uintptr(unsafe.Pointer(&d.cdb[0])),
		sbp:            uintptr(unsafe.Pointer(&d.sense[0])),
		timeout:        uint32(min(timeout, time.Hour) / time.Millisecond),
	}
	if len(data) > 0 {
		hdr.dxferDirection = sgDxferFromDev
		hdr.dxferLen = uint32(len(data))
		hdr.dxferp = uintptr(unsafe.Pointer(&d.data[0]))
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), sgIO, uintptr(unsafe.Pointer(&hdr)))
	runtime.KeepAlive(d)
	if errno != 0 {
		return sgResult{}, errno
	}
	copy(data, d.data[:])
	return sgResult{
		status:       hdr.status,
		hostStatus:   hdr.hostStatus,
		driverStatus: hdr.driverStatus,
		sense:        append([]byte(nil), d.sense[:min(int(hdr.sbLenWr), len(d.sense))]...),
	}, nil
}

func openNVMe(path string) (nvmeDevice, error) { return smartgo.OpenNVMe(path) }
