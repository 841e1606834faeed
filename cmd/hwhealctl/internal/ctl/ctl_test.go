package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/cmd/hwhealctl/internal/replay"
	"github.com/hwheal/hwheal/collector"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testVersion = "1.2.3-test"

// t0 is when the test agents say their readings were taken.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a real collector on a loopback port with agents connected
// through AgentService, as hwheal-agent would. Its fleet API knows two
// users: alice@ops (admin), whose token hwhealctl passes by default, and
// vic (viewer).
type fixture struct {
	addr   string
	agents map[string]*agentStream
	// tokenFile holds alice's token, viewerTokenFile vic's.
	tokenFile, viewerTokenFile string
}

const (
	aliceToken = "alice-token-0123456789abcdef"
	vicToken   = "vic-token-0123456789abcdef"
)

// writeFile writes a file of the test's own.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type agentStream struct {
	stream hwhealv1.AgentService_ConnectClient
	seq    uint64
}

// startCollector runs a collector until the test ends, and connects three
// agents:
//
//	web-1 (rack=r1, zone=a): a critical disk.io_error on sda, two sda readings
//	web-2 (rack=r2):         a warning memory.ce on a DIMM
//	db-1  (rack=r1):         an eth0 reading only
func startCollector(t *testing.T) *fixture {
	t.Helper()
	tokens := writeFile(t, "tokens", aliceToken+",alice@ops,admin\n"+vicToken+",vic,viewer\n")
	c, err := collector.New(t.Context(), collector.Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), RulesDir: t.TempDir(), Insecure: true, Version: "test",
		TokensFile: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("collector Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("collector did not stop")
		}
	})
	select {
	case <-c.Ready():
	case err := <-done:
		t.Fatalf("collector Run: %v", err)
	}
	f := &fixture{addr: c.Addr().String(), agents: map[string]*agentStream{},
		tokenFile: writeFile(t, "alice.token", aliceToken+"\n"), viewerTokenFile: writeFile(t, "vic.token", vicToken+"\n")}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	// Runs before the collector stops: agents leave first.
	t.Cleanup(func() { conn.Close() })
	agents := hwhealv1.NewAgentServiceClient(conn)

	for _, h := range []*hwhealv1.Hello{
		{Node: "web-1", Labels: map[string]string{"rack": "r1", "zone": "a"}, AgentVersion: "0.9.1", BootId: "boot-web-1", StreamId: "stream-web-1",
			Inventory: &hwhealv1.Inventory{SystemVendor: "Dell Inc.", SystemProduct: "PowerEdge R650", SystemSerial: "SN123", BiosVersion: "1.6.5", CpuModel: "Xeon", CpuCores: 32, MemoryBytes: 256 << 30}},
		{Node: "web-2", Labels: map[string]string{"rack": "r2"}, AgentVersion: "0.9.1", BootId: "boot-web-2", StreamId: "stream-web-2"},
		{Node: "db-1", Labels: map[string]string{"rack": "r1"}, AgentVersion: "0.9.1", BootId: "boot-db-1", StreamId: "stream-db-1"},
	} {
		stream, err := agents.Connect(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Hello{Hello: h}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || resp.GetWelcome() == nil {
			t.Fatalf("%s: want a Welcome, got %v, %v", h.GetNode(), resp, err)
		}
		f.agents[h.GetNode()] = &agentStream{stream: stream}
	}
	sda := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda", Serial: "WD-123"}
	f.report(t, "web-1",
		&hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{FaultClass: "disk.io_error", Severity: hwhealv1.Severity_SEVERITY_CRITICAL, Part: sda, Rule: "blk-io-error",
			Time: timestamppb.New(t0), Summary: "I/O error on sda at sector 3461120",
			Evidence: &hwhealv1.Evidence{KernelLog: &hwhealv1.KernelLogRecord{Message: "I/O error, dev sda, sector 3461120 op 0x1:(WRITE) flags 0x1004000 phys_seg 168 prio class 0"},
				Captures: map[string]string{"device": "sda", "sector": "3461120"}}}},
		&hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{Time: timestamppb.New(t0), Source: "diskstats", Part: sda,
			Samples: []*hwhealv1.Sample{{Name: "read_ios", Value: 100}}}},
		&hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{Time: timestamppb.New(t0.Add(10 * time.Second)), Source: "diskstats", Part: sda,
			Samples: []*hwhealv1.Sample{{Name: "read_ios", Value: 250}, {Name: "write_ios", Value: 17}}}},
	)
	f.report(t, "web-2",
		&hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{FaultClass: "memory.ce", Severity: hwhealv1.Severity_SEVERITY_WARNING,
			Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "CPU_SrcID#2_MC#0_Chan#1_DIMM#0"}, Rule: "edac-ce",
			Time: timestamppb.New(t0), Summary: "Corrected memory error on CPU_SrcID#2_MC#0_Chan#1_DIMM#0"}},
	)
	f.report(t, "db-1",
		&hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{Time: timestamppb.New(t0), Source: "netdev",
			Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, Samples: []*hwhealv1.Sample{{Name: "rx_errors", Value: 0}}}},
	)
	return f
}

