package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// orderCollector is an AgentService that speaks the collector's side of
// remediation: it welcomes, stores reports once by seq, acks, and sends
// its orders after every Welcome to agents whose hello carries a guard,
// as the collector does until it holds an order's final update (here:
// always, to show the agent runs each id once whatever it is sent).
type orderCollector struct {
	hwhealv1.UnimplementedAgentServiceServer
	orders []*hwhealv1.ActionOrder
	// toAll sends the orders to agents without a guard too, as a
	// collector gone wrong might.
	toAll bool

	mu      sync.Mutex
	hellos  []*hwhealv1.Hello
	acked   map[string]uint64
	updates []*hwhealv1.ActionUpdate
}

func (c *orderCollector) Connect(stream grpc.BidiStreamingServer[hwhealv1.ConnectRequest, hwhealv1.ConnectResponse]) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	h := m.GetHello()
	if h == nil {
		return status.Error(codes.FailedPrecondition, "hello first")
	}
	c.mu.Lock()
	c.hellos = append(c.hellos, h)
	acked := c.acked[h.GetStreamId()]
	c.mu.Unlock()
	if err := stream.Send(&hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Welcome{Welcome: &hwhealv1.Welcome{AckedSeq: acked}}}); err != nil {
		return err
	}
	if h.GetGuard() != nil || c.toAll {
		for _, o := range c.orders {
			if err := stream.Send(&hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Order{Order: o}}); err != nil {
				return err
			}
		}
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		for _, r := range m.GetReports().GetReports() {
			if r.GetSeq() <= c.acked[h.GetStreamId()] {
				continue
			}
			c.acked[h.GetStreamId()] = r.GetSeq()
			if u := r.GetActionUpdate(); u != nil {
				c.updates = append(c.updates, u)
			}
		}
		acked = c.acked[h.GetStreamId()]
		c.mu.Unlock()
		if err := stream.Send(&hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Ack{Ack: &hwhealv1.Ack{AckedSeq: acked}}}); err != nil {
			return err
		}
	}
}

func (c *orderCollector) of(id string) []*hwhealv1.ActionUpdate {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*hwhealv1.ActionUpdate
	for _, u := range c.updates {
		if u.GetActionId() == id {
			out = append(out, u)
		}
	}
	return out
}

func (c *orderCollector) lastHello() *hwhealv1.Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.hellos) == 0 {
		return nil
	}
	return c.hellos[len(c.hellos)-1]
}

