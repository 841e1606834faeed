package ctl

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hwheal/hwheal/remediation/policy"
)

func newPolicyCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with remediation policy files offline",
	}
	cmd.AddCommand(newPolicyCheckCmd(o))
	return cmd
}

func newPolicyCheckCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate policy files offline, as the collector would load them",
		Long: `Loads each policy file as the collector does at start and reports every
problem with its file and line, or how many rules it holds and whether it is
in dry-run. Exits non-zero when any file is invalid, so it can gate a change
to the policy.`,
		Example: `  hwhealctl policy check /etc/hwheal/policy.yaml
  hwhealctl policy check staging.yaml production.yaml -o json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			type result struct {
				File   string `json:"file"`
				OK     bool   `json:"ok"`
				Rules  int    `json:"rules,omitempty"`
				DryRun bool   `json:"dry_run,omitempty"`
				Error  string `json:"error,omitempty"`
			}
			var results []result
			bad := 0
			for _, path := range args {
				p, err := policy.Load(path)
				if err != nil {
					bad++
					msg := err.Error()
					// Load's errors are "file:line: msg"; one that does
					// not name the file (it could not be opened) is
					// given it.
					if !strings.HasPrefix(msg, path) {
						msg = path + ": " + msg
					}
					results = append(results, result{File: path, Error: msg})
					continue
				}
				results = append(results, result{File: path, OK: true, Rules: len(p.Rules), DryRun: p.DryRun})
			}
			if o.structured() {
				if err := o.write(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					if r.OK {
						fmt.Fprintf(o.stdout, "%s: ok (%d rules, dry-run: %s)\n", r.File, r.Rules, yesNo(r.DryRun))
					} else {
						fmt.Fprintln(o.stdout, r.Error)
					}
				}
			}
			if bad > 0 {
				return fmt.Errorf("policy check: %d of %d files invalid", bad, len(args))
			}
			return nil
		},
	}
}
