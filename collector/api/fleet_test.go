package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/api"
	"github.com/hwheal/hwheal/collector/auth"
	"github.com/hwheal/hwheal/collector/events"
	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/collector/store/sqlite"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

const (
	sevInfo     = hwhealv1.Severity_SEVERITY_INFO
	sevWarning  = hwhealv1.Severity_SEVERITY_WARNING
	sevCritical = hwhealv1.Severity_SEVERITY_CRITICAL

	healthy = hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY
	suspect = hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT
	faulty  = hwhealv1.NodeHealth_NODE_HEALTH_FAULTY

	evRegistered  = hwhealv1.EventType_EVENT_TYPE_NODE_REGISTERED
	evConnected   = hwhealv1.EventType_EVENT_TYPE_NODE_CONNECTED
	evFaultOpened = hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED
)

// env is a FleetService served over an in-memory gRPC connection, on a real
// SQLite store and a real broker.
type env struct {
	client hwhealv1.FleetServiceClient
	fleet  *api.Fleet
	store  store.Store
	broker *events.Broker
}

type envOpts struct {
	broker *events.Broker
	// wrap lets a test put a conformant variation of the store in front of
	// the API.
	wrap func(store.Store) store.Store
	// streamGate, when set, holds every message the server sends on a
	// stream until the gate is closed: a stand-in for a slow watcher.
	streamGate chan struct{}
	// remediation, when set, builds the API's remediator on the store.
	remediation func(store.Store) api.Remediator
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/fleet.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	var s store.Store = st
	if o.wrap != nil {
		s = o.wrap(st)
	}
	if o.broker == nil {
		o.broker = events.NewBroker(0)
	}
	var rem api.Remediator
	if o.remediation != nil {
		rem = o.remediation(s)
	}
	fleet, err := api.New(api.Config{Store: s, Broker: o.broker, Remediation: rem})
	if err != nil {
		t.Fatal(err)
	}
	streams := []grpc.StreamServerInterceptor{testIdentityStream}
	if o.streamGate != nil {
		gate := o.streamGate
		streams = append(streams, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, gatedStream{ServerStream: ss, gate: gate})
		})
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(testIdentityUnary), grpc.ChainStreamInterceptor(streams...))
	hwhealv1.RegisterFleetServiceServer(srv, fleet)
	lis := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-served
	})
	return &env{client: hwhealv1.NewFleetServiceClient(conn), fleet: fleet, store: st, broker: o.broker}
}

// Test callers name themselves in metadata; the env's interceptors make
// that the call's identity, as collector/auth's do from a token (whose
// checks are tested there). A call that names no one has no identity.
const (
	testUserKey = "x-test-user"
	testRoleKey = "x-test-role"
)

// asUser is ctx for a call by user with the admin role.
func asUser(ctx context.Context, user string) context.Context {
	return asRole(ctx, user, auth.Admin)
}

// asRole is ctx for a call by user with role.
func asRole(ctx context.Context, user string, role auth.Role) context.Context {
	return metadata.AppendToOutgoingContext(ctx, testUserKey, user, testRoleKey, role.String())
}

func testIdentity(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	users, roles := md.Get(testUserKey), md.Get(testRoleKey)
	if len(users) == 0 || len(roles) == 0 {
		return ctx
	}
	role, err := auth.ParseRole(roles[0])
	if err != nil {
		panic(err)
	}
	return auth.NewContext(ctx, auth.Identity{User: users[0], Role: role})
}

func testIdentityUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(testIdentity(ctx), req)
}

func testIdentityStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, identityStream{ServerStream: ss, ctx: testIdentity(ss.Context())})
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identityStream) Context() context.Context { return s.ctx }

type gatedStream struct {
	grpc.ServerStream
	gate <-chan struct{}
}

func (g gatedStream) SendMsg(m any) error {
	select {
	case <-g.gate:
	case <-g.Context().Done():
		return g.Context().Err()
	}
	return g.ServerStream.SendMsg(m)
}

// seedFault is one fault of the seeded fleet.
type seedFault struct {
	node  string
	class string
	sev   hwhealv1.Severity
	part  *hwhealv1.Part
}

// fleet is what seed stored: nodes with labels and their faults.
type fleet struct {
	labels map[string]map[string]string
	faults []seedFault
}

func nodeName(i int) string { return fmt.Sprintf("node-%02d", i) }

