package ctl

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hwheal/hwheal/collector/auth"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// fakeFleet is a FleetService that records every request and answers
// from what the test put in it. It runs on a loopback port behind the
// collector's real auth interceptors, so hwhealctl's tokens and the
// server's denials are the real ones; what the handlers do is the
// test's.
type fakeFleet struct {
	hwhealv1.UnimplementedFleetServiceServer

	mu    sync.Mutex
	calls []fakeCall
	fakeData
}

// fakeData is what the fake answers with. Tests set it before a command
// (or with update between commands); handlers read a copy under the lock.
type fakeData struct {
	// pageSize caps every page the listings return, so that the
	// commands' paging is exercised.
	pageSize int
	nodes    []*hwhealv1.Node
	node     *hwhealv1.GetNodeResponse
	faults   []*hwhealv1.FaultRecord
	events   []*hwhealv1.Event
	actions  []*hwhealv1.Action
	// reply is the action every action RPC but ListActions returns.
	reply  *hwhealv1.Action
	status *hwhealv1.RemediationStatus
	audit  []*hwhealv1.AuditRecord
	// err, when set, is every RPC's answer.
	err error
}

// fakeCall is one request as the server saw it.
type fakeCall struct {
	method string
	req    proto.Message
	// user is who the auth interceptor let through; auth is the raw
	// authorization header.
	user string
	auth string
}

// update changes what the fake answers with.
func (f *fakeFleet) update(fn func(d *fakeData)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.fakeData)
}

