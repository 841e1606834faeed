package smart

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"github.com/hwheal/hwheal/pkg/smart"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	blobDir = "testdata/libblockdev"
	jsonDir = "testdata/smartctl_json"
)

// blob is one of libblockdev's libatasmart dumps: IDFY (IDENTIFY DEVICE),
// SMDT (SMART READ DATA), SMTH (READ THRESHOLDS), each 512 bytes, and SMST
// (RETURN STATUS, big-endian uint32, non-zero = good).
type blob struct {
	name                       string
	identify, data, thresholds []byte
	good                       bool
}

func readBlob(t testing.TB, path string) blob {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := blob{name: strings.TrimSuffix(filepath.Base(path), ".bin")}
	for len(b) > 0 {
		if len(b) < 8 {
			t.Fatalf("%s: %d trailing bytes", path, len(b))
		}
		tag, n := string(b[:4]), binary.BigEndian.Uint32(b[4:8])
		if uint32(len(b)-8) < n {
			t.Fatalf("%s: record %s truncated", path, tag)
		}
		rec := b[8 : 8+n]
		switch tag {
		case "IDFY":
			out.identify = rec
		case "SMDT":
			out.data = rec
		case "SMTH":
			out.thresholds = rec
		case "SMST":
			out.good = binary.BigEndian.Uint32(rec) != 0
		}
		b = b[8+n:]
	}
	if len(out.identify) != 512 || len(out.data) != 512 || len(out.thresholds) != 512 {
		t.Fatalf("%s: pages missing", path)
	}
	return out
}

func allBlobs(t testing.TB) []blob {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(blobDir, "*.bin"))
	if err != nil || len(paths) != 13 {
		t.Fatalf("found %d dumps (%v), want libblockdev's 13", len(paths), err)
	}
	var out []blob
	for _, p := range paths {
		out = append(out, readBlob(t, p))
	}
	return out
}

// pageDrive answers SAT pass-through from a blob the way libata does (and
// testdata/satshim.c does for smartctl): the fake at the SG_IO seam.
type pageDrive struct {
	b     blob
	power uint8 // CHECK POWER MODE count
	fixed bool  // fixed-format sense, as the kernel gives since 6.10
	// abort makes the drive abort this command (its opcode).
	abort uint8
	// illegal makes the SATL reject every pass-through CDB.
	illegal bool

	mu   sync.Mutex
	log  []string
	open int
}

func newPageDrive(b blob) *pageDrive { return &pageDrive{b: b, power: 0xff} }

func (p *pageDrive) commands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

func (p *pageDrive) opener(string) (satDevice, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open++
	return (*pageConn)(p), nil
}

type pageConn pageDrive

func (c *pageConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open--
	return nil
}

func (c *pageConn) do(cdb [16]byte, data []byte, _ time.Duration) (sgResult, error) {
	p := (*pageDrive)(c)
	feat, cmd := cdb[4], cdb[14]
	entry := hex2(cmd)
	if cmd == ataSMART {
		entry += "/" + hex2(feat)
	}
	p.mu.Lock()
	p.log = append(p.log, entry)
	p.mu.Unlock()

	r := ATARegisters{Count: cdb[6], LBALow: cdb[8], LBAMid: cdb[10], LBAHigh: cdb[12], Device: cdb[13], Status: 0x50}
	if p.illegal || cdb[0] != satPassThrough16 {
		return p.sense(0x05, 0x24, 0x00, r), nil
	}
	ckCond := cdb[2]&0x20 != 0
	var src []byte
	switch {
	case cmd == p.abort:
		r.Status, r.Error = 0x51, 0x04
		return p.sense(0x0b, 0x00, 0x00, r), nil
	case cmd == ataCheckPowerMode:
		r.Count = p.power
	case cmd == ataIdentifyDevice:
		src = p.b.identify
	case cmd == ataSMART && feat == smartReadData:
		src = p.b.data
	case cmd == ataSMART && feat == smartReadThresholds:
		src = p.b.thresholds
	case cmd == ataSMART && feat == smartReturnStatus:
		r.LBAMid, r.LBAHigh = smartLBAMid, smartLBAHigh
		if !p.b.good {
			r.LBAMid, r.LBAHigh = smartFailedMid, smartFailedHigh
		}
	default:
		r.Status, r.Error = 0x51, 0x04
		return p.sense(0x0b, 0x00, 0x00, r), nil
	}
	copy(data, src)
	if ckCond {
		return p.sense(0x01, 0x00, 0x1d, r), nil
	}
	return sgResult{}, nil
}

