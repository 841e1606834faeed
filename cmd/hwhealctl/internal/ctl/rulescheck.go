package ctl

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/hwheal/hwheal/agent/detect"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func newRulesCheckCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "check [DIR|FILE...]",
		Short: "Validate rule files offline, as the collector would load them",
		Long: `Loads the shipped rules with the given rule files applied over them,
exactly as the collector does at start with --rules-dir (a directory is read
for *.yaml in name order), and reports every problem with its file and line.
With no argument it checks the shipped rules alone. Exits non-zero when any
file is invalid, so it can gate a change to /etc/hwheal/rules.d.`,
		Example: `  hwhealctl rules check /etc/hwheal/rules.d
  hwhealctl rules check ./10-shadow-new-rule.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			files := detect.BuiltinFiles()
			for _, a := range args {
				st, err := os.Stat(a)
				if err != nil {
					return err
				}
				if st.IsDir() {
					more, err := detect.ReadDir(a)
					if err != nil {
						return err
					}
					if len(more) == 0 {
						fmt.Fprintf(o.stderr, "%s: no *.yaml rule files\n", a)
					}
					files = append(files, more...)
					continue
				}
				data, err := os.ReadFile(a)
				if err != nil {
					return err
				}
				files = append(files, detect.File{Name: a, Data: data})
			}
			rs, err := detect.LoadFiles(files...)
			if err != nil {
				// One line per problem: file:line: rule: field: message.
				for _, e := range unjoin(err) {
					fmt.Fprintln(o.stdout, e)
				}
				return errors.New("rules check: invalid rule files")
			}
			byKind := map[string]int{}
			var shadow, disabled int
			for _, r := range rs.Rules() {
				byKind[string(r.Kind)]++
				if !r.Enabled {
					disabled++
				} else if r.Mode == hwhealv1.RuleMode_RULE_MODE_SHADOW {
					shadow++
				}
			}
			kinds := make([]string, 0, len(byKind))
			for k := range byKind {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			fmt.Fprintf(o.stdout, "ok: %d files, %d rules (", len(files), len(rs.Rules()))
			for i, k := range kinds {
				if i > 0 {
					fmt.Fprint(o.stdout, ", ")
				}
				fmt.Fprintf(o.stdout, "%d %s", byKind[k], k)
			}
			fmt.Fprintf(o.stdout, "); %d in shadow mode, %d disabled\n", shadow, disabled)
			return nil
		},
	}
}

// unjoin flattens errors.Join trees into their leaves.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}