// report sends one batch on node's agent stream and waits for its Ack:
// once acknowledged, the reports are stored and their events published.
func (f *fixture) report(t *testing.T, node string, items ...any) {
	t.Helper()
	a := f.agents[node]
	batch := &hwhealv1.ReportBatch{}
	for _, it := range items {
		a.seq++
		r := &hwhealv1.Report{Seq: a.seq}
		switch it := it.(type) {
		case *hwhealv1.Report_Fault:
			r.Item = it
		case *hwhealv1.Report_Observation:
			r.Item = it
		default:
			t.Fatalf("report item %T", it)
		}
		batch.Reports = append(batch.Reports, r)
	}
	if err := a.stream.Send(&hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Reports{Reports: batch}}); err != nil {
		t.Fatal(err)
	}
	resp, err := a.stream.Recv()
	if err != nil || resp.GetAck().GetAckedSeq() != a.seq {
		t.Fatalf("%s: want Ack of %d, got %v, %v", node, a.seq, resp, err)
	}
}

// run runs hwhealctl with args and returns what it printed.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCtx(t.Context(), args...)
}

func runCtx(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	root := NewRoot(testVersion, &out, &errb)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// ctl runs a command against the fixture's collector as alice and fails
// on error.
func (f *fixture) ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := run(t, append(args, "--collector", f.addr, "--insecure", "--token-file", f.tokenFile)...)
	if err != nil {
		t.Fatalf("hwhealctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (f *fixture) ctlErr(t *testing.T, args ...string) error {
	t.Helper()
	out, _, err := run(t, append(args, "--collector", f.addr, "--insecure", "--token-file", f.tokenFile)...)
	if err == nil {
		t.Fatalf("hwhealctl %s succeeded, printing %q", strings.Join(args, " "), out)
	}
	return err
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// table splits a table's rows into fields; the header is checked and
// dropped.
func table(t *testing.T, out string, header ...string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if got := strings.Fields(lines[0]); !slices.Equal(got, header) {
		t.Fatalf("header %q, want %q", got, header)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func column(rows [][]string, i int) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r[i])
	}
	slices.Sort(out)
	return out
}

var nodeHeader = []string{"NAME", "HEALTH", "SERVICE", "CONNECTED", "OPEN", "FAULTS", "LAST", "SEEN", "LABELS"}

func TestNodes(t *testing.T) {
	f := startCollector(t)

	t.Run("table", func(t *testing.T) {
		rows := table(t, f.ctl(t, "nodes"), nodeHeader...)
		got := map[string]string{}
		for _, r := range rows {
			if len(r) != 7 {
				t.Fatalf("row %q: want 7 fields", r)
			}
			if _, err := time.Parse(time.RFC3339, r[5]); err != nil {
				t.Errorf("row %q: last seen: %v", r, err)
			}
			// A node from before remediation reads as in service.
			if r[2] != "in_service" {
				t.Errorf("row %q: service state", r)
			}
			got[r[0]] = strings.Join([]string{r[1], r[3], r[4], r[6]}, " ")
		}
		want := map[string]string{
			"web-1": "faulty yes 1 rack=r1,zone=a",
			"web-2": "suspect yes 1 rack=r2",
			"db-1":  "healthy yes 0 rack=r1",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("nodes\n got %v\nwant %v", got, want)
		}
	})

	t.Run("json", func(t *testing.T) {
		out := f.ctl(t, "nodes", "-o", "json")
		var nodes []map[string]any
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		if len(nodes) != 3 {
			t.Fatalf("%d nodes, want 3", len(nodes))
		}
		byName := map[string]map[string]any{}
		for _, n := range nodes {
			byName[n["name"].(string)] = n
		}
		web1 := byName["web-1"]
		if web1 == nil {
			t.Fatalf("no web-1 in %v", nodes)
		}
		// Field names as in the .proto, so jq filters match the docs.
		for k, want := range map[string]any{
			"open_faults":   float64(1),
			"health":        "NODE_HEALTH_FAULTY",
			"agent_version": "0.9.1",
			"boot_id":       "boot-web-1",
			"connected":     true,
		} {
			if web1[k] != want {
				t.Errorf("web-1 %s = %v, want %v", k, web1[k], want)
			}
		}
		for _, k := range []string{"openFaults", "agentVersion", "lastSeen"} {
			if _, ok := web1[k]; ok {
				t.Errorf("web-1 has camelCase field %s", k)
			}
		}
		if _, ok := web1["last_seen"].(string); !ok {
			t.Errorf("web-1 last_seen = %v", web1["last_seen"])
		}
		if l, _ := web1["labels"].(map[string]any); l["rack"] != "r1" || l["zone"] != "a" {
			t.Errorf("web-1 labels = %v", web1["labels"])
		}
	})

	filters := []struct {
		name string
		args []string
		want []string
	}{
		{"health faulty", []string{"--health", "faulty"}, []string{"web-1"}},
		{"health faulty or suspect", []string{"--health", "faulty,suspect"}, []string{"web-1", "web-2"}},
		{"health upper case", []string{"--health", "HEALTHY"}, []string{"db-1"}},
		{"label rack r1", []string{"--label", "rack=r1"}, []string{"db-1", "web-1"}},
		{"labels rack r1 zone a", []string{"--label", "rack=r1", "--label", "zone=a"}, []string{"web-1"}},
		{"class", []string{"--class", "memory.ce"}, []string{"web-2"}},
		{"health and label", []string{"--health", "healthy", "--label", "rack=r2"}, nil},
	}
	for _, tt := range filters {
		t.Run(tt.name, func(t *testing.T) {
			rows := table(t, f.ctl(t, append([]string{"nodes"}, tt.args...)...), nodeHeader...)
			if got := column(rows, 0); !slices.Equal(got, tt.want) {
				t.Errorf("nodes %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("limit", func(t *testing.T) {
		if rows := table(t, f.ctl(t, "nodes", "--limit", "2"), nodeHeader...); len(rows) != 2 {
			t.Errorf("--limit 2 listed %d nodes", len(rows))
		}
	})

	t.Run("bad health", func(t *testing.T) {
		// Refused before any connection is made.
		_, _, err := run(t, "nodes", "--health", "sick", "--collector", "127.0.0.1:1", "--insecure")
		wantErr(t, err, `--health "sick"`, "healthy, suspect or faulty")
	})
}

var faultHeader = []string{"ID", "NODE", "CLASS", "SEVERITY", "PART", "COUNT", "FIRST", "SEEN", "LAST", "SEEN", "FLAGS", "SUMMARY"}

func TestNode(t *testing.T) {
	f := startCollector(t)

	out := f.ctl(t, "node", "web-1")
	for _, want := range []string{
		"Name:           web-1\n",
		"Health:         faulty (since ",
		"Service:        in_service (since ",
		"Guard:          none announced (the agent runs no actions)\n",
		"Connected:      yes\n",
		"Labels:         rack=r1,zone=a\n",
		"Agent version:  0.9.1\n",
		"Boot id:        boot-web-1\n",
		"System:         Dell Inc. PowerEdge R650 (serial SN123, BIOS 1.6.5)\n",
		"CPU:            Xeon, 32 cores; memory 262144 MiB\n",
		"\nOpen faults (1):\n",
		"\nLatest readings (1):\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("node web-1 output lacks %q:\n%s", want, out)
		}
	}
	_, faults, _ := strings.Cut(out, "Open faults (1):\n")
	faults, readings, _ := strings.Cut(faults, "\nLatest readings (1):\n")
	rows := table(t, faults, faultHeader...)
	if len(rows) != 1 {
		t.Fatalf("open faults table %q", faults)
	}
	if r := rows[0]; r[1] != "web-1" || r[2] != "disk.io_error" || r[3] != "critical" || r[4] != "disk:sda" || r[5] != "sn=WD-123" || r[6] != "1" ||
		!strings.HasSuffix(strings.Join(r, " "), "I/O error on sda at sector 3461120") {
		t.Errorf("open fault row %q", r)
	}
	rows = table(t, readings, "SOURCE", "PART", "TIME", "SAMPLES")
	// The later reading replaced the earlier one.
	if len(rows) != 1 || strings.Join(rows[0], " ") != "diskstats disk:sda sn=WD-123 2026-03-01T12:00:10Z read_ios=250 write_ios=17" {
		t.Errorf("readings %q", rows)
	}

	t.Run("json", func(t *testing.T) {
		var resp struct {
			Node struct {
				Name       string `json:"name"`
				OpenFaults int    `json:"open_faults"`
			} `json:"node"`
			OpenFaults []struct {
				FaultClass string `json:"fault_class"`
				Severity   string `json:"severity"`
			} `json:"open_faults"`
			LatestObservations []map[string]any `json:"latest_observations"`
		}
		out := f.ctl(t, "node", "web-2", "-o", "json")
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		if resp.Node.Name != "web-2" || resp.Node.OpenFaults != 1 || len(resp.OpenFaults) != 1 ||
			resp.OpenFaults[0].FaultClass != "memory.ce" || resp.OpenFaults[0].Severity != "SEVERITY_WARNING" || len(resp.LatestObservations) != 0 {
			t.Errorf("node web-2 -o json: %+v\n%s", resp, out)
		}
	})

	t.Run("healthy", func(t *testing.T) {
		out := f.ctl(t, "node", "db-1")
		if !strings.Contains(out, "Health:         healthy") || !strings.Contains(out, "Open faults (0):") ||
			!strings.Contains(out, "netdev  nic:eth0") || strings.Contains(out, "System:") {
			t.Errorf("node db-1:\n%s", out)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		wantErr(t, f.ctlErr(t, "node", "no-such-node"), "not_found: ", "no-such-node")
	})

	t.Run("args", func(t *testing.T) {
		wantErr(t, f.ctlErr(t, "node"), "accepts 1 arg")
	})
}

func TestFaults(t *testing.T) {
	f := startCollector(t)
	tests := []struct {
		name string
		args []string
		want []string // node/class of each row
	}{
		{"all open", nil, []string{"web-1/disk.io_error", "web-2/memory.ce"}},
		{"all states", []string{"--all"}, []string{"web-1/disk.io_error", "web-2/memory.ce"}},
		{"class", []string{"--class", "disk.io_error"}, []string{"web-1/disk.io_error"}},
		{"min critical", []string{"--min-severity", "critical"}, []string{"web-1/disk.io_error"}},
		{"min warning", []string{"--min-severity", "warning"}, []string{"web-1/disk.io_error", "web-2/memory.ce"}},
		{"min Critical mixed case", []string{"--min-severity", "Critical"}, []string{"web-1/disk.io_error"}},
		{"node", []string{"--node", "web-2"}, []string{"web-2/memory.ce"}},
		{"label", []string{"--label", "rack=r2"}, []string{"web-2/memory.ce"}},
		{"label without faults", []string{"--label", "rack=r1", "--class", "memory.ce"}, nil},
		{"limit", []string{"--limit", "1"}, []string{"web-1/disk.io_error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := table(t, f.ctl(t, append([]string{"faults"}, tt.args...)...), faultHeader...)
			var got []string
			for _, r := range rows {
				got = append(got, r[1]+"/"+r[2])
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("faults %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		var faults []map[string]any
		out := f.ctl(t, "faults", "--min-severity", "critical", "-o", "json")
		if err := json.Unmarshal([]byte(out), &faults); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		if len(faults) != 1 || faults[0]["fault_class"] != "disk.io_error" || faults[0]["state"] != "FAULT_STATE_OPEN" || faults[0]["first_seen"] == nil {
			t.Errorf("faults -o json: %v", faults)
		}
	})

	t.Run("bad min severity", func(t *testing.T) {
		_, _, err := run(t, "faults", "--min-severity", "fatal", "--collector", "127.0.0.1:1", "--insecure")
		wantErr(t, err, `--min-severity "fatal"`, "info, warning or critical")
		_, _, err = run(t, "faults", "--min-severity", "unspecified", "--collector", "127.0.0.1:1", "--insecure")
		wantErr(t, err, `--min-severity "unspecified"`)
	})
}

// eventLine is one line of `events` in table form.
type eventLine struct {
	id   uint64
	typ  string
	node string
	rest string
}

func parseEvents(t *testing.T, out string) []eventLine {
	t.Helper()
	var evs []eventLine
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fs := strings.Fields(l)
		if len(fs) < 4 {
			t.Fatalf("event line %q", l)
		}
		id, err := strconv.ParseUint(fs[0], 10, 64)
		if err != nil {
			t.Fatalf("event line %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339, fs[1]); err != nil {
			t.Fatalf("event line %q: %v", l, err)
		}
		evs = append(evs, eventLine{id: id, typ: fs[2], node: fs[3], rest: strings.Join(fs[4:], " ")})
	}
	return evs
}

func TestEvents(t *testing.T) {
	f := startCollector(t)

	evs := parseEvents(t, f.ctl(t, "events"))
	var seen []string
	for i, ev := range evs {
		if ev.id != uint64(i+1) {
			t.Fatalf("event %d has id %d: the recorded events are not all there, in order", i, ev.id)
		}
		seen = append(seen, ev.typ+" "+ev.node+" "+ev.rest)
	}
	for _, want := range []string{
		"node_registered web-1 ",
		"node_connected web-1 ",
		"node_registered db-1 ",
		"fault_opened web-1 disk.io_error critical disk:sda sn=WD-123 x1 I/O error on sda at sector 3461120",
		"fault_opened web-2 memory.ce warning memory:CPU_SrcID#2_MC#0_Chan#1_DIMM#0 x1 Corrected memory error on CPU_SrcID#2_MC#0_Chan#1_DIMM#0",
		"node_health_changed web-1 healthy -> faulty",
		"node_health_changed web-2 healthy -> suspect",
	} {
		if !slices.Contains(seen, want) {
			t.Errorf("events lack %q:\n%s", want, strings.Join(seen, "\n"))
		}
	}
	last := evs[len(evs)-1].id

	t.Run("after", func(t *testing.T) {
		got := parseEvents(t, f.ctl(t, "events", "--after", strconv.FormatUint(last-2, 10)))
		if len(got) != 2 || got[0].id != last-1 || got[1].id != last {
			t.Errorf("--after %d: %v", last-2, got)
		}
	})

	t.Run("filters json", func(t *testing.T) {
		out := f.ctl(t, "events", "--type", "fault_opened,node_health_changed", "--node", "web-1", "-o", "json")
		var types []string
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			var ev map[string]any
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if ev["node"] != "web-1" {
				t.Errorf("event of another node: %v", ev)
			}
			types = append(types, ev["type"].(string))
			if ev["type"] == "EVENT_TYPE_FAULT_OPENED" {
				if fault, _ := ev["fault"].(map[string]any); fault["fault_class"] != "disk.io_error" {
					t.Errorf("fault event %v", ev)
				}
			}
		}
		slices.Sort(types)
		if want := []string{"EVENT_TYPE_FAULT_OPENED", "EVENT_TYPE_NODE_HEALTH_CHANGED"}; !slices.Equal(types, want) {
			t.Errorf("types %v, want %v", types, want)
		}
		if got := parseEvents(t, f.ctl(t, "events", "--class", "memory.ce")); len(got) != 1 || got[0].node != "web-2" {
			t.Errorf("--class memory.ce: %v", got)
		}
	})

	t.Run("bad type", func(t *testing.T) {
		wantErr(t, f.ctlErr(t, "events", "--type", "fault_exploded"), `--type "fault_exploded"`)
	})

	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var out syncBuffer
		root := NewRoot(testVersion, &out, &out)
		// --after 0: replay from the start, then follow (without --after a
		// follow shows only new events).
		root.SetArgs([]string{"events", "--follow", "--after", "0", "--collector", f.addr, "--insecure", "--token-file", f.tokenFile})
		done := make(chan error, 1)
		go func() { done <- root.ExecuteContext(ctx) }()

		// The recorded events come first, then what happens now.
		waitFor(t, &out, fmt.Sprintf("\n%d  ", last))
		f.report(t, "db-1", &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{FaultClass: "nic.link_down", Severity: hwhealv1.Severity_SEVERITY_WARNING,
			Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, Rule: "nic-link-down", Summary: "Link down on eth0"}})
		waitFor(t, &out, "node_health_changed  db-1  healthy -> suspect")
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("events --follow after cancel: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("events --follow did not end when its context was canceled")
		}
		got := parseEvents(t, out.String())
		for i, ev := range got {
			if ev.id != uint64(i+1) {
				t.Fatalf("event %d has id %d", i, ev.id)
			}
		}
		if len(got) < int(last)+2 || got[last].typ != "fault_opened" || got[last].node != "db-1" {
			t.Errorf("follow printed %v", got[last:])
		}
	})
}

// syncBuffer is an output the command writes from one goroutine while the
// test reads it from another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q:\n%s", want, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGlobalFlags(t *testing.T) {
	t.Run("version", func(t *testing.T) {
		out, _, err := run(t, "version")
		if err != nil || out != testVersion+"\n" {
			t.Errorf("version printed %q, %v", out, err)
		}
	})
	t.Run("bad output", func(t *testing.T) {
		for _, args := range [][]string{{"nodes", "-o", "xml"}, {"rules", "list", "--output", "toml"}, {"events", "-o", ""}} {
			_, _, err := run(t, args...)
			wantErr(t, err, "table, json or yaml")
		}
	})
	t.Run("insecure required", func(t *testing.T) {
		for _, cmd := range []string{"nodes", "faults", "events"} {
			_, _, err := run(t, cmd, "--collector", "127.0.0.1:1")
			wantErr(t, err, "--insecure")
		}
		_, _, err := run(t, "node", "web-1", "--collector", "127.0.0.1:1")
		wantErr(t, err, "--insecure")
	})
	t.Run("unreachable collector", func(t *testing.T) {
		_, _, err := run(t, "nodes", "--collector", "127.0.0.1:1", "--insecure", "--timeout", "2s")
		wantErr(t, err, "unavailable: ")
	})
	t.Run("unknown command", func(t *testing.T) {
		_, _, err := run(t, "reboot-everything")
		wantErr(t, err, "unknown command")
	})
}

func TestCodeName(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.NotFound:          "not_found",
		codes.InvalidArgument:   "invalid_argument",
		codes.ResourceExhausted: "resource_exhausted",
		codes.Unavailable:       "unavailable",
		codes.DeadlineExceeded:  "deadline_exceeded",
	} {
		if got := codeName(c); got != want {
			t.Errorf("codeName(%v) = %q, want %q", c, got, want)
		}
		if got := rpcError(status.Error(c, "msg")).Error(); got != want+": msg" {
			t.Errorf("rpcError = %q", got)
		}
	}
	plain := errors.New("plain")
	if rpcError(plain) != plain {
		t.Error("rpcError changed a non-status error")
	}
}

const replayInput = "testdata/replay_input.log"

// replay runs `rules replay` with the clock pinned: yearless syslog
// timestamps then land in 2025 and local ones are UTC on every machine.
func runReplay(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(testVersion, &options{stdout: &out, stderr: &errb, replayClock: kernlog.Parser{
		Now:      func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) },
		Location: time.UTC,
	}})
	root.SetArgs(append([]string{"rules", "replay"}, args...))
	err = root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func TestRulesReplayGolden(t *testing.T) {
	out, stderr, err := runReplay(t, replayInput)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "replay.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if out != string(want) {
		t.Errorf("rules replay output differs from %s (run with -update after checking the change):\n got:\n%s\nwant:\n%s", golden, out, want)
	}
	// Lines 11-12 are empty, 14 a corrupt kmsg header, 18 sshd's, 21 the
	// 100 KiB one; 4-5 are dictionary lines of record 3.
	if want := "replay: 22 records, 11 faults, skipped empty=2 malformed=1 not_kernel=1 too_long=1\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}

	// Independent of the golden file: every line is one JSON fault from
	// the line it names, the formats are the ones in the file, and the
	// 100 KiB line (a real fault line padded) raised nothing.
	lines, err := readLines(replayInput)
	if err != nil {
		t.Fatal(err)
	}
	formats := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rf replay.Record
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rf); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if rf.File != replayInput || rf.Line < 1 || rf.Line > len(lines) {
			t.Fatalf("fault %+v names no line of the input", rf)
		}
		if !strings.Contains(lines[rf.Line-1], rf.Message) || rf.Message == "" {
			t.Errorf("fault %+v: message is not on line %d", rf, rf.Line)
		}
		if rf.Line == 21 {
			t.Errorf("the over-long line raised %+v", rf)
		}
		formats[string(rf.Format)] = true
	}
	for _, f := range []string{"dmesg", "syslog", "dmesg-ctime", "dmesg-iso", "plain"} {
		if !formats[f] {
			t.Errorf("no fault read as %s: %v", f, formats)
		}
	}
}

