package auth_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/hwheal/hwheal/collector/auth"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fleetMethods are FleetService's methods as the generated descriptor has
// them: what the server really serves, whatever the table says.
func fleetMethods(t *testing.T) []protoreflect.MethodDescriptor {
	t.Helper()
	sd := hwhealv1.File_hwheal_v1_fleet_proto.Services().ByName("FleetService")
	if sd == nil {
		t.Fatal("no FleetService in fleet.proto")
	}
	if string(sd.FullName()) != hwhealv1.FleetService_ServiceDesc.ServiceName {
		t.Fatalf("descriptor %s, grpc service %s", sd.FullName(), hwhealv1.FleetService_ServiceDesc.ServiceName)
	}
	var out []protoreflect.MethodDescriptor
	for i := range sd.Methods().Len() {
		out = append(out, sd.Methods().Get(i))
	}
	return out
}

func fullName(m protoreflect.MethodDescriptor) string {
	return fmt.Sprintf("/%s/%s", m.Parent().FullName(), m.Name())
}

// TestMethodTableCoversFleetService fails when an RPC is added to
// FleetService without deciding which role may call it (it would fall to
// admin only, silently).
func TestMethodTableCoversFleetService(t *testing.T) {
	methods := fleetMethods(t)
	if len(methods) < 17 {
		t.Fatalf("only %d FleetService methods in the descriptor", len(methods))
	}
	for _, m := range methods {
		if _, listed := auth.RequiredRole(fullName(m)); !listed {
			t.Errorf("%s is not in the method table: give it its least role in collector/auth", fullName(m))
		}
	}
	if r, listed := auth.RequiredRole("/hwheal.v1.FleetService/RebootEverything"); listed || r != auth.Admin {
		t.Errorf("an unlisted method needs %s (listed %v), want admin", r, listed)
	}
}

// wantRoles is the table, written out again so that a change to
// the code's table is a change to this test too.
var wantRoles = map[string]auth.Role{
	"ListNodes": auth.Viewer, "GetNode": auth.Viewer, "ListFaults": auth.Viewer, "GetFault": auth.Viewer,
	"WatchEvents": auth.Viewer, "ListActions": auth.Viewer, "GetAction": auth.Viewer,
	"GetRemediationStatus": auth.Viewer, "ListAudit": auth.Viewer,
	"AcknowledgeFault": auth.Operator, "ResolveFault": auth.Operator, "RequestAction": auth.Operator, "CancelAction": auth.Operator,
	"ApproveAction": auth.Approver, "DenyAction": auth.Approver,
	"PauseRemediation": auth.Admin, "ResumeRemediation": auth.Admin,
}

func TestMethodTable(t *testing.T) {
	for _, m := range fleetMethods(t) {
		want, ok := wantRoles[string(m.Name())]
		if !ok {
			t.Errorf("%s: add it to wantRoles with the role the design gives it", m.Name())
			continue
		}
		if got, _ := auth.RequiredRole(fullName(m)); got != want {
			t.Errorf("%s needs %s, want %s", m.Name(), got, want)
		}
	}
}

// server is a fleet API behind a Guard, over bufconn, with AgentService
// and health beside it as the collector serves them. Every FleetService
// method is the generated Unimplemented one: a call that reaches it ends
// UNIMPLEMENTED, which is how the tests tell "let through" from "refused".
type server struct {
	conn *grpc.ClientConn
	reg  *prometheus.Registry
	logs *logBuffer

	mu   sync.Mutex
	seen map[string]auth.Identity // what the handler's context held, by full method
}

type agentService struct {
	hwhealv1.UnimplementedAgentServiceServer
}

type fleetService struct {
	hwhealv1.UnimplementedFleetServiceServer
}

func newServer(t *testing.T) *server {
	t.Helper()
	toks, err := auth.Parse(strings.NewReader(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	log, logs := newLog()
	s := &server{reg: prometheus.NewRegistry(), logs: logs, seen: map[string]auth.Identity{}}
	g, err := auth.NewGuard(auth.Config{Tokens: toks, Logger: log, Registerer: s.reg})
	if err != nil {
		t.Fatal(err)
	}
	record := func(ctx context.Context, method string) {
		if id, ok := auth.FromContext(ctx); ok {
			s.mu.Lock()
			s.seen[method] = id
			s.mu.Unlock()
		}
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(g.UnaryInterceptor(), func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx, info.FullMethod)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(g.StreamInterceptor(), func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context(), info.FullMethod)
			return h(srv, ss)
		}),
	)
	hwhealv1.RegisterFleetServiceServer(srv, fleetService{})
	hwhealv1.RegisterAgentServiceServer(srv, agentService{})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	lis := bufconn.Listen(1 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	s.conn, err = grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.conn.Close()
		srv.Stop()
		<-done
	})
	return s
}

func (s *server) identity(method string) (auth.Identity, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.seen[method]
	delete(s.seen, method)
	return id, ok
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// call calls any FleetService method with an empty request: the server
// decodes it as the method's own request type.
func (s *server) call(ctx context.Context, m protoreflect.MethodDescriptor) error {
	if m.IsStreamingServer() || m.IsStreamingClient() {
		st, err := s.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: m.IsStreamingServer(), ClientStreams: m.IsStreamingClient()}, fullName(m))
		if err != nil {
			return err
		}
		if err := st.SendMsg(&emptypb.Empty{}); err != nil {
			return err
		}
		if err := st.CloseSend(); err != nil {
			return err
		}
		return st.RecvMsg(&emptypb.Empty{})
	}
	return s.conn.Invoke(ctx, fullName(m), &emptypb.Empty{}, &emptypb.Empty{})
}

