package collector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hwheal/hwheal/collector/auth"
	"github.com/hwheal/hwheal/pkg/grpcutil"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// syncBuffer is a log sink safe for the collector's goroutines.
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

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "no state dir", cfg: Config{Insecure: true}, want: "state-dir"},
		{name: "no tls and not insecure", cfg: Config{StateDir: "/tmp/x"}, want: "--insecure"},
		{name: "unknown store", cfg: Config{StateDir: "/tmp/x", Insecure: true, Store: "mysql://x"}, want: "not supported"},
		{name: "ok", cfg: Config{StateDir: "/tmp/x", Insecure: true}},
		{name: "sqlite path", cfg: Config{Store: "sqlite:/tmp/x.db", Insecure: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if tt.cfg.Listen != DefaultListen {
					t.Fatalf("Listen default %q", tt.cfg.Listen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if err := (&Config{StateDir: "x"}).Validate(); !errors.Is(err, grpcutil.ErrNoTLS) {
		t.Fatalf("err = %v, want ErrNoTLS", err)
	}
}

// TestRunServesAndStopsGracefully starts a real collector on a loopback
// port, connects an agent stream and an event watcher (both never end by
// themselves), then cancels: Run must end the streams itself and return
// without falling back to a forced stop.
func TestRunServesAndStopsGracefully(t *testing.T) {
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := New(ctx, Config{
		Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", StateDir: t.TempDir(), RulesDir: t.TempDir(), Insecure: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), ShutdownTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	<-c.Ready()

	// Client calls use their own context: the collector's is cancelled to
	// stop it, and the test must see how the server ends the streams.
	cctx := context.Background()
	conn, err := grpc.NewClient(c.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v, %v", hc, err)
	}

	agent, err := hwhealv1.NewAgentServiceClient(conn).Connect(cctx)
	if err != nil {
		t.Fatal(err)
	}
	agent.Send(&hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Hello{Hello: &hwhealv1.Hello{Node: "n1", StreamId: "s"}}})
	if m, err := agent.Recv(); err != nil || m.GetWelcome() == nil {
		t.Fatalf("welcome %v, %v", m, err)
	}
	fleet := hwhealv1.NewFleetServiceClient(conn)
	admin := withToken(cctx, adminToken(t, c.cfg.StateDir))
	watch, err := fleet.WatchEvents(admin, &hwhealv1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// With the admin token a fleet call gets through to its handler.
	if _, err := fleet.ListActions(admin, &hwhealv1.ListActionsRequest{}); err != nil {
		t.Fatalf("ListActions: %v", err)
	}

	resp, err := http.Get("http://" + c.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hwheal_ingest_streams 1") {
		t.Fatalf("metrics lack hwheal_ingest_streams 1:\n%s", body)
	}

	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := agent.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("agent stream ended with %v, want Unavailable", err)
	}
	if _, err := watch.Recv(); err == nil {
		t.Fatal("watch stream still open after stop")
	}
	if strings.Contains(logs.String(), "graceful stop timed out") {
		t.Fatalf("stop needed the forced fallback:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "collector stopped") {
		t.Fatalf("no clean stop in logs:\n%s", logs.String())
	}
}

func adminToken(t *testing.T, stateDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, auth.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// startCollector runs a collector with cfg's listen, state and rules
// filled in, until the test ends.
func startCollector(t *testing.T, cfg Config) (*Collector, *grpc.ClientConn) {
	t.Helper()
	cfg.Listen, cfg.Insecure, cfg.RulesDir = "127.0.0.1:0", true, t.TempDir()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	<-c.Ready()
	conn, err := grpc.NewClient(c.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c, conn
}

// TestFleetAPIAuth: a collector without a tokens file makes admin.token
// (0600) and its fleet API takes that token and no other; with a tokens
// file, each user gets its role; health and AgentService ask for none.
func TestFleetAPIAuth(t *testing.T) {
	t.Run("admin token", func(t *testing.T) {
		logs := &syncBuffer{}
		c, conn := startCollector(t, Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
		path := filepath.Join(c.cfg.StateDir, auth.AdminTokenFile)
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("admin.token: %v, %v", st, err)
		}
		token := adminToken(t, c.cfg.StateDir)
		if !strings.Contains(logs.String(), path) || strings.Contains(logs.String(), token) {
			t.Errorf("the log should name admin.token's path, never the token:\n%s", logs)
		}
		fleet := hwhealv1.NewFleetServiceClient(conn)
		ctx := t.Context()
		if _, err := fleet.ListNodes(ctx, &hwhealv1.ListNodesRequest{}); status.Code(err) != codes.Unauthenticated ||
			!strings.Contains(err.Error(), "no token: pass --token, HWHEAL_TOKEN or --token-file") {
			t.Errorf("ListNodes without a token: %v", err)
		}
		if _, err := fleet.ListNodes(withToken(ctx, "0123456789abcdef0123"), &hwhealv1.ListNodesRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("ListNodes with an unknown token: %v", err)
		}
		if _, err := fleet.ListNodes(withToken(ctx, token), &hwhealv1.ListNodesRequest{}); err != nil {
			t.Errorf("ListNodes with the admin token: %v", err)
		}
		if hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health without a token: %v, %v", hc, err)
		}
		agent, err := hwhealv1.NewAgentServiceClient(conn).Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		agent.Send(&hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Hello{Hello: &hwhealv1.Hello{Node: "n1", StreamId: "s"}}})
		if m, err := agent.Recv(); err != nil || m.GetWelcome() == nil {
			t.Errorf("agent without a token: %v, %v", m, err)
		}
	})

	t.Run("tokens file", func(t *testing.T) {
		dir := t.TempDir()
		tokens := filepath.Join(dir, "tokens")
		const viewer, operator = "viewer-token-0123456789", "operator-token-0123456789"
		if err := os.WriteFile(tokens, []byte(viewer+",vic,viewer\n"+operator+",olga,operator\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, conn := startCollector(t, Config{StateDir: dir, TokensFile: tokens, MetricsListen: "127.0.0.1:0"})
		if _, err := os.Stat(filepath.Join(dir, auth.AdminTokenFile)); !os.IsNotExist(err) {
			t.Errorf("admin.token made beside a tokens file: %v", err)
		}
		fleet := hwhealv1.NewFleetServiceClient(conn)
		ctx := t.Context()
		if _, err := fleet.ListFaults(withToken(ctx, viewer), &hwhealv1.ListFaultsRequest{}); err != nil {
			t.Errorf("viewer ListFaults: %v", err)
		}
		_, err := fleet.ResolveFault(withToken(ctx, viewer), &hwhealv1.ResolveFaultRequest{Id: 1, Reason: "r"})
		if st, _ := status.FromError(err); st.Code() != codes.PermissionDenied || st.Message() != "ResolveFault needs role operator; vic has viewer" {
			t.Errorf("viewer ResolveFault: %v", err)
		}
		// The operator gets past auth to the handler, which knows no
		// fault 1.
		if _, err := fleet.ResolveFault(withToken(ctx, operator), &hwhealv1.ResolveFaultRequest{Id: 1, Reason: "r"}); status.Code(err) != codes.NotFound {
			t.Errorf("operator ResolveFault: %v", err)
		}
		resp, err := http.Get("http://" + c.MetricsAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `hwheal_api_auth_denied_total{method="ResolveFault",reason="permission_denied"} 1`) {
			t.Errorf("metrics lack the denial:\n%s", body)
		}
	})

	t.Run("bad tokens file", func(t *testing.T) {
		dir := t.TempDir()
		tokens := filepath.Join(dir, "tokens")
		if err := os.WriteFile(tokens, []byte("# ops\ns3cr3t-0123456789abcdef,alice,root\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(t.Context(), Config{Insecure: true, StateDir: dir, RulesDir: t.TempDir(), TokensFile: tokens})
		if err == nil || !strings.Contains(err.Error(), tokens+": line 2: unknown role") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("New with a bad tokens file: %v", err)
		}
	})
}