func readLines(name string) ([]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), nil
}

func TestRulesReplay(t *testing.T) {
	t.Run("table", func(t *testing.T) {
		out, _, err := runReplay(t, "-o", "table", replayInput)
		if err != nil {
			t.Fatal(err)
		}
		rows := table(t, out, "FILE:LINE", "CLASS", "SEVERITY", "PART", "SUMMARY")
		if len(rows) != 11 {
			t.Fatalf("%d rows, want 11:\n%s", len(rows), out)
		}
		if got := strings.Join(rows[0], " "); got != "testdata/replay_input.log:7 disk.io_error critical disk:sda I/O error on sda at sector 3461120" {
			t.Errorf("first row %q", got)
		}
	})
	t.Run("json flag", func(t *testing.T) {
		out, _, err := runReplay(t, "-o", "json", replayInput)
		want, _, err2 := runReplay(t, replayInput)
		if err != nil || err2 != nil || out != want {
			t.Errorf("-o json differs from the default output (%v, %v)", err, err2)
		}
	})
	t.Run("forced format", func(t *testing.T) {
		// Read as raw kmsg, only the four kmsg records parse.
		out, stderr, err := runReplay(t, "--format", "kmsg", replayInput)
		if err != nil || out != "" || stderr != "replay: 4 records, 0 faults, skipped empty=1 malformed=20 too_long=1\n" {
			t.Errorf("--format kmsg: %q %q %v", out, stderr, err)
		}
	})
	t.Run("two files", func(t *testing.T) {
		_, stderr, err := runReplay(t, replayInput, replayInput)
		if err != nil || stderr != "replay: 44 records, 22 faults, skipped empty=4 malformed=2 not_kernel=2 too_long=2\n" {
			t.Errorf("two files: %q %v", stderr, err)
		}
	})
	t.Run("bad format", func(t *testing.T) {
		_, _, err := runReplay(t, "--format", "bogus", replayInput)
		wantErr(t, err, "--format", `"bogus"`, "dmesg")
	})
	t.Run("missing file", func(t *testing.T) {
		_, _, err := runReplay(t, "testdata/no-such-file.log")
		wantErr(t, err, "no-such-file.log")
	})
	t.Run("no file", func(t *testing.T) {
		_, _, err := runReplay(t)
		wantErr(t, err, "requires at least 1 arg")
	})
}

