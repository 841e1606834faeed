package smart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hwheal/hwheal/pkg/smart"
)

// SmartctlReader reads drives with smartmontools' smartctl, version 7 or
// later (the first with stable --json). It asks for what the source needs
// and nothing that touches a log the drive keeps:
//
//	smartctl --json=c --info --health --attributes --nocheck=standby [--device=sat] <device>
//
// --nocheck=standby makes smartctl issue CHECK POWER MODE first and stop,
// with "Device is in STANDBY mode, exit(2)", for a drive that is spun down;
// that reads as a Report with Standby set. No -l error or -l selftest: on
// some drives reading those logs is itself logged. An ATA drive (sysfs
// vendor "ATA") is named SAT, so that CHECK POWER MODE is the first command
// it gets: autodetection would send IDENTIFY DEVICE first. For NVMe it is given
// the namespace, not the controller (see Disk.BlockPath).
type SmartctlReader struct {
	// path is the smartctl binary; "" looks "smartctl" up on PATH.
	path string
	// env is added to smartctl's environment (tests preload a shim).
	env []string

	mu      sync.Mutex
	checked bool
	bin     string
	version string
	err     error
}

// NewSmartctlReader returns a reader that runs the smartctl at path, or
// the one on PATH when path is "". The binary and its version are checked
// at the first Read.
func NewSmartctlReader(path string) *SmartctlReader { return &SmartctlReader{path: path} }

// Name implements Reader.
func (r *SmartctlReader) Name() string { return "smartctl" }

// maxSmartctlOutput bounds what is kept of smartctl's output: a full -x
// report of a SAS drive is under 100 KB.
const maxSmartctlOutput = 4 << 20

// Binary returns the smartctl that Read runs and its version ("7.3"), or
// why there is none usable: an error wrapping ErrNotSupported when it is
// not installed or older than 7.
func (r *SmartctlReader) Binary(ctx context.Context) (bin, version string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checked {
		return r.bin, r.version, r.err
	}
	bin, version, err = r.check(ctx)
	if ctx.Err() == nil {
		// A check cut short is tried again; its answer is not the binary's.
		r.checked, r.bin, r.version, r.err = true, bin, version, err
	}
	return bin, version, err
}

func (r *SmartctlReader) check(ctx context.Context) (string, string, error) {
	bin := r.path
	if bin == "" {
		p, err := exec.LookPath("smartctl")
		if err != nil {
			return "", "", fmt.Errorf("%w: smartctl is not installed (not on PATH)", ErrNotSupported)
		}
		bin = p
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = append(os.Environ(), r.env...)
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	// smartctl exits 0 for --version; a non-zero exit with a version line
	// is still a version line.
	line, _, _ := strings.Cut(string(out), "\n")
	major, minor, perr := ParseSmartctlVersion(line)
	if perr != nil {
		if err != nil {
			return "", "", fmt.Errorf("%w: run %s --version: %w", ErrNotSupported, bin, err)
		}
		return "", "", fmt.Errorf("%w: %s --version: %w", ErrNotSupported, bin, perr)
	}
	version := strconv.Itoa(major) + "." + strconv.Itoa(minor)
	if major < 7 {
		return "", "", fmt.Errorf("%w: %s is smartctl %s, older than 7.0 (no JSON output)", ErrNotSupported, bin, version)
	}
	return bin, version, nil
}

// ParseSmartctlVersion reads the first line of `smartctl --version`:
// "smartctl 7.3 2022-02-28 r5338 [x86_64-linux-6.1.0] (local build)", or
// "smartctl pre-7.4 2023-06-01 r5488 [...]" for a build between releases
// (the coming release is counted).
func ParseSmartctlVersion(line string) (major, minor int, err error) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "smartctl" {
		return 0, 0, fmt.Errorf("not a smartctl version line: %.80q", line)
	}
	v := strings.TrimPrefix(f[1], "pre-")
	ma, mi, ok := strings.Cut(v, ".")
	if !ok {
		return 0, 0, fmt.Errorf("smartctl version %.40q is not MAJOR.MINOR", f[1])
	}
	major, err1 := strconv.Atoi(ma)
	minor, err2 := strconv.Atoi(mi)
	if err1 != nil || err2 != nil || major < 0 || minor < 0 || major > 1000 || minor > 1000 {
		return 0, 0, fmt.Errorf("smartctl version %.40q is not MAJOR.MINOR", f[1])
	}
	return major, minor, nil
}

