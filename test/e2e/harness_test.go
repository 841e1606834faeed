// Package e2e runs hwheal as its users do: the real binaries as separate
// processes over real sockets, reading the real kernel. Tests that need
// root or a kernel feature skip with a one-line reason when they cannot run.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/hwheal/hwheal/test/faultinject"
)

// binDir holds the binaries TestMain builds once for every test.
var binDir string

// collectorStates maps a collector's --listen address to its --state-dir,
// where it keeps admin.token: ctl and fleetToken find the token of the
// collector they talk to, and a restarted collector keeps its token.
var collectorStates sync.Map

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hwheal-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/hwheal-agent", "../../cmd/hwheal-collector", "../../cmd/hwhealctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build binaries: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a binary running in the background with its output in a file.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	if name == "hwheal-collector" {
		if listen, state := flagValue(args, "--listen"), flagValue(args, "--state-dir"); listen != "" && state != "" {
			collectorStates.Store(listen, state)
			t.Cleanup(func() { collectorStates.CompareAndDelete(listen, state) })
		}
	}
	p := &proc{t: t, name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 60))
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%s did not stop within 20s of SIGTERM", p.name)
	}
}

// kill sends SIGKILL: the process gets no chance to tidy up.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomID(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// randomLetters returns n lowercase letters, for names kernel patterns
// accept as device names (sdX).
func randomLetters(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}

// flagValue is the value of flag in args ("--flag value" or
// "--flag=value"), "" when absent.
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// tokenFile is the admin.token of the collector started on addr: a
// collector without --tokens makes it in its state directory.
func tokenFile(addr string) (string, bool) {
	state, ok := collectorStates.Load(addr)
	if !ok {
		return "", false
	}
	return filepath.Join(state.(string), "admin.token"), true
}

// fleetToken sends the admin token of the collector on addr with every
// fleet API call of a gRPC client. The collector writes the token when it
// starts, so it is read at the first call that finds it, then kept: the
// latency benchmarks poll every millisecond.
func fleetToken(t testing.TB, addr string) grpc.DialOption {
	t.Helper()
	path, ok := tokenFile(addr)
	if !ok {
		t.Fatalf("no collector started on %s", addr)
	}
	return grpc.WithPerRPCCredentials(&fileToken{path: path})
}

type fileToken struct {
	path  string
	mu    sync.Mutex
	token string
}

func (f *fileToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token == "" {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		f.token = strings.TrimSpace(string(b))
	}
	return map[string]string{"authorization": "Bearer " + f.token}, nil
}

func (*fileToken) RequireTransportSecurity() bool { return false }

// ctl runs hwhealctl against addr, with the collector's admin token, and
// returns its standard output.
func ctl(t testing.TB, addr string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{"--insecure", "--collector", addr}
	if path, ok := tokenFile(addr); ok {
		base = append(base, "--token-file", path)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "hwhealctl"), append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("hwhealctl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// ctlJSON runs hwhealctl -o json and decodes its output into v.
func ctlJSON(t testing.TB, addr string, v any, args ...string) error {
	t.Helper()
	out, err := ctl(t, addr, append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("decode hwhealctl %v output: %v: %s", args, err, out)
	}
	return nil
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (writes /dev/kmsg)")
	}
}

// writeKmsg writes records into the kernel log as user space does. The
// caller must have enabled printk_devkmsg for more than a few lines.
func writeKmsg(t testing.TB, lines ...string) {
	t.Helper()
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open /dev/kmsg: %v", err)
	}
	defer f.Close()
	for _, l := range lines {
		// One write is one record.
		if _, err := f.Write([]byte(l)); err != nil {
			t.Fatalf("write /dev/kmsg: %v", err)
		}
	}
}

// enableDevkmsg lifts the kernel's rate limit on user writes to /dev/kmsg
// for the test and restores the old setting after it.
func enableDevkmsg(t testing.TB) {
	t.Helper()
	const path = "/proc/sys/kernel/printk_devkmsg"
	old, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("needs %s: %v", path, err)
	}
	if err := os.WriteFile(path, []byte("on\n"), 0o644); err != nil {
		t.Skipf("cannot set %s: %v", path, err)
	}
	t.Cleanup(func() { os.WriteFile(path, old, 0o644) })
}

// fault is the part of hwhealctl's fault JSON the tests look at.
type fault struct {
	ID         json.Number `json:"id"`
	Node       string      `json:"node"`
	FaultClass string      `json:"fault_class"`
	Severity   string      `json:"severity"`
	Count      json.Number `json:"count"`
	State      string      `json:"state"`
	Mode       string      `json:"mode"`
	Reopened   int         `json:"reopened"`
	Rule       string      `json:"rule"`
	ClearAfter string      `json:"clear_after"`
	Acked      *struct {
		Actor  string `json:"actor"`
		Reason string `json:"reason"`
	} `json:"acknowledged"`
	Part struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"part"`
	Evidence struct {
		KernelLog struct {
			Level    int    `json:"level"`
			Facility int    `json:"facility"`
			Message  string `json:"message"`
		} `json:"kernel_log"`
	} `json:"evidence"`
}

type node struct {
	Name       string            `json:"name"`
	Health     string            `json:"health"`
	Connected  bool              `json:"connected"`
	Labels     map[string]string `json:"labels"`
	OpenFaults int               `json:"open_faults"`
}

// resumeAfterHistory gives the agent a kmsg cursor at the end of the
// kernel's ring, as an agent that already ran on this boot has: the ring
// holds earlier tests' fault lines (thousands of made-up disks, reused
// loop device names), which a first start would replay, using up the
// flood limiter's budget before the test's own faults come.
func resumeAfterHistory(t testing.TB, stateDir string) {
	t.Helper()
	k, err := faultinject.OpenKmsg()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	enableDevkmsg(t)
	marker := "hwheal-e2e-history-end-" + randomID(t, 6)
	writeKmsg(t, "<6>"+marker+"\n")
	var seq uint64
	for deadline := time.Now().Add(5 * time.Second); seq == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		recs, err := k.Read()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Message == marker {
				seq = r.Seq
			}
		}
	}
	if seq == 0 {
		t.Fatal("the marker written to /dev/kmsg did not come back")
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	cursor := fmt.Sprintf("%s %d\n", strings.TrimSpace(string(boot)), seq)
	if err := os.WriteFile(filepath.Join(stateDir, "kmsg.cursor"), []byte(cursor), 0o600); err != nil {
		t.Fatal(err)
	}
}