// seed registers 25 nodes (rack r0..r2 by i%3) and gives node i%5==0 a
// critical memory.ue, node i%5==1 a warning disk.io_error on sda, node-00
// also a warning disk.io_error on sdb and two readings, node-02 an info
// nic.link_down. It goes through the store's own Hello and Apply.
func seed(t *testing.T, s store.Store) fleet {
	t.Helper()
	f := fleet{labels: map[string]map[string]string{}}
	for i := range 25 {
		n := nodeName(i)
		f.labels[n] = map[string]string{"rack": fmt.Sprintf("r%d", i%3), "zone": map[bool]string{true: "a", false: "b"}[i < 12]}
		hello(t, s, n, f.labels[n])
		switch i % 5 {
		case 0:
			f.faults = append(f.faults, seedFault{n, "memory.ue", sevCritical, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "CPU_SrcID#0_MC#0_Chan#1_DIMM#0"}})
		case 1:
			f.faults = append(f.faults, seedFault{n, "disk.io_error", sevWarning, disk("sda")})
		}
	}
	f.faults = append(f.faults,
		seedFault{"node-00", "disk.io_error", sevWarning, disk("sdb")},
		seedFault{"node-02", "nic.link_down", sevInfo, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}})

	seqs := map[string]uint64{}
	reports := map[string][]*hwhealv1.Report{}
	for _, sf := range f.faults {
		seqs[sf.node]++
		reports[sf.node] = append(reports[sf.node], faultReport(seqs[sf.node], sf.class, sf.sev, sf.part, at(100)))
	}
	// node-00's sda is read twice: only the later reading is the latest.
	for _, o := range []struct {
		src  string
		part *hwhealv1.Part
		when time.Time
		v    float64
	}{
		{"diskstats", disk("sda"), at(200), 100},
		{"diskstats", disk("sda"), at(260), 250},
		{"netdev", &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, at(200), 7},
	} {
		seqs["node-00"]++
		reports["node-00"] = append(reports["node-00"], obsReport(seqs["node-00"], o.src, o.part, o.when, o.v))
	}
	var batches []store.Batch
	for _, n := range slices.Sorted(maps.Keys(reports)) {
		batches = append(batches, store.Batch{Node: n, StreamID: "s-" + n, Reports: reports[n], Received: at(300)})
	}
	if _, err := s.Apply(t.Context(), batches); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return f
}

func hello(t *testing.T, s store.Store, node string, labels map[string]string) []*hwhealv1.Event {
	t.Helper()
	res, err := s.Hello(t.Context(), store.Hello{Node: node, Labels: labels, AgentVersion: "v1", BootID: "b1", StreamID: "s-" + node, Time: t0})
	if err != nil {
		t.Fatalf("Hello(%s): %v", node, err)
	}
	return res.Events
}

func disk(name string) *hwhealv1.Part {
	return &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: name}
}

func faultReport(seq uint64, class string, sev hwhealv1.Severity, part *hwhealv1.Part, when time.Time) *hwhealv1.Report {
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
		FaultClass: class,
		Severity:   sev,
		Part:       part,
		Rule:       class + ".rule",
		Time:       timestamppb.New(when),
		Summary:    fmt.Sprintf("%s on %s", class, part.GetName()),
		Evidence:   &hwhealv1.Evidence{Captures: map[string]string{"device": part.GetName()}},
	}}}
}

func obsReport(seq uint64, source string, part *hwhealv1.Part, when time.Time, v float64) *hwhealv1.Report {
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{
		Time: timestamppb.New(when), Source: source, Part: part,
		Samples: []*hwhealv1.Sample{{Name: "read_ios", Value: v}},
	}}}
}

