// Command hwheal-agent watches this node's hardware through the kernel and
// streams what it sees to the hwheal collector.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hwheal/hwheal/agent"
	"github.com/hwheal/hwheal/pkg/logging"
)

var version = "dev"

func main() {
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
	f.DurationVar(&cfg.DiskstatsInterval, "diskstats-interval", 0, "how often to read /proc/diskstats (default 30s)")
	f.DurationVar(&cfg.NetdevInterval, "netdev-interval", 0, "how often to read NIC counters (default 30s)")
	f.StringVar(&cfg.DiskExclude, "disk-exclude", "", "regular expression of block devices to leave out (default: partitions, loop, ram)")
	f.Int64Var(&cfg.SpoolMaxBytes, "spool-max-bytes", 0, "bound of the on-disk spool (default 64 MiB)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
