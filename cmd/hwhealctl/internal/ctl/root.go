// Package ctl is hwhealctl: the operator's command line over FleetService
// (nodes, faults, events, remediation actions, status and the audit log)
// and the offline tools (rules replay, policy check). Each verb lives in
// its own file; they share one dial helper, which sends the caller's
// token, and one output layer so that -o means the same everywhere.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

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
	// token and tokenFile are the flags; the environment fills in for
	// them when dialing (never as a flag default, which help would print).
	token     string
	tokenFile string
	stdout    io.Writer
	stderr    io.Writer
	// now and location are the clock and zone of times people type and
	// read (approve --at 14:00, ages); nil means the real clock and
	// time.Local. Tests pin them.
	now      func() time.Time
	location *time.Location
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
			case outTable, outJSON, outYAML:
			default:
				return fmt.Errorf("-o %q: use table, json or yaml", o.output)
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
	pf.StringVarP(&o.output, "output", "o", outTable, "output format: table, json or yaml")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of each request (not of events --follow)")
	pf.StringVar(&o.token, "token", "", "fleet API token (env HWHEAL_TOKEN; prefer --token-file: a flag shows in ps)")
	pf.StringVar(&o.tokenFile, "token-file", "", "file holding the fleet API token, e.g. the collector's STATE_DIR/admin.token (env HWHEAL_TOKEN_FILE)")
	root.AddCommand(
		newNodesCmd(o), newNodeCmd(o), newFaultsCmd(o), newFaultCmd(o), newEventsCmd(o), newRulesCmd(o),
		newRemediateCmd(o), newActionsCmd(o), newActionCmd(o), newApproveCmd(o), newDenyCmd(o), newCancelCmd(o),
		newPauseCmd(o), newResumeCmd(o), newStatusCmd(o), newAuditCmd(o), newPolicyCmd(o),
		&cobra.Command{
			Use:   "version",
			Short: "Print hwhealctl's version",
			Args:  cobra.NoArgs,
			Run:   func(*cobra.Command, []string) { fmt.Fprintln(o.stdout, version) },
		},
	)
	return root
}

// dial connects to the collector's fleet API. Every call, the event
// stream included, carries the caller's token.
func (o *options) dial() (hwhealv1.FleetServiceClient, func(), error) {
	creds, err := grpcutil.TransportCredentials(o.insecure)
	if err != nil {
		return nil, nil, err
	}
	token, err := o.bearerToken()
	if err != nil {
		return nil, nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(o.collector, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("collector %s: %w", o.collector, err)
	}
	return hwhealv1.NewFleetServiceClient(conn), func() { conn.Close() }, nil
}

// bearerToken is the caller's token: --token, --token-file,
// $HWHEAL_TOKEN, $HWHEAL_TOKEN_FILE, the first that is set; "" for none
// (the collector then says how to pass one).
func (o *options) bearerToken() (string, error) {
	var token, from string
	switch {
	case o.token != "" && o.tokenFile != "":
		return "", errors.New("--token and --token-file: pass one of them")
	case o.token != "":
		token, from = o.token, "--token"
	case o.tokenFile != "":
		return o.readTokenFile(o.tokenFile)
	case os.Getenv("HWHEAL_TOKEN") != "":
		token, from = os.Getenv("HWHEAL_TOKEN"), "HWHEAL_TOKEN"
	case os.Getenv("HWHEAL_TOKEN_FILE") != "":
		return o.readTokenFile(os.Getenv("HWHEAL_TOKEN_FILE"))
	default:
		return "", nil
	}
	token = strings.TrimSpace(token)
	if !headerSafe(token) {
		return "", fmt.Errorf("%s: a token is printable ASCII without spaces", from)
	}
	return token, nil
}

// readTokenFile reads a file that holds just a token. It is never
// echoed: errors say what is wrong with it, not what it holds.
func (o *options) readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(o.stderr, "hwhealctl: warning: token file %s is open to group or others (chmod 600 %s)\n", path, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	token := strings.TrimSpace(string(b))
	switch {
	case token == "":
		return "", fmt.Errorf("token file %s is empty", path)
	case !headerSafe(token):
		return "", fmt.Errorf("token file %s: want just the token (printable ASCII without spaces)", path)
	}
	return token, nil
}

func headerSafe(token string) bool {
	return token != "" && strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) < 0
}

// bearer sends "authorization: Bearer <token>" with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false until mutual TLS: today every
// connection is --insecure, on trusted networks.
func (bearer) RequireTransportSecurity() bool { return false }

// clock is the time now.
func (o *options) clock() time.Time {
	if o.now != nil {
		return o.now()
	}
	return time.Now()
}

// zone is where people's times are read and shown.
func (o *options) zone() *time.Location {
	if o.location != nil {
		return o.location
	}
	return time.Local
}

func (o *options) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, o.timeout)
}
