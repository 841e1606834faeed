package collector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

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
	watch, err := fleet.WatchEvents(cctx, &hwhealv1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.ListActions(cctx, &hwhealv1.ListActionsRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListActions: %v, want Unimplemented until remediation lands", err)
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