func (f *fakeFleet) record(ctx context.Context, method string, req proto.Message) (fakeData, error) {
	c := fakeCall{method: method, req: proto.Clone(req)}
	if id, ok := auth.FromContext(ctx); ok {
		c.user = id.User
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 {
		c.auth = v[0]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.fakeData, f.err
}

// requests returns the recorded requests of method.
func (f *fakeFleet) requests(method string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.method == method {
			out = append(out, c)
		}
	}
	return out
}

// last is the one request of method; the test fails unless there was
// exactly one.
func last[M proto.Message](t *testing.T, f *fakeFleet, method string) M {
	t.Helper()
	calls := f.requests(method)
	if len(calls) != 1 {
		t.Fatalf("%d %s requests, want 1", len(calls), method)
	}
	m, ok := calls[0].req.(M)
	if !ok {
		t.Fatalf("%s request is %T", method, calls[0].req)
	}
	return m
}

func (f *fakeFleet) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// page serves items[token:] up to the smaller of size and pageSize.
func page[T any](d fakeData, items []T, size uint32, token string) ([]T, string, error) {
	off := 0
	if token != "" {
		var err error
		if off, err = strconv.Atoi(token); err != nil || off > len(items) {
			return nil, "", status.Error(codes.InvalidArgument, "bad page token")
		}
	}
	n := int(size)
	if n == 0 || (d.pageSize > 0 && d.pageSize < n) {
		n = d.pageSize
	}
	if n <= 0 {
		n = len(items)
	}
	end := min(off+n, len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[off:end], next, nil
}

func (f *fakeFleet) ListNodes(ctx context.Context, req *hwhealv1.ListNodesRequest) (*hwhealv1.ListNodesResponse, error) {
	d, err := f.record(ctx, "ListNodes", req)
	if err != nil {
		return nil, err
	}
	items, next, err := page(d, d.nodes, req.GetPageSize(), req.GetPageToken())
	return &hwhealv1.ListNodesResponse{Nodes: items, NextPageToken: next}, err
}

func (f *fakeFleet) GetNode(ctx context.Context, req *hwhealv1.GetNodeRequest) (*hwhealv1.GetNodeResponse, error) {
	d, err := f.record(ctx, "GetNode", req)
	if err != nil {
		return nil, err
	}
	return d.node, nil
}

func (f *fakeFleet) ListFaults(ctx context.Context, req *hwhealv1.ListFaultsRequest) (*hwhealv1.ListFaultsResponse, error) {
	d, err := f.record(ctx, "ListFaults", req)
	if err != nil {
		return nil, err
	}
	items, next, err := page(d, d.faults, req.GetPageSize(), req.GetPageToken())
	return &hwhealv1.ListFaultsResponse{Faults: items, NextPageToken: next}, err
}

func (f *fakeFleet) GetFault(ctx context.Context, req *hwhealv1.GetFaultRequest) (*hwhealv1.GetFaultResponse, error) {
	d, err := f.record(ctx, "GetFault", req)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.GetFaultResponse{Fault: d.faults[0]}, nil
}

func (f *fakeFleet) WatchEvents(req *hwhealv1.WatchEventsRequest, s hwhealv1.FleetService_WatchEventsServer) error {
	d, err := f.record(s.Context(), "WatchEvents", req)
	if err != nil {
		return err
	}
	for _, ev := range d.events {
		if err := s.Send(&hwhealv1.WatchEventsResponse{Event: ev}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeFleet) ListActions(ctx context.Context, req *hwhealv1.ListActionsRequest) (*hwhealv1.ListActionsResponse, error) {
	d, err := f.record(ctx, "ListActions", req)
	if err != nil {
		return nil, err
	}
	items, next, err := page(d, d.actions, req.GetPageSize(), req.GetPageToken())
	return &hwhealv1.ListActionsResponse{Actions: items, NextPageToken: next}, err
}

func (f *fakeFleet) GetAction(ctx context.Context, req *hwhealv1.GetActionRequest) (*hwhealv1.GetActionResponse, error) {
	d, err := f.record(ctx, "GetAction", req)
	if err != nil {
		return nil, err
	}
	if d.reply == nil || req.GetId() != d.reply.GetId() {
		return nil, status.Errorf(codes.NotFound, "action %s not found", req.GetId())
	}
	return &hwhealv1.GetActionResponse{Action: d.reply}, nil
}

func (f *fakeFleet) RequestAction(ctx context.Context, req *hwhealv1.RequestActionRequest) (*hwhealv1.RequestActionResponse, error) {
	d, err := f.record(ctx, "RequestAction", req)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.RequestActionResponse{Action: d.reply}, nil
}

func (f *fakeFleet) ApproveAction(ctx context.Context, req *hwhealv1.ApproveActionRequest) (*hwhealv1.ApproveActionResponse, error) {
	d, err := f.record(ctx, "ApproveAction", req)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.ApproveActionResponse{Action: d.reply}, nil
}

func (f *fakeFleet) DenyAction(ctx context.Context, req *hwhealv1.DenyActionRequest) (*hwhealv1.DenyActionResponse, error) {
	d, err := f.record(ctx, "DenyAction", req)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.DenyActionResponse{Action: d.reply}, nil
}

func (f *fakeFleet) CancelAction(ctx context.Context, req *hwhealv1.CancelActionRequest) (*hwhealv1.CancelActionResponse, error) {
	d, err := f.record(ctx, "CancelAction", req)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.CancelActionResponse{Action: d.reply}, nil
}

func (f *fakeFleet) PauseRemediation(ctx context.Context, req *hwhealv1.PauseRemediationRequest) (*hwhealv1.PauseRemediationResponse, error) {
	d, err := f.record(ctx, "PauseRemediation", req)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.PauseRemediationResponse{Status: d.status}, nil
}

func (f *fakeFleet) ResumeRemediation(ctx context.Context, req *hwhealv1.ResumeRemediationRequest) (*hwhealv1.ResumeRemediationResponse, error) {
	d, err := f.record(ctx, "ResumeRemediation", req)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.ResumeRemediationResponse{Status: d.status}, nil
}

func (f *fakeFleet) GetRemediationStatus(ctx context.Context, req *hwhealv1.GetRemediationStatusRequest) (*hwhealv1.GetRemediationStatusResponse, error) {
	d, err := f.record(ctx, "GetRemediationStatus", req)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.GetRemediationStatusResponse{Status: d.status}, nil
}

func (f *fakeFleet) ListAudit(ctx context.Context, req *hwhealv1.ListAuditRequest) (*hwhealv1.ListAuditResponse, error) {
	d, err := f.record(ctx, "ListAudit", req)
	if err != nil {
		return nil, err
	}
	items, next, err := page(d, d.audit, req.GetPageSize(), req.GetPageToken())
	return &hwhealv1.ListAuditResponse{Records: items, NextPageToken: next}, err
}

// The fake's users, one per role, and their tokens.
var fakeUsers = []struct {
	user, role, token string
}{
	{"vic", "viewer", "vic-viewer-token-0123456789"},
	{"alice", "operator", "alice-operator-token-0123456789"},
	{"bob", "approver", "bob-approver-token-0123456789"},
	{"root", "admin", "root-admin-token-0123456789"},
}

// fakeNow is the clock of the fake tests: 12:00 UTC, 13:00 in fakeZone.
var (
	fakeNow  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fakeZone = time.FixedZone("CET", 3600)
)

// fakeEnv is a fake fleet API and the token files of its users.
type fakeEnv struct {
	fleet      *fakeFleet
	addr       string
	tokenFiles map[string]string // by user
}

func startFake(t *testing.T, f *fakeFleet) *fakeEnv {
	t.Helper()
	var tokens strings.Builder
	for _, u := range fakeUsers {
		fmt.Fprintf(&tokens, "%s,%s,%s\n", u.token, u.user, u.role)
	}
	toks, err := auth.Parse(strings.NewReader(tokens.String()))
	if err != nil {
		t.Fatal(err)
	}
	g, err := auth.NewGuard(auth.Config{Tokens: toks, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(g.UnaryInterceptor()), grpc.StreamInterceptor(g.StreamInterceptor()))
	hwhealv1.RegisterFleetServiceServer(srv, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	e := &fakeEnv{fleet: f, addr: lis.Addr().String(), tokenFiles: map[string]string{}}
	for _, u := range fakeUsers {
		e.tokenFiles[u.user] = writeFile(t, u.user+".token", u.token+"\n")
	}
	return e
}

// run runs hwhealctl against the fake as user ("" for no token), with
// the clock and zone pinned.
func (e *fakeEnv) run(t *testing.T, user string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	args = append(args, "--collector", e.addr, "--insecure")
	if user != "" {
		args = append(args, "--token-file", e.tokenFiles[user])
	}
	var out, errb bytes.Buffer
	root := newRoot(testVersion, &options{stdout: &out, stderr: &errb, now: func() time.Time { return fakeNow }, location: fakeZone})
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

// ctl runs a command that must succeed and returns what it printed.
func (e *fakeEnv) ctl(t *testing.T, user string, args ...string) string {
	t.Helper()
	out, _, err := e.run(t, user, args...)
	if err != nil {
		t.Fatalf("hwhealctl %s as %s: %v", strings.Join(args, " "), user, err)
	}
	return out
}

// ctlErr runs a command that must fail and returns its error.
func (e *fakeEnv) ctlErr(t *testing.T, user string, args ...string) error {
	t.Helper()
	out, _, err := e.run(t, user, args...)
	if err == nil {
		t.Fatalf("hwhealctl %s as %s succeeded, printing %q", strings.Join(args, " "), user, out)
	}
	return err
}

// wantLines fails unless out holds each line (trimmed of surrounding
// space, and with runs of spaces made one), in this order.
func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(out, "\n") {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	i := 0
	for _, g := range got {
		if i < len(lines) && g == lines[i] {
			i++
		}
	}
	if i < len(lines) {
		t.Errorf("output lacks %q (or has it out of order):\n%s", lines[i], out)
	}
}