// storedEvents is every event the store recorded, in id order.
func storedEvents(t *testing.T, s store.Store) []*hwhealv1.Event {
	t.Helper()
	var out []*hwhealv1.Event
	var after uint64
	for {
		evs, err := s.EventsAfter(t.Context(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		after = evs[len(evs)-1].GetId()
	}
}

func wantCode(t *testing.T, err error, code codes.Code, msgParts ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("error %v, want code %v", err, code)
	}
	for _, p := range msgParts {
		if !strings.Contains(st.Message(), p) {
			t.Errorf("message %q does not mention %q", st.Message(), p)
		}
	}
}

// listNodes pages through ListNodes and fails on a name seen twice.
func listNodes(t *testing.T, c hwhealv1.FleetServiceClient, req *hwhealv1.ListNodesRequest) []*hwhealv1.Node {
	t.Helper()
	req = proto.Clone(req).(*hwhealv1.ListNodesRequest)
	var out []*hwhealv1.Node
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("ListNodes does not end")
		}
		resp, err := c.ListNodes(t.Context(), req)
		if err != nil {
			t.Fatalf("ListNodes(%v): %v", req, err)
		}
		if req.GetPageSize() > 0 && len(resp.GetNodes()) > int(req.GetPageSize()) {
			t.Fatalf("page of %d nodes for page_size %d", len(resp.GetNodes()), req.GetPageSize())
		}
		for _, n := range resp.GetNodes() {
			if seen[n.GetName()] {
				t.Fatalf("node %s listed twice", n.GetName())
			}
			seen[n.GetName()] = true
		}
		out = append(out, resp.GetNodes()...)
		if resp.GetNextPageToken() == "" {
			return out
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func listFaults(t *testing.T, c hwhealv1.FleetServiceClient, req *hwhealv1.ListFaultsRequest) []*hwhealv1.FaultRecord {
	t.Helper()
	req = proto.Clone(req).(*hwhealv1.ListFaultsRequest)
	var out []*hwhealv1.FaultRecord
	seen := map[uint64]bool{}
	for pages := 0; ; pages++ {
		if pages > 2000 {
			t.Fatal("ListFaults does not end")
		}
		resp, err := c.ListFaults(t.Context(), req)
		if err != nil {
			t.Fatalf("ListFaults(%v): %v", req, err)
		}
		for _, f := range resp.GetFaults() {
			if seen[f.GetId()] {
				t.Fatalf("fault %d listed twice", f.GetId())
			}
			seen[f.GetId()] = true
		}
		out = append(out, resp.GetFaults()...)
		if resp.GetNextPageToken() == "" {
			return out
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func names(nodes []*hwhealv1.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.GetName()
	}
	slices.Sort(out)
	return out
}

// expectNodes is the seeded nodes for which keep holds, by name.
func (f fleet) expectNodes(keep func(name string, health hwhealv1.NodeHealth, classes []string) bool) []string {
	var out []string
	for name := range f.labels {
		var classes []string
		worst := hwhealv1.Severity_SEVERITY_UNSPECIFIED
		for _, sf := range f.faults {
			if sf.node == name {
				classes = append(classes, sf.class)
				worst = max(worst, sf.sev)
			}
		}
		h := healthy
		switch worst {
		case sevCritical:
			h = faulty
		case sevWarning:
			h = suspect
		}
		if keep(name, h, classes) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func TestListNodes(t *testing.T) {
	e := newEnv(t, envOpts{})
	f := seed(t, e.store)
	all := f.expectNodes(func(string, hwhealv1.NodeHealth, []string) bool { return true })
	tests := []struct {
		name string
		req  *hwhealv1.ListNodesRequest
		want []string
	}{
		{"all default page", &hwhealv1.ListNodesRequest{}, all},
		{"all by 1", &hwhealv1.ListNodesRequest{PageSize: 1}, all},
		{"all by 7", &hwhealv1.ListNodesRequest{PageSize: 7}, all},
		{"all by 25", &hwhealv1.ListNodesRequest{PageSize: 25}, all},
		{"all by max", &hwhealv1.ListNodesRequest{PageSize: api.MaxPageSize}, all},
		{"faulty", &hwhealv1.ListNodesRequest{Health: []hwhealv1.NodeHealth{faulty}, PageSize: 2},
			[]string{"node-00", "node-05", "node-10", "node-15", "node-20"}},
		{"faulty or suspect by 3", &hwhealv1.ListNodesRequest{Health: []hwhealv1.NodeHealth{suspect, faulty}, PageSize: 3},
			f.expectNodes(func(_ string, h hwhealv1.NodeHealth, _ []string) bool { return h != healthy })},
		{"healthy by 4", &hwhealv1.ListNodesRequest{Health: []hwhealv1.NodeHealth{healthy}, PageSize: 4},
			f.expectNodes(func(_ string, h hwhealv1.NodeHealth, _ []string) bool { return h == healthy })},
		{"rack r1 by 3", &hwhealv1.ListNodesRequest{Labels: map[string]string{"rack": "r1"}, PageSize: 3},
			[]string{"node-01", "node-04", "node-07", "node-10", "node-13", "node-16", "node-19", "node-22"}},
		{"rack r0 zone b", &hwhealv1.ListNodesRequest{Labels: map[string]string{"rack": "r0", "zone": "b"}, PageSize: 2},
			[]string{"node-12", "node-15", "node-18", "node-21", "node-24"}},
		{"class disk.io_error by 2", &hwhealv1.ListNodesRequest{FaultClass: "disk.io_error", PageSize: 2},
			[]string{"node-00", "node-01", "node-06", "node-11", "node-16", "node-21"}},
		{"faulty in rack r0", &hwhealv1.ListNodesRequest{Health: []hwhealv1.NodeHealth{faulty}, Labels: map[string]string{"rack": "r0"}},
			[]string{"node-00", "node-15"}},
		{"info fault keeps a node healthy", &hwhealv1.ListNodesRequest{FaultClass: "nic.link_down", Health: []hwhealv1.NodeHealth{healthy}},
			[]string{"node-02"}},
		{"no match", &hwhealv1.ListNodesRequest{Labels: map[string]string{"rack": "r9"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := listNodes(t, e.client, tt.req)
			if !slices.Equal(names(got), tt.want) {
				t.Fatalf("nodes %v, want %v", names(got), tt.want)
			}
			for _, n := range got {
				if !hasLabels(n.GetLabels(), tt.req.GetLabels()) {
					t.Errorf("node %s labels %v do not contain %v", n.GetName(), n.GetLabels(), tt.req.GetLabels())
				}
				if len(tt.req.GetHealth()) > 0 && !slices.Contains(tt.req.GetHealth(), n.GetHealth()) {
					t.Errorf("node %s health %v not in %v", n.GetName(), n.GetHealth(), tt.req.GetHealth())
				}
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		got := listNodes(t, e.client, &hwhealv1.ListNodesRequest{Labels: map[string]string{"rack": "r0", "zone": "a"}})
		byName := map[string]*hwhealv1.Node{}
		for _, n := range got {
			byName[n.GetName()] = n
		}
		n0 := byName["node-00"]
		if n0 == nil || n0.GetHealth() != faulty || n0.GetOpenFaults() != 2 || !n0.GetConnected() || n0.GetAgentVersion() != "v1" {
			t.Fatalf("node-00 = %v, want faulty, connected, 2 open faults, agent v1", n0)
		}
		if n3 := byName["node-03"]; n3 == nil || n3.GetHealth() != healthy || n3.GetOpenFaults() != 0 {
			t.Fatalf("node-03 = %v, want healthy with no open fault", n3)
		}
	})
}

func TestListBadRequests(t *testing.T) {
	e := newEnv(t, envOpts{})
	seed(t, e.store)
	ctx := t.Context()

	_, err := e.client.ListNodes(ctx, &hwhealv1.ListNodesRequest{PageSize: api.MaxPageSize + 1})
	wantCode(t, err, codes.InvalidArgument, "page_size 1001", "1000")
	_, err = e.client.ListFaults(ctx, &hwhealv1.ListFaultsRequest{PageSize: 1 << 31})
	wantCode(t, err, codes.InvalidArgument, "page_size", "1000")

	// A token another listing issued is as bad as garbage.
	fr, err := e.client.ListFaults(ctx, &hwhealv1.ListFaultsRequest{PageSize: 1})
	if err != nil || fr.GetNextPageToken() == "" {
		t.Fatalf("ListFaults: next %q, %v", fr.GetNextPageToken(), err)
	}
	nr, err := e.client.ListNodes(ctx, &hwhealv1.ListNodesRequest{PageSize: 1})
	if err != nil || nr.GetNextPageToken() == "" {
		t.Fatalf("ListNodes: next %q, %v", nr.GetNextPageToken(), err)
	}
	for _, tok := range []string{"garbage!!", "AAAA", fr.GetNextPageToken()} {
		_, err := e.client.ListNodes(ctx, &hwhealv1.ListNodesRequest{PageToken: tok})
		wantCode(t, err, codes.InvalidArgument, "page_token", "next_page_token")
	}
	for _, tok := range []string{"garbage!!", nr.GetNextPageToken()} {
		_, err := e.client.ListFaults(ctx, &hwhealv1.ListFaultsRequest{PageToken: tok})
		wantCode(t, err, codes.InvalidArgument, "page_token", "next_page_token")
	}
}

func TestGetNode(t *testing.T) {
	e := newEnv(t, envOpts{})
	seed(t, e.store)
	ctx := t.Context()

	_, err := e.client.GetNode(ctx, &hwhealv1.GetNodeRequest{})
	wantCode(t, err, codes.InvalidArgument, "name")
	_, err = e.client.GetNode(ctx, &hwhealv1.GetNodeRequest{Name: "no-such-node"})
	wantCode(t, err, codes.NotFound, "not found")

	resp, err := e.client.GetNode(ctx, &hwhealv1.GetNodeRequest{Name: "node-00"})
	if err != nil {
		t.Fatal(err)
	}
	if n := resp.GetNode(); n.GetName() != "node-00" || n.GetHealth() != faulty || n.GetLabels()["rack"] != "r0" || n.GetBootId() != "b1" {
		t.Errorf("node = %v", n)
	}
	var faults []string
	for _, f := range resp.GetOpenFaults() {
		if f.GetNode() != "node-00" || f.GetState() != hwhealv1.FaultState_FAULT_STATE_OPEN {
			t.Errorf("open fault %v is not an open fault of node-00", f)
		}
		faults = append(faults, f.GetFaultClass()+"@"+f.GetPart().GetName())
	}
	slices.Sort(faults)
	if want := []string{"disk.io_error@sdb", "memory.ue@CPU_SrcID#0_MC#0_Chan#1_DIMM#0"}; !slices.Equal(faults, want) {
		t.Errorf("open faults %v, want %v", faults, want)
	}
	obs := map[string]*hwhealv1.Observation{}
	for _, o := range resp.GetLatestObservations() {
		obs[o.GetSource()+"/"+o.GetPart().GetName()] = o
	}
	if len(obs) != 2 || len(resp.GetLatestObservations()) != 2 {
		t.Fatalf("latest observations %v, want diskstats/sda and netdev/eth0", resp.GetLatestObservations())
	}
	sda := obs["diskstats/sda"]
	if sda.GetSamples()[0].GetValue() != 250 || !sda.GetTime().AsTime().Equal(at(260)) {
		t.Errorf("diskstats/sda = %v, want the later reading (250 at %v)", sda, at(260))
	}
	if obs["netdev/eth0"].GetSamples()[0].GetValue() != 7 {
		t.Errorf("netdev/eth0 = %v", obs["netdev/eth0"])
	}

	// A healthy node with no fault and no reading.
	resp, err = e.client.GetNode(ctx, &hwhealv1.GetNodeRequest{Name: "node-03"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetNode().GetHealth() != healthy || len(resp.GetOpenFaults()) != 0 || len(resp.GetLatestObservations()) != 0 {
		t.Errorf("node-03: %v", resp)
	}
}

// TestLargeNode has more open faults on one node and more events than one
// store page holds: GetNode must page through them, ListFaults must default
// to DefaultPageSize, and a replay must cross pages.
func TestLargeNode(t *testing.T) {
	e := newEnv(t, envOpts{})
	const n = api.MaxPageSize + 37
	hello(t, e.store, "big", nil)
	reports := make([]*hwhealv1.Report, n)
	for i := range n {
		reports[i] = faultReport(uint64(i+1), "disk.io_error", sevWarning, disk(fmt.Sprintf("sd%04d", i)), at(i))
	}
	if _, err := e.store.Apply(t.Context(), []store.Batch{{Node: "big", StreamID: "s-big", Reports: reports, Received: at(0)}}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.GetNode(t.Context(), &hwhealv1.GetNodeRequest{Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range resp.GetOpenFaults() {
		seen[f.GetPart().GetName()] = true
	}
	if len(resp.GetOpenFaults()) != n || len(seen) != n {
		t.Errorf("GetNode: %d open faults (%d distinct parts), want %d", len(resp.GetOpenFaults()), len(seen), n)
	}

	page, err := e.client.ListFaults(t.Context(), &hwhealv1.ListFaultsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.GetFaults()) != api.DefaultPageSize || page.GetNextPageToken() == "" {
		t.Errorf("ListFaults with page_size 0: %d faults, next %q; want %d and a token", len(page.GetFaults()), page.GetNextPageToken(), api.DefaultPageSize)
	}
	if got := listFaults(t, e.client, &hwhealv1.ListFaultsRequest{PageSize: api.MaxPageSize}); len(got) != n {
		t.Errorf("ListFaults by %d: %d faults, want %d", api.MaxPageSize, len(got), n)
	}

	want := storedEvents(t, e.store)
	if len(want) <= api.MaxPageSize {
		t.Fatalf("only %d events recorded; the test needs more than a page", len(want))
	}
	got := watchAll(t, e.client, &hwhealv1.WatchEventsRequest{AfterId: proto.Uint64(0), StopAtEnd: true})
	sameEvents(t, got, want)
}

func TestListFaults(t *testing.T) {
	e := newEnv(t, envOpts{})
	f := seed(t, e.store)
	expect := func(keep func(sf seedFault) bool) int {
		n := 0
		for _, sf := range f.faults {
			if keep(sf) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name string
		req  *hwhealv1.ListFaultsRequest
		want int
	}{
		{"all open by 5", &hwhealv1.ListFaultsRequest{PageSize: 5}, 12},
		{"explicit open", &hwhealv1.ListFaultsRequest{State: hwhealv1.FaultState_FAULT_STATE_OPEN}, 12},
		// Nothing resolves faults yet: resolved lists nothing, all_states
		// overrides state.
		{"resolved", &hwhealv1.ListFaultsRequest{State: hwhealv1.FaultState_FAULT_STATE_RESOLVED}, 0},
		{"all states", &hwhealv1.ListFaultsRequest{AllStates: true, State: hwhealv1.FaultState_FAULT_STATE_RESOLVED, PageSize: 4}, 12},
		{"node", &hwhealv1.ListFaultsRequest{Node: "node-00", PageSize: 1}, 2},
		{"unknown node", &hwhealv1.ListFaultsRequest{Node: "nope"}, 0},
		{"class", &hwhealv1.ListFaultsRequest{FaultClass: "disk.io_error", PageSize: 4}, 6},
		{"min warning", &hwhealv1.ListFaultsRequest{MinSeverity: sevWarning, PageSize: 3}, 11},
		{"min critical", &hwhealv1.ListFaultsRequest{MinSeverity: sevCritical}, 5},
		{"min info", &hwhealv1.ListFaultsRequest{MinSeverity: sevInfo}, 12},
		{"labels rack r0", &hwhealv1.ListFaultsRequest{Labels: map[string]string{"rack": "r0"}, PageSize: 2},
			expect(func(sf seedFault) bool { return f.labels[sf.node]["rack"] == "r0" })},
		{"labels rack r1 zone b", &hwhealv1.ListFaultsRequest{Labels: map[string]string{"rack": "r1", "zone": "b"}},
			expect(func(sf seedFault) bool { return f.labels[sf.node]["rack"] == "r1" && f.labels[sf.node]["zone"] == "b" })},
		{"node and min critical", &hwhealv1.ListFaultsRequest{Node: "node-00", MinSeverity: sevCritical}, 1},
		{"class and labels", &hwhealv1.ListFaultsRequest{FaultClass: "memory.ue", Labels: map[string]string{"zone": "a"}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := listFaults(t, e.client, tt.req)
			if len(got) != tt.want {
				t.Fatalf("%d faults, want %d: %v", len(got), tt.want, got)
			}
			for _, fr := range got {
				if tt.req.GetNode() != "" && fr.GetNode() != tt.req.GetNode() ||
					tt.req.GetFaultClass() != "" && fr.GetFaultClass() != tt.req.GetFaultClass() ||
					fr.GetSeverity() < tt.req.GetMinSeverity() ||
					!hasLabels(f.labels[fr.GetNode()], tt.req.GetLabels()) {
					t.Errorf("fault %v does not match %v", fr, tt.req)
				}
			}
		})
	}
}

func TestNewRequiresStoreAndBroker(t *testing.T) {
	if _, err := api.New(api.Config{Broker: events.NewBroker(0)}); err == nil {
		t.Error("New without a store succeeded")
	}
	if _, err := api.New(api.Config{}); err == nil {
		t.Error("New without a store and broker succeeded")
	}
}

// watchAll reads a stream to its end (io.EOF).
func watchAll(t *testing.T, c hwhealv1.FleetServiceClient, req *hwhealv1.WatchEventsRequest) []*hwhealv1.Event {
	t.Helper()
	stream, err := c.WatchEvents(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	var out []*hwhealv1.Event
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Recv after %d events: %v", len(out), err)
		}
		out = append(out, resp.GetEvent())
	}
}

func sameEvents(t *testing.T, got, want []*hwhealv1.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events (ids %v), want %d (ids %v)", len(got), ids(got), len(want), ids(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("event %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func ids(evs []*hwhealv1.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetId()
	}
	return out
}

// follow opens a following stream and waits until the server subscribed to
// the broker, so that whatever is published next reaches it.
func follow(t *testing.T, e *env, req *hwhealv1.WatchEventsRequest) (hwhealv1.FleetService_WatchEventsClient, context.CancelFunc) {
	t.Helper()
	before := e.broker.Subscribers()
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := e.client.WatchEvents(ctx, req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	waitSubscribers(t, e.broker, before+1)
	return stream, cancel
}

func waitSubscribers(t *testing.T, b *events.Broker, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("broker has %d subscribers, want %d", b.Subscribers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// recvN receives n events.
func recvN(t *testing.T, s hwhealv1.FleetService_WatchEventsClient, n int) []*hwhealv1.Event {
	t.Helper()
	out := make([]*hwhealv1.Event, 0, n)
	for len(out) < n {
		resp, err := s.Recv()
		if err != nil {
			t.Fatalf("Recv after %d of %d events: %v", len(out), n, err)
		}
		out = append(out, resp.GetEvent())
	}
	return out
}

func TestWatchEventsNewOnly(t *testing.T) {
	e := newEnv(t, envOpts{})
	seed(t, e.store)
	stream, cancel := follow(t, e, &hwhealv1.WatchEventsRequest{})
	evs := hello(t, e.store, "node-new", nil)
	if len(evs) != 2 {
		t.Fatalf("hello recorded %v", evs)
	}
	e.broker.Publish(evs...)
	// The first event received is the new one: nothing recorded before was
	// replayed.
	sameEvents(t, recvN(t, stream, 2), evs)

	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel: %v", err)
	}
	// The server lets go of its subscription when the watcher leaves.
	waitSubscribers(t, e.broker, 0)
}

func TestWatchEventsReplayToEnd(t *testing.T) {
	e := newEnv(t, envOpts{})
	seed(t, e.store)
	want := storedEvents(t, e.store)
	if len(want) < 60 {
		t.Fatalf("only %d events recorded", len(want))
	}
	sameEvents(t, watchAll(t, e.client, &hwhealv1.WatchEventsRequest{AfterId: proto.Uint64(0), StopAtEnd: true}), want)
	if n := e.broker.Subscribers(); n != 0 {
		t.Errorf("a stop_at_end watch left %d subscriptions", n)
	}
	// stop_at_end without after_id has nothing to replay.
	if got := watchAll(t, e.client, &hwhealv1.WatchEventsRequest{StopAtEnd: true}); len(got) != 0 {
		t.Errorf("stop_at_end without after_id sent %v", ids(got))
	}
	// After the last id there is nothing.
	last := want[len(want)-1].GetId()
	if got := watchAll(t, e.client, &hwhealv1.WatchEventsRequest{AfterId: proto.Uint64(last), StopAtEnd: true}); len(got) != 0 {
		t.Errorf("after the last id: %v", ids(got))
	}
}

// shortPages is a conformant store whose EventsAfter returns fewer events
// than asked for ("up to limit"), as a backend with a smaller page may.
type shortPages struct{ store.Store }

func (s shortPages) EventsAfter(ctx context.Context, afterID uint64, limit int) ([]*hwhealv1.Event, error) {
	return s.Store.EventsAfter(ctx, afterID, min(limit, 7))
}

func TestWatchEventsReplayShortPages(t *testing.T) {
	e := newEnv(t, envOpts{wrap: func(s store.Store) store.Store { return shortPages{s} }})
	seed(t, e.store)
	want := storedEvents(t, e.store)
	sameEvents(t, watchAll(t, e.client, &hwhealv1.WatchEventsRequest{AfterId: proto.Uint64(0), StopAtEnd: true}), want)
}

func TestWatchEventsResume(t *testing.T) {
	e := newEnv(t, envOpts{})
	seed(t, e.store)
	// An event recorded before the watch starts and published after it
	// subscribed: the replay and the live feed both carry it.
	overlap := hello(t, e.store, "node-overlap", nil)
	all := storedEvents(t, e.store)
	n := all[len(all)/2].GetId()
	var replay []*hwhealv1.Event
	for _, ev := range all {
		if ev.GetId() > n {
			replay = append(replay, ev)
		}
	}

	stream, cancel := follow(t, e, &hwhealv1.WatchEventsRequest{AfterId: proto.Uint64(n)})
	defer cancel()
	e.broker.Publish(overlap...)
	fresh := hello(t, e.store, "node-fresh", nil)
	e.broker.Publish(fresh...)

	got := recvN(t, stream, len(replay)+len(fresh))
	if got[0].GetId() != n+1 {
		t.Errorf("first event %d, want %d", got[0].GetId(), n+1)
	}
	// The overlapping event comes once (from the replay), then the live
	// one: a duplicate would have come before it.
	sameEvents(t, got, append(replay, fresh...))
}

func TestWatchEventsFilters(t *testing.T) {
	e := newEnv(t, envOpts{})
	seed(t, e.store)
	all := storedEvents(t, e.store)
	count := func(keep func(ev *hwhealv1.Event) bool) int {
		n := 0
		for _, ev := range all {
			if keep(ev) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name string
		req  *hwhealv1.WatchEventsRequest
		want int
	}{
		{"fault opened", &hwhealv1.WatchEventsRequest{Types: []hwhealv1.EventType{evFaultOpened}}, 12},
		{"registered or fault opened", &hwhealv1.WatchEventsRequest{Types: []hwhealv1.EventType{evRegistered, evFaultOpened}}, 25 + 12},
		{"node", &hwhealv1.WatchEventsRequest{Node: "node-05"}, count(func(ev *hwhealv1.Event) bool { return ev.GetNode() == "node-05" })},
		{"class", &hwhealv1.WatchEventsRequest{FaultClass: "memory.ue"}, 5},
		{"node and class", &hwhealv1.WatchEventsRequest{Node: "node-00", FaultClass: "disk.io_error"}, 1},
		{"node and type", &hwhealv1.WatchEventsRequest{Node: "node-00", Types: []hwhealv1.EventType{evConnected}}, 1},
		{"no match", &hwhealv1.WatchEventsRequest{Node: "nope"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := proto.Clone(tt.req).(*hwhealv1.WatchEventsRequest)
			req.AfterId, req.StopAtEnd = proto.Uint64(0), true
			got := watchAll(t, e.client, req)
			if len(got) != tt.want {
				t.Fatalf("%d events, want %d: %v", len(got), tt.want, got)
			}
			for _, ev := range got {
				if len(tt.req.GetTypes()) > 0 && !slices.Contains(tt.req.GetTypes(), ev.GetType()) ||
					tt.req.GetNode() != "" && ev.GetNode() != tt.req.GetNode() ||
					tt.req.GetFaultClass() != "" && ev.GetFault().GetFaultClass() != tt.req.GetFaultClass() {
					t.Errorf("event %v does not match %v", ev, tt.req)
				}
			}
		})
	}
	if count(func(ev *hwhealv1.Event) bool { return ev.GetNode() == "node-05" }) < 3 {
		t.Fatal("seed recorded too few events of node-05 for the node filter to mean anything")
	}

	t.Run("live", func(t *testing.T) {
		stream, cancel := follow(t, e, &hwhealv1.WatchEventsRequest{Node: "live-b", Types: []hwhealv1.EventType{evConnected}})
		defer cancel()
		e.broker.Publish(hello(t, e.store, "live-a", nil)...)
		b := hello(t, e.store, "live-b", nil)
		e.broker.Publish(b...)
		e.broker.Publish(hello(t, e.store, "live-c", nil)...)
		// live-b's NODE_CONNECTED is the first event through; then nothing
		// up to the marker (published last, matching the filter): live-c's
		// events were dropped.
		got := recvN(t, stream, 1)
		if got[0].GetNode() != "live-b" || got[0].GetType() != evConnected || got[0].GetId() != b[1].GetId() {
			t.Fatalf("got %v, want live-b's connected event %v", got[0], b[1])
		}
		// live-b says hello again: one more NODE_CONNECTED, the marker.
		marker := hello(t, e.store, "live-b", nil)
		if len(marker) != 1 || marker[0].GetType() != evConnected {
			t.Fatalf("second hello recorded %v", marker)
		}
		e.broker.Publish(marker...)
		if got := recvN(t, stream, 1); got[0].GetId() != marker[0].GetId() {
			t.Fatalf("after live-b's event got %v, want the marker %v", got[0], marker[0])
		}
	})
}

func TestWatchEventsSlowWatcher(t *testing.T) {
	gate := make(chan struct{})
	e := newEnv(t, envOpts{broker: events.NewBroker(2), streamGate: gate})
	seed(t, e.store)
	stream, cancel := follow(t, e, &hwhealv1.WatchEventsRequest{})
	defer cancel()
	// Six new recorded events published at once while the server cannot
	// send: at most one is in flight, two fit the buffer, so it falls
	// behind.
	var published []*hwhealv1.Event
	for _, n := range []string{"late-1", "late-2", "late-3"} {
		published = append(published, hello(t, e.store, n, nil)...)
	}
	e.broker.Publish(published...)
	if _, overflows := e.broker.Stats(); overflows != 1 {
		t.Fatalf("broker overflows = %d, want 1", overflows)
	}
	close(gate)

	var got []*hwhealv1.Event
	var err error
	for {
		var resp *hwhealv1.WatchEventsResponse
		if resp, err = stream.Recv(); err != nil {
			break
		}
		got = append(got, resp.GetEvent())
	}
	wantCode(t, err, codes.ResourceExhausted, "after_id")
	// What came through is a gap-free start of what was published, and the
	// resume point named is just after it.
	if len(got) == 0 || len(got) >= len(published) {
		t.Fatalf("received %d of %d events before falling behind", len(got), len(published))
	}
	sameEvents(t, got, published[:len(got)])
	last := got[len(got)-1].GetId()
	if msg := status.Convert(err).Message(); !strings.Contains(msg, fmt.Sprintf("after_id=%d;", last)) && !strings.HasSuffix(msg, fmt.Sprintf("after_id=%d", last)) {
		t.Fatalf("message %q does not name after_id=%d", msg, last)
	}
	// Resuming there gives exactly what was missed.
	sameEvents(t, watchAll(t, e.client, &hwhealv1.WatchEventsRequest{AfterId: proto.Uint64(last), StopAtEnd: true}), published[len(got):])
	waitSubscribers(t, e.broker, 0)
}

func TestStopWatches(t *testing.T) {
	e := newEnv(t, envOpts{})
	seed(t, e.store)
	s1, cancel1 := follow(t, e, &hwhealv1.WatchEventsRequest{})
	defer cancel1()
	s2, cancel2 := follow(t, e, &hwhealv1.WatchEventsRequest{AfterId: proto.Uint64(0)})
	defer cancel2()
	e.fleet.StopWatches()
	e.fleet.StopWatches() // twice is fine
	if _, err := s1.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("follow after StopWatches: %v, want Unavailable", err)
	}
	n := len(storedEvents(t, e.store))
	for i := 0; ; i++ {
		_, err := s2.Recv()
		if err == nil {
			continue
		}
		wantCode(t, err, codes.Unavailable, "after_id")
		if i != n {
			t.Errorf("replaying follow got %d events before Unavailable, want %d", i, n)
		}
		break
	}
	waitSubscribers(t, e.broker, 0)
	// A watch that starts after the stop ends at once too; a listing still
	// works.
	s3, err := e.client.WatchEvents(t.Context(), &hwhealv1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("new follow after StopWatches: %v, want Unavailable", err)
	}
	if got := watchAll(t, e.client, &hwhealv1.WatchEventsRequest{AfterId: proto.Uint64(0), StopAtEnd: true}); len(got) != n {
		t.Errorf("stop_at_end after StopWatches: %d events, want %d", len(got), n)
	}
}
