// Command hwheal-agent watches this node's hardware through the kernel and
// streams what it sees to the hwheal collector.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hwheal/hwheal/agent"
	"github.com/hwheal/hwheal/agent/actuate"
	"github.com/hwheal/hwheal/pkg/logging"
	"github.com/hwheal/hwheal/remediation/action"
)

var version = "dev"

// memoryLimit is the agent's soft memory limit unless GOMEMLIMIT says
// otherwise: the Go runtime collects sooner as the heap nears it (the
// agent's live heap is a few MB), which keeps the brief peaks of start-up,
// such as parsing the kernel's BTF for eBPF, from setting the process's
// peak RSS. It is soft: the agent never fails for crossing it.
const memoryLimit = 16 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "hwheal-agent:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var cfg agent.Config
	var logLevel, logFormat string
	var rf remediationFlags
	cmd := &cobra.Command{
		Use:           "hwheal-agent",
		Short:         "Watch this node's hardware and report to the hwheal collector",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(os.Stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Version = version
			rf.allowSet = cmd.Flags().Changed("allow")
			if cfg.Remediation, err = rf.remediation(); err != nil {
				return err
			}
			a, err := agent.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := a.Run(cmd.Context()); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Collector, "collector", agent.DefaultCollector, "collector gRPC address")
	f.StringVar(&cfg.Node, "node", "", "node name in the fleet (default: the host name)")
	f.StringToStringVar(&cfg.Labels, "label", nil, "labels that place the node, k=v (repeatable): rack, zone, model, role, ...")
	f.StringVar(&cfg.StateDir, "state-dir", "/var/lib/hwheal-agent", "directory of the spool and cursors")
	f.StringVar(&cfg.Root, "root", "/", "prefix of every /proc, /sys and /dev path (fixture trees)")
	f.BoolVar(&cfg.Insecure, "insecure", false, "connect without TLS (required until mutual TLS is available; trusted networks only)")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "HTTP address for Prometheus /metrics (empty: off)")
	sourceFlags(f, &cfg)
	f.StringVar(&cfg.DiskExclude, "disk-exclude", "", "regular expression of block devices to leave out (default: partitions, loop, ram)")
	f.Int64Var(&cfg.SpoolMaxBytes, "spool-max-bytes", 0, "bound of the on-disk spool (default 64 MiB)")
	f.StringVar(&rf.file, "config", "", "YAML configuration file (remediation: allowed actions, runbooks, reboot guard); see hwheal-agent.example.yaml")
	f.StringSliceVar(&rf.allow, "allow", nil, "actions this agent runs, replacing the config file's allow-list (comma-separated): "+
		strings.Join(action.TypeNames(), ", ")+"; empty: none")
	f.BoolVar(&rf.dryRun, "dry-run", false, "report what the allowed actions would run, run nothing")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	cmd.AddCommand(newInspect())
	return cmd
}

// remediationFlags are the flags that say which actions the agent runs.
type remediationFlags struct {
	file     string
	allow    []string
	allowSet bool // --allow was given, maybe empty
	dryRun   bool
}

// remediation merges the configuration file with --allow and --dry-run.
// Without a file and without --allow the agent runs no action (nil).
func (rf remediationFlags) remediation() (*actuate.Remediation, error) {
	var r *actuate.Remediation
	if rf.file != "" {
		fc, err := agent.LoadConfigFile(rf.file)
		if err != nil {
			return nil, err
		}
		r = fc.Remediation
	}
	if rf.allowSet {
		types, err := actuate.ParseAllow(rf.allow)
		if err != nil {
			return nil, fmt.Errorf("allow: %w", err)
		}
		if r == nil {
			r = &actuate.Remediation{File: rf.file}
		}
		r.SetAllow(types)
	}
	if rf.dryRun && r != nil {
		r.DryRun = true
	}
	return r, nil
}

// sourceFlags are the flags that choose and pace the sources, shared by
// the agent and inspect.
func sourceFlags(f *pflag.FlagSet, cfg *agent.Config) {
	names := strings.Join(agent.SourceNames(), ", ")
	f.StringSliceVar(&cfg.Disable, "disable", nil, "sources not to run (repeatable or comma-separated): "+names)
	f.Var(intervalsFlag{&cfg.Intervals}, "interval", "a periodic source's interval, source=duration (repeatable), e.g. smart=1h")
}

// intervalsFlag parses repeated source=duration pairs.
type intervalsFlag struct{ m *map[string]time.Duration }

func (f intervalsFlag) String() string {
	if f.m == nil || len(*f.m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(*f.m))
	for k, v := range *f.m {
		parts = append(parts, k+"="+v.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (f intervalsFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want source=duration", kv)
		}
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if *f.m == nil {
			*f.m = map[string]time.Duration{}
		}
		(*f.m)[name] = d
	}
	return nil
}

func (f intervalsFlag) Type() string { return "source=duration" }

func newInspect() *cobra.Command {
	var cfg agent.Config
	var output, logLevel string
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Print one snapshot of everything the agent reads on this host, and which sources are unavailable and why",
		Long: `inspect probes every source once (kernel log ring, counters, temperatures,
SMART, eBPF, links) and takes the inventory, without connecting to a
collector or writing any state. Point --root at a fixture tree to read it
instead of this host. Run it as root: most sources need it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("output: %q is not table or json", output)
			}
			log, err := logging.New(os.Stderr, logLevel, "text")
			if err != nil {
				return err
			}
			cfg.Logger = log
			in, err := agent.Inspect(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if output == "json" {
				return in.WriteJSON(cmd.OutOrStdout())
			}
			return in.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Root, "root", "/", "prefix of every /proc, /sys and /dev path (fixture trees)")
	f.StringVar(&cfg.Node, "node", "", "node name to print (default: the host name)")
	f.StringVar(&cfg.DiskExclude, "disk-exclude", "", "regular expression of block devices to leave out")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error (to stderr)")
	sourceFlags(f, &cfg)
	return cmd
}