func TestRulesList(t *testing.T) {
	rs, err := detect.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "rules", "list")
	if err != nil {
		t.Fatal(err)
	}
	rows := table(t, out, "NAME", "KIND", "CLASS", "SEVERITY", "MODE", "CLEARS", "PART")
	if len(rows) != len(rs.Rules()) || len(rows) == 0 {
		t.Fatalf("%d rows for %d rules", len(rows), len(rs.Rules()))
	}
	for i, r := range rs.Rules() {
		want := []string{r.Name, string(r.Kind), orDash(r.Class), severityName(r.Severity), modeName(r.Mode), clearString(r.ClearAfter), partKindName(r.Part)}
		if !slices.Equal(rows[i], want) {
			t.Errorf("row %d = %q, want %q", i, rows[i], want)
		}
	}

	out, _, err = run(t, "rules", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != len(rs.Rules()) || list[0]["name"] != rs.Rules()[0].Name || list[0]["kind"] != string(rs.Rules()[0].Kind) || list[0]["clear_after"] != clearString(rs.Rules()[0].ClearAfter) {
		t.Errorf("rules list -o json: %d rules, first %v", len(list), list[0])
	}
}

func TestFaultAckResolve(t *testing.T) {
	f := startCollector(t)
	var faults []map[string]any
	if err := json.Unmarshal([]byte(f.ctl(t, "faults", "--node", "web-1", "-o", "json")), &faults); err != nil || len(faults) != 1 {
		t.Fatalf("faults %v, %v", faults, err)
	}
	id := faults[0]["id"].(string) // uint64 is a string in protojson

	// The collector records the token's user, whatever the client says.
	wantErr(t, f.ctlErr(t, "faults", "ack", id), "--reason is required")
	wantErr(t, f.ctlErr(t, "faults", "ack", "x1", "--reason", "r"), "want a positive number")
	wantErr(t, f.ctlErr(t, "faults", "ack", "999999", "--reason", "r"), "not_found")
	// A viewer may look, not acknowledge: the denial says which role is
	// missing.
	_, _, err := run(t, "faults", "ack", id, "--reason", "r", "--collector", f.addr, "--insecure", "--token-file", f.viewerTokenFile)
	if err == nil || err.Error() != "permission_denied: AcknowledgeFault needs role operator; vic has viewer" {
		t.Errorf("viewer ack: %v", err)
	}

	rows := table(t, f.ctl(t, "faults", "ack", id, "--reason", "on it"), faultHeader...)
	if len(rows) != 1 || !slices.Contains(rows[0], "acked") {
		t.Fatalf("after ack: %q", rows)
	}
	detail := f.ctl(t, "fault", id)
	if !strings.Contains(detail, "by alice@ops: on it") || !regexp.MustCompile(`(?m)^state\s+open$`).MatchString(detail) {
		t.Errorf("fault %s after ack:\n%s", id, detail)
	}

	out := f.ctl(t, "faults", "resolve", id, "--reason", "disk replaced", "-o", "json")
	var fr map[string]any
	if err := json.Unmarshal([]byte(out), &fr); err != nil {
		t.Fatal(err)
	}
	by, _ := fr["resolved_by"].(map[string]any)
	if fr["state"] != "FAULT_STATE_RESOLVED" || by["actor"] != "alice@ops" || by["reason"] != "disk replaced" {
		t.Errorf("resolved fault %v", fr)
	}
	wantErr(t, f.ctlErr(t, "faults", "resolve", id, "--reason", "again"), "failed_precondition", "not open")
	wantErr(t, f.ctlErr(t, "faults", "ack", id, "--reason", "late"), "failed_precondition")
	if rows := table(t, f.ctl(t, "faults", "--node", "web-1"), faultHeader...); len(rows) != 0 {
		t.Errorf("open faults after resolve: %q", rows)
	}
	// The node's only critical fault is gone: healthy again.
	if !strings.Contains(f.ctl(t, "node", "web-1"), "healthy") {
		t.Errorf("web-1 not healthy after its fault was resolved")
	}
}

func TestRulesCheck(t *testing.T) {
	out, _, err := run(t, "rules", "check")
	if err != nil || !strings.HasPrefix(out, "ok: 3 files") {
		t.Fatalf("shipped rules: %q, %v", out, err)
	}

	dir := t.TempDir()
	good := "rules:\n  - name: blk-io-error\n    mode: shadow\n  - name: buffer-io-error\n    enabled: false\n"
	if err := os.WriteFile(filepath.Join(dir, "10-good.yaml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, "rules", "check", dir)
	if err != nil || !strings.Contains(out, "ok: 4 files") || !strings.Contains(out, "1 disabled") {
		t.Fatalf("good override: %q, %v", out, err)
	}

	bad := "rules:\n  - name: my-rule\n    kind: threshold\n    class: disk.hot\n    severity: loud\n    source: hwmon\n    sample: x\n    above: 3\n"
	if err := os.WriteFile(filepath.Join(dir, "20-bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, "rules", "check", dir)
	wantErr(t, err, "invalid rule files")
	if !strings.Contains(out, filepath.Join(dir, "20-bad.yaml")+":5") || !strings.Contains(out, "severity") {
		t.Errorf("bad file: output %q, want the file, line 5 and the field", out)
	}
}