// TestGuardRoles calls every FleetService method with every role: a role
// at or above the method's is let through with its identity in the
// handler's context; a lower one is refused with the role it lacks.
func TestGuardRoles(t *testing.T) {
	s := newServer(t)
	users := []struct {
		token string
		id    auth.Identity
	}{
		{tokViewer, auth.Identity{User: "victor", Role: auth.Viewer}},
		{tokOperator, auth.Identity{User: "olga", Role: auth.Operator}},
		{tokApprover, auth.Identity{User: "alice@ops", Role: auth.Approver}},
		{tokAdmin, auth.Identity{User: "root admin", Role: auth.Admin}},
	}
	for _, m := range fleetMethods(t) {
		need, _ := auth.RequiredRole(fullName(m))
		for _, u := range users {
			t.Run(fmt.Sprintf("%s/%s", m.Name(), u.id.Role), func(t *testing.T) {
				err := s.call(withToken(t.Context(), u.token), m)
				id, reached := s.identity(fullName(m))
				if u.id.Role.Includes(need) {
					if status.Code(err) != codes.Unimplemented || !reached || id != u.id {
						t.Errorf("%s as %s: %v, handler saw %+v (%v); want it let through as %+v", m.Name(), u.id.Role, err, id, reached, u.id)
					}
					return
				}
				want := fmt.Sprintf("%s needs role %s; %s has %s", m.Name(), need, u.id.User, u.id.Role)
				if st, _ := status.FromError(err); st.Code() != codes.PermissionDenied || st.Message() != want {
					t.Errorf("%s as %s: %v, want PERMISSION_DENIED %q", m.Name(), u.id.Role, err, want)
				}
				if reached {
					t.Errorf("%s as %s reached the handler", m.Name(), u.id.Role)
				}
			})
		}
	}
	// Each denial counted once, by method.
	if got := denials(t, s.reg, "ApproveAction", "permission_denied"); got != 2 {
		t.Errorf("ApproveAction denials counted %v, want 2 (viewer, operator)", got)
	}
	if got := denials(t, s.reg, "PauseRemediation", "permission_denied"); got != 3 {
		t.Errorf("PauseRemediation denials counted %v, want 3", got)
	}
	if out := s.logs.String(); !strings.Contains(out, "role too low") || strings.Contains(out, "token-0123456789") {
		t.Errorf("denials log: %s", out)
	}
}

// denials reads hwheal_api_auth_denied_total{method,reason} from reg.
func denials(t *testing.T, reg *prometheus.Registry, method, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hwheal_api_auth_denied_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestGuardUnauthenticated(t *testing.T) {
	s := newServer(t)
	var unary, stream protoreflect.MethodDescriptor
	for _, m := range fleetMethods(t) {
		switch m.Name() {
		case "ListNodes":
			unary = m
		case "WatchEvents":
			stream = m
		}
	}
	tests := []struct {
		name string
		ctx  func(context.Context) context.Context
		want string
	}{
		{"no token", func(ctx context.Context) context.Context { return ctx }, "no token: pass --token, HWHEAL_TOKEN or --token-file"},
		{"empty bearer", func(ctx context.Context) context.Context {
			return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer ")
		}, `must be "Bearer <token>"`},
		{"basic scheme", func(ctx context.Context) context.Context {
			return metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+tokAdmin)
		}, `must be "Bearer <token>"`},
		{"unknown token", func(ctx context.Context) context.Context { return withToken(ctx, secret) }, "unknown token"},
		{"token prefix", func(ctx context.Context) context.Context { return withToken(ctx, tokAdmin[:len(tokAdmin)-1]) }, "unknown token"},
	}
	for _, tt := range tests {
		for _, m := range []protoreflect.MethodDescriptor{unary, stream} {
			t.Run(tt.name+"/"+string(m.Name()), func(t *testing.T) {
				err := s.call(tt.ctx(t.Context()), m)
				if st, _ := status.FromError(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), tt.want) {
					t.Errorf("%v, want UNAUTHENTICATED %q", err, tt.want)
				}
				if _, reached := s.identity(fullName(m)); reached {
					t.Error("reached the handler")
				}
			})
		}
	}
	if got := denials(t, s.reg, "WatchEvents", "unauthenticated"); got != float64(len(tests)) {
		t.Errorf("WatchEvents unauthenticated counted %v, want %d", got, len(tests))
	}
	// "Bearer" is a scheme: its case does not matter.
	if err := s.call(metadata.AppendToOutgoingContext(t.Context(), "authorization", "bearer "+tokViewer), unary); status.Code(err) != codes.Unimplemented {
		t.Errorf("lower-case bearer: %v", err)
	}
	if out := s.logs.String(); strings.Contains(out, secret) || strings.Contains(out, tokAdmin[:20]) {
		t.Errorf("a token reached the log: %s", out)
	}
}

// TestGuardLeavesOtherServicesOpen: AgentService waits for mutual TLS and
// health is for load balancers; neither asks for a token.
func TestGuardLeavesOtherServicesOpen(t *testing.T) {
	s := newServer(t)
	hc, err := healthpb.NewHealthClient(s.conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health without a token: %v, %v", hc, err)
	}
	st, err := hwhealv1.NewAgentServiceClient(s.conn).Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unimplemented {
		t.Errorf("AgentService.Connect without a token: %v, want it let through to the (unimplemented) handler", err)
	}
}

func TestNewGuardRefusesNoTokens(t *testing.T) {
	if _, err := auth.NewGuard(auth.Config{}); err == nil {
		t.Error("a Guard without tokens")
	}
}