func startOrderCollector(t *testing.T, c *orderCollector) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.acked = map[string]uint64{}
	srv := grpc.NewServer()
	hwhealv1.RegisterAgentServiceServer(srv, c)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func writeBootID(t *testing.T, root, id string) {
	t.Helper()
	p := filepath.Join(root, "proc/sys/kernel/random/boot_id")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func finalOf(us []*hwhealv1.ActionUpdate) []*hwhealv1.ActionUpdate {
	var out []*hwhealv1.ActionUpdate
	for _, u := range us {
		if u.GetOutcome() != hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING {
			out = append(out, u)
		}
	}
	return out
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestAgentRemediation runs the whole agent against a collector that sends
// orders: the hello carries the guard; an offline order runs its runbook
// and its updates reach the collector through the spool; a reboot is
// asked for (a command that records it, on a fixture root) and, once the
// agent restarts with the fixture's boot id changed, confirmed as
// SUCCEEDED exactly once; orders sent again after the restart run nothing
// twice.
func TestAgentRemediation(t *testing.T) {
	root, work := t.TempDir(), t.TempDir()
	writeBootID(t, root, "boot-a")
	drained, reboots := filepath.Join(work, "drained"), filepath.Join(work, "reboots")
	file := fmt.Sprintf(`remediation:
  allow: [offline, reboot]
  reboot:
    method: command
    command: ["/bin/sh", "-c", "echo $HWHEAL_ACTION_ID >> %s"]
  offline:
    - name: lb-weight-zero
      run: ["/bin/sh", "-c", "echo $HWHEAL_STEP >> %s"]
      timeout: 10s
    - name: wait-drained
      run: ["/bin/sh", "-c", "echo $HWHEAL_STEP >> %s; echo drained"]
`, reboots, drained, drained)
	fc, err := ParseConfigFile([]byte(file), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	coll := &orderCollector{orders: []*hwhealv1.ActionOrder{
		{Id: "off-1", Type: hwhealv1.ActionType_ACTION_TYPE_OFFLINE, BootId: "boot-a", Reason: "disk.media"},
		{Id: "reb-1", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, BootId: "boot-a", Timeout: durationpb.New(time.Hour)},
	}}
	addr := startOrderCollector(t, coll)
	cfg := Config{
		Collector: addr, Node: "node-r", StateDir: t.TempDir(), Root: root, Insecure: true,
		Disable: SourceNames(), Remediation: fc.Remediation, Logger: slog.New(slog.DiscardHandler),
	}
	stop := runAgent(t, cfg)

	waitFor(t, "the offline action's final update", func() error {
		if f := finalOf(coll.of("off-1")); len(f) != 1 {
			return fmt.Errorf("final updates %v", f)
		}
		return nil
	})
	g := coll.lastHello().GetGuard()
	if !slices.Equal(g.GetAllowed(), []hwhealv1.ActionType{hwhealv1.ActionType_ACTION_TYPE_OFFLINE, hwhealv1.ActionType_ACTION_TYPE_REBOOT}) ||
		g.GetMaxReboots() != 2 || g.GetRebootWindow().AsDuration() != 24*time.Hour {
		t.Fatalf("hello guard %v", g)
	}
	off := coll.of("off-1")
	if f := off[len(off)-1]; f.GetOutcome() != hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED || f.GetBootId() != "boot-a" {
		t.Fatalf("offline final %v", f)
	}
	var steps []string
	for _, u := range off {
		for _, s := range u.GetSteps() {
			steps = append(steps, fmt.Sprintf("%s=%d:%q", s.GetName(), s.GetExitCode(), s.GetOutput()))
		}
	}
	if want := []string{`lb-weight-zero=0:""`, `wait-drained=0:"drained\n"`}; !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	waitFor(t, "the reboot asked for", func() error {
		if got := readLines(t, reboots); !slices.Equal(got, []string{"reb-1"}) {
			return fmt.Errorf("reboots %v", got)
		}
		if len(coll.of("reb-1")) < 2 { // RUNNING, the reboot step
			return fmt.Errorf("updates %v", coll.of("reb-1"))
		}
		return nil
	})
	stop() // as the reboot would

	writeBootID(t, root, "boot-b")
	stop = runAgent(t, cfg)
	waitFor(t, "the reboot confirmed", func() error {
		f := finalOf(coll.of("reb-1"))
		if len(f) != 1 {
			return fmt.Errorf("final updates %v", f)
		}
		if f[0].GetOutcome() != hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED || f[0].GetMessage() != "rebooted: boot id boot-a -> boot-b" {
			return fmt.Errorf("final %v", f[0])
		}
		return nil
	})
	if h := coll.lastHello(); h.GetBootId() != "boot-b" {
		t.Fatalf("hello after the reboot %v", h)
	}
	// The collector sent both orders again at the reconnect: let them be
	// handled, then check nothing ran twice.
	time.Sleep(300 * time.Millisecond)
	stop()
	if got := readLines(t, drained); !slices.Equal(got, []string{"lb-weight-zero", "wait-drained"}) {
		t.Fatalf("runbook ran %v", got)
	}
	if got := readLines(t, reboots); !slices.Equal(got, []string{"reb-1"}) {
		t.Fatalf("reboots %v", got)
	}
	for _, id := range []string{"off-1", "reb-1"} {
		if f := finalOf(coll.of(id)); len(f) != 1 {
			t.Fatalf("%s: %d final updates", id, len(f))
		}
	}
}

// TestAgentWithoutRemediation: an agent that runs no action says so (no
// guard in its hello) and does nothing with an order it is sent.
func TestAgentWithoutRemediation(t *testing.T) {
	coll := &orderCollector{toAll: true, orders: []*hwhealv1.ActionOrder{{Id: "off-1", Type: hwhealv1.ActionType_ACTION_TYPE_OFFLINE}}}
	addr := startOrderCollector(t, coll)
	ctx, cancel := context.WithCancel(t.Context())
	a, err := New(ctx, Config{Collector: addr, Node: "node-m", StateDir: t.TempDir(), Root: t.TempDir(), Insecure: true,
		Disable: SourceNames(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, "the order received", func() error {
		if n := a.client.Stats().Orders; n == 0 {
			return fmt.Errorf("no order yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g := coll.lastHello().GetGuard(); g != nil {
		t.Fatalf("guard %v from an agent that runs no action", g)
	}
	if n := len(coll.of("off-1")); n != 0 {
		t.Fatalf("%d updates", n)
	}
}

// TestShippedExampleConfig: the example shipped for operators parses and
// validates as the agent reads it.
func TestShippedExampleConfig(t *testing.T) {
	fc, err := LoadConfigFile("hwheal-agent.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if fc.Remediation == nil || len(fc.Remediation.Allow) != 4 {
		t.Fatalf("remediation %+v", fc.Remediation)
	}
	if err := fc.Remediation.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseConfigFile(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "empty", in: ""},
		{name: "comments only", in: "# nothing yet\n"},
		{name: "unknown top-level key", in: "remediation:\nsources: {}\n", want: `agent.yaml:2: unknown key "sources" (want remediation)`},
		{name: "not a mapping", in: "- remediation\n", want: `agent.yaml:1: the top level is a list, want a mapping`},
		{name: "duplicate", in: "remediation:\nremediation:\n", want: `agent.yaml:2: duplicate key "remediation" (first at line 1)`},
		{name: "yaml syntax", in: "remediation:\n  allow: [offline\n", want: `agent.yaml:1: did not find expected`},
		{name: "second document", in: "remediation:\n---\nremediation:\n", want: `agent.yaml:2: more than one YAML document`},
		{name: "section error", in: "remediation:\n  allow: [offline]\n  offline:\n    - name: x\n      run: lbctl\n", want: `agent.yaml:5: remediation.offline[0].run: is a single string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfigFile([]byte(tt.in), "agent.yaml")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// FuzzParseConfigFile: any file either parses or fails with an error
// that names the file and a line.
func FuzzParseConfigFile(f *testing.F) {
	if data, err := os.ReadFile("hwheal-agent.example.yaml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{"", "remediation:\n", "sources: {}\n", "- a\n", "remediation:\nremediation:\n",
		"remediation:\n  allow: [offline\n", "remediation:\n  offline: [{name: a, run: [/bin/true], timeout: 1s}]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := ParseConfigFile(data, "fuzz.yaml")
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") {
					t.Fatalf("error line %q names no file and line", line)
				}
			}
			return
		}
		if fc.Remediation != nil {
			fc.Remediation.Validate() // must not panic
		}
	})
}