// Read implements Reader.
func (r *SmartctlReader) Read(ctx context.Context, d Disk) (*smart.Report, error) {
	bin, _, err := r.Binary(ctx)
	if err != nil {
		return nil, err
	}
	dev := d.BlockPath
	if dev == "" {
		dev = d.Path
	}
	args := []string{"--json=c", "--info", "--health", "--attributes", "--nocheck=standby"}
	if d.Protocol == smart.ProtocolATA {
		// Autodetection confirms SAT with an IDENTIFY DEVICE before
		// --nocheck's CHECK POWER MODE (smartmontools 7.3); the drive
		// said "ATA" already, so SAT is what it would pick.
		args = append(args, "--device=sat")
	}
	cmd := exec.CommandContext(ctx, bin, append(args, dev)...)
	cmd.Env = append(os.Environ(), append([]string{"LC_ALL=C"}, r.env...)...)
	// smartctl stuck in an ioctl cannot be killed until the ioctl returns;
	// do not wait on its pipes past that.
	cmd.WaitDelay = time.Second
	stdout := &limitedBuffer{max: maxSmartctlOutput}
	stderr := &limitedBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	runErr := cmd.Run()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("smartctl %s: %w", dev, err)
	}
	if stdout.Len() == 0 {
		if runErr == nil {
			runErr = errors.New("no output")
		}
		return nil, fmt.Errorf("smartctl %s: %w%s", dev, runErr, stderrSuffix(stderr.String()))
	}
	rep, err := smart.ParseSmartctlJSON(bytes.NewReader(stdout.Bytes()))
	if err != nil {
		return nil, classifySmartctl(dev, err)
	}
	if rep.Smartctl != nil && rep.Smartctl.Version != "" {
		if major, _, err := ParseSmartctlVersion("smartctl " + rep.Smartctl.Version); err == nil && major < 7 {
			return nil, fmt.Errorf("%w: smartctl %s: version %s, older than 7.0", ErrNotSupported, dev, rep.Smartctl.Version)
		}
	}
	return rep, nil
}

// classifySmartctl tells from smartctl's messages (carried in err) why it
// read nothing: permission (not root), a device it cannot talk to, or
// anything else.
func classifySmartctl(dev string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Permission denied") || strings.Contains(msg, "Operation not permitted"):
		return fmt.Errorf("smartctl %s: %w: %w", dev, fs.ErrPermission, err)
	case strings.Contains(msg, "Unable to detect device type"),
		strings.Contains(msg, "please try adding '-d"),
		strings.Contains(msg, "Unknown USB bridge"),
		strings.Contains(msg, "Inappropriate ioctl"),
		strings.Contains(msg, "SMART support is: Unavailable"),
		strings.Contains(msg, "Device does not support SMART"):
		return fmt.Errorf("smartctl %s: %w: %w", dev, ErrNotSupported, err)
	}
	return fmt.Errorf("smartctl %s: %w", dev, err)
}

func stderrSuffix(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return ""
	}
	return ": " + s
}

// limitedBuffer keeps the first max bytes written to it and drops the
// rest, so that a runaway child cannot grow the agent. (Not an embedded
// bytes.Buffer: its ReadFrom would let io.Copy past the limit.)
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) Len() int       { return b.buf.Len() }
func (b *limitedBuffer) Bytes() []byte  { return b.buf.Bytes() }
func (b *limitedBuffer) String() string { return b.buf.String() }