// sense is CHECK CONDITION with the registers, in the drive's format.
func (p *pageDrive) sense(key, asc, ascq uint8, r ATARegisters) sgResult {
	var b []byte
	if p.fixed {
		b = make([]byte, 18)
		b[0], b[2], b[7], b[12], b[13] = 0xf0, key, 10, asc, ascq
		b[3], b[4], b[5], b[6] = r.Error, r.Status, r.Device, r.Count
		b[9], b[10], b[11] = r.LBALow, r.LBAMid, r.LBAHigh
	} else {
		b = make([]byte, 22)
		b[0], b[1], b[2], b[3], b[7] = 0x72, key, asc, ascq, 14
		d := b[8:]
		d[0], d[1] = 0x09, 0x0c
		d[3], d[5], d[7], d[9], d[11], d[12], d[13] = r.Error, r.Count, r.LBALow, r.LBAMid, r.LBAHigh, r.Device, r.Status
	}
	return sgResult{status: scsiStatusCheckCondition, driverStatus: driverSense, sense: b}
}

func hex2(b uint8) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}

// nativeFor returns a native reader whose ATA drives are the given fakes,
// by device path.
func nativeFor(drives map[string]*pageDrive) *NativeReader {
	return &NativeReader{
		openSAT: func(path string) (satDevice, error) {
			d, ok := drives[path]
			if !ok {
				return nil, os.ErrNotExist
			}
			return d.opener(path)
		},
		openNVMe: openNVMe,
	}
}

func parseJSONFile(t testing.TB, path string) *smart.Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := smart.ParseSmartctlJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rep
}

// fakeReader is a Reader at the seam: it answers each disk with the
// reports it is given (the last one repeats), and can hang.
type fakeReader struct {
	name string

	mu      sync.Mutex
	reports map[string][]*smart.Report
	errs    map[string]error
	calls   map[string]int
	// hang makes a read of the named disk block until release is closed,
	// whatever its context says: an ioctl that does not return.
	hang    map[string]bool
	release chan struct{}
	// gate, when set, is where every read waits after saying so on
	// entered: the test decides when reads finish.
	entered chan string
	gate    chan struct{}
	active  int
	peak    int
}

func newFakeReader(name string) *fakeReader {
	return &fakeReader{
		name:    name,
		reports: map[string][]*smart.Report{},
		errs:    map[string]error{},
		calls:   map[string]int{},
		hang:    map[string]bool{},
		release: make(chan struct{}),
	}
}

func (f *fakeReader) Name() string { return f.name }

func (f *fakeReader) set(disk string, reps ...*smart.Report) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports[disk] = reps
}

func (f *fakeReader) callsOf(disk string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[disk]
}

func (f *fakeReader) Read(ctx context.Context, d Disk) (*smart.Report, error) {
	f.mu.Lock()
	n := f.calls[d.Name]
	f.calls[d.Name]++
	hang := f.hang[d.Name]
	f.active++
	f.peak = max(f.peak, f.active)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	if f.entered != nil {
		f.entered <- d.Name
		<-f.gate
	}
	if hang {
		<-f.release
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[d.Name]; err != nil {
		return nil, err
	}
	reps := f.reports[d.Name]
	if len(reps) == 0 {
		return nil, ErrNotSupported
	}
	rep := *reps[min(n, len(reps)-1)]
	return &rep, nil
}

// diskTree lays out /sys/block the way the kernel does for the named
// disks: a directory under /sys/devices and a relative link in /sys/block.
type sysDisk struct {
	name   string
	devDir string // below sys/devices, without the disk's own "block/<name>"
	vendor string // SCSI vendor; "" for NVMe
	attrs  map[string]string
}

func diskTree(t testing.TB, disks ...sysDisk) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range disks {
		blockDir := filepath.Join("devices", d.devDir, "block", d.name)
		sourcetest.WriteFile(t, filepath.Join(root, "sys", blockDir, "size"), "1000000\n")
		for k, v := range d.attrs {
			sourcetest.WriteFile(t, filepath.Join(root, "sys", blockDir, k), v)
		}
		if d.vendor != "" {
			sourcetest.WriteFile(t, filepath.Join(root, "sys/devices", d.devDir, "vendor"), d.vendor+"\n")
			sourcetest.WriteFile(t, filepath.Join(root, "sys/devices", d.devDir, "model"), "MODEL "+d.name+"\n")
			if err := os.Symlink("../..", filepath.Join(root, "sys", blockDir, "device")); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(root, "sys/block"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", blockDir), filepath.Join(root, "sys/block", d.name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// sataDisk is an ATA disk behind libata at ataN.
func sataDisk(name string, n int) sysDisk {
	return sysDisk{
		name:   name,
		devDir: "pci0000:00/0000:00:1f.2/ata" + itoa(n) + "/host" + itoa(n) + "/target" + itoa(n) + ":0:0/" + itoa(n) + ":0:0:0",
		vendor: "ATA",
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// lookSmartctl returns smartctl, or skips the test with one line.
func lookSmartctl(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("smartctl")
	if err != nil {
		t.Skip("smartctl not on PATH (Debian: apt-get install smartmontools)")
	}
	return p
}

func errInval() error { return syscall.EINVAL }
func errPerm() error  { return syscall.EPERM }
