// Package ctl is hwhealctl: the operator's command line over FleetService
// (nodes, faults, events) and the offline rule tools (rules replay). Each
// verb lives in its own file; they share one dial helper and one output
// layer so that -o means the same everywhere.
package ctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/hwheal/hwheal/pkg/grpcutil"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// DefaultCollector is the address used when neither --collector nor
// HWHEAL_COLLECTOR is set.
const DefaultCollector = "127.0.0.1:7400"

type options struct {
	collector string
	insecure  bool
	output    string
	timeout   time.Duration
	stdout    io.Writer
	stderr    io.Writer
	// replayClock places yearless syslog timestamps in `rules replay` and
	// gives local timestamps their zone; the zero value is the real clock
	// and time.Local. Tests pin it so that output does not change with the
	// year or the machine's zone.
	replayClock kernlog.Parser
}

// NewRoot returns the hwhealctl command tree. version is printed by
// `hwhealctl version`.
func NewRoot(version string, stdout, stderr io.Writer) *cobra.Command {
	return newRoot(version, &options{stdout: stdout, stderr: stderr})
}

func newRoot(version string, o *options) *cobra.Command {
	root := &cobra.Command{
		Use:           "hwhealctl",
		Short:         "Query and steer a hwheal fleet",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch o.output {
			case "table", "json":
			default:
				return fmt.Errorf("-o %q: use table or json", o.output)
			}
			return nil
		},
	}
	root.SetOut(o.stdout)
	root.SetErr(o.stderr)
	def := os.Getenv("HWHEAL_COLLECTOR")
	if def == "" {
		def = DefaultCollector
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.collector, "collector", def, "collector gRPC address (env HWHEAL_COLLECTOR)")
	pf.BoolVar(&o.insecure, "insecure", false, "connect without TLS (trusted networks and trials only)")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of each request (not of events --follow)")
	root.AddCommand(
		newNodesCmd(o), newNodeCmd(o), newFaultsCmd(o), newFaultCmd(o), newEventsCmd(o), newRulesCmd(o),
		&cobra.Command{
			Use:   "version",
			Short: "Print hwhealctl's version",
			Args:  cobra.NoArgs,
			Run:   func(*cobra.Command, []string) { fmt.Fprintln(o.stdout, version) },
		},
	)
	return root
}

// dial connects to the collector's fleet API.
func (o *options) dial() (hwhealv1.FleetServiceClient, func(), error) {
	creds, err := grpcutil.TransportCredentials(o.insecure)
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(o.collector, grpc.WithTransportCredentials(creds),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, grpcutil.ActorMetadata, o.actor()), method, req, reply, cc, opts...)
		}))
	if err != nil {
		return nil, nil, fmt.Errorf("collector %s: %w", o.collector, err)
	}
	return hwhealv1.NewFleetServiceClient(conn), func() { conn.Close() }, nil
}

// actor names the operator to the collector: $HWHEAL_ACTOR, or user@host.
// The collector records it with acknowledgements and manual resolutions;
// once the fleet API authenticates callers, their identity replaces it.
func (o *options) actor() string {
	if a := os.Getenv("HWHEAL_ACTOR"); a != "" {
		return a
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		name += "@" + h
	}
	return name
}

func (o *options) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, o.timeout)
}
