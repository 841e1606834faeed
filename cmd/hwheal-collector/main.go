// Command hwheal-collector receives what the fleet's agents see, keeps the
// fault table and node health, and serves the fleet API.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hwheal/hwheal/collector"
	"github.com/hwheal/hwheal/collector/classify"
	"github.com/hwheal/hwheal/pkg/logging"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "hwheal-collector:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var cfg collector.Config
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:           "hwheal-collector",
		Short:         "Collect hardware faults from hwheal agents and serve the fleet API",
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
			c, err := collector.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := c.Run(cmd.Context()); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", collector.DefaultListen, "gRPC address for agents and hwhealctl")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "HTTP address for Prometheus /metrics (empty: off)")
	f.StringVar(&cfg.StateDir, "state-dir", "/var/lib/hwheal-collector", "directory of the embedded store")
	f.StringVar(&cfg.Store, "store", "", "store: empty for SQLite in --state-dir, or sqlite:PATH")
	f.StringVar(&cfg.RulesDir, "rules-dir", classify.DefaultRulesDir, "directory of rule files (*.yaml) that add to or override the shipped rules")
	f.StringVar(&cfg.ConfigFile, "config", "", "YAML configuration file (webhooks)")
	f.StringVar(&cfg.PolicyFile, "policy", "", "remediation policy (YAML); empty: the shipped default, dry-run with no rules (check a file with hwhealctl policy check)")
	f.DurationVar(&cfg.PlannerInterval, "planner-interval", 0, "how often the remediation planner runs besides when events wake it (default 5s)")
	f.StringVar(&cfg.TokensFile, "tokens", "", "fleet API identities, a token,user,role line each (roles: viewer, operator, approver, admin); empty: make and use STATE_DIR/admin.token")
	f.DurationVar(&cfg.SweepInterval, "sweep-interval", 0, "how often faults are checked against their clear time (default 30s)")
	f.DurationVar(&cfg.PeerInterval, "peer-interval", 0, "how often the outlier rules run over the fleet (default 1m)")
	f.BoolVar(&cfg.Insecure, "insecure", false, "serve without TLS (required until mutual TLS is available; trusted networks only)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
