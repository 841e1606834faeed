package ctl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/cmd/hwhealctl/internal/replay"
)

func newRulesCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with the fault rules offline",
	}
	cmd.AddCommand(newRulesReplayCmd(o), newRulesListCmd(o), newRulesCheckCmd(o), newRulesEvalCmd(o))
	return cmd
}

func newRulesListCmd(o *options) *cobra.Command {
	var rulesDir string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the rules: the shipped ones, with --rules-dir's files over them",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rs, err := loadRules(rulesDir)
			if err != nil {
				return err
			}
			if o.structured() {
				type row struct {
					Name       string `json:"name"`
					Kind       string `json:"kind"`
					Class      string `json:"class,omitempty"`
					Severity   string `json:"severity"`
					Mode       string `json:"mode"`
					ClearAfter string `json:"clear_after"`
					Enabled    bool   `json:"enabled"`
					Part       string `json:"part"`
					Source     string `json:"source,omitempty"`
					Sample     string `json:"sample,omitempty"`
					File       string `json:"file"`
					Line       int    `json:"line"`
				}
				var rows []row
				for _, r := range rs.Rules() {
					rows = append(rows, row{r.Name, string(r.Kind), r.Class, severityName(r.Severity), modeName(r.Mode),
						clearString(r.ClearAfter), r.Enabled, partKindName(r.Part), r.Source, r.Sample, r.File, r.Line})
				}
				return o.write(rows)
			}
			tw := newTable(o.stdout, "NAME", "KIND", "CLASS", "SEVERITY", "MODE", "CLEARS", "PART")
			for _, r := range rs.Rules() {
				mode := modeName(r.Mode)
				if !r.Enabled {
					mode = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, orDash(r.Class), severityName(r.Severity), mode,
					clearString(r.ClearAfter), partKindName(r.Part))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&rulesDir, "rules-dir", "", "rule files to apply over the shipped ones, as the collector's --rules-dir")
	return cmd
}

// clearString says when a rule's faults resolve by themselves.
func clearString(d time.Duration) string {
	if d <= 0 {
		return "never"
	}
	return d.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// loadRules is the rule set the offline commands use: the shipped rules,
// with --rules-dir's files over them as the collector would load them.
func loadRules(dir string) (*detect.RuleSet, error) {
	rs, _, err := detect.LoadDir(dir)
	return rs, err
}

func newRulesReplayCmd(o *options) *cobra.Command {
	var format, rulesDir string
	var keepGoing bool
	cmd := &cobra.Command{
		Use:   "replay FILE...",
		Short: "Run the rules over saved kernel logs, smartctl JSON or Backblaze CSV and print the faults they raise",
		Long: `Reads saved inputs and prints each fault the rules raise, one JSON
object a line (or a table with -o table):

  kernel logs   raw /dev/kmsg records, dmesg, dmesg -T, dmesg --time-format
                iso, syslog or journal text ("-" for standard input); the
                format is found per line, lines that are not kernel records
                are skipped and counted
  smartctl-json  the output of smartctl --json (-a/-x); files are replayed in
                the order given, so one drive's files oldest first show its
                counters grow
  backblaze-csv  Backblaze Drive Stats daily rows; each drive's days are
                replayed in date order across every file given

--format auto (the default) tells them apart per file. The rules are the
shipped ones, with --rules-dir's files applied over them as the collector
does. Counts go to standard error.`,
		Example: `  dmesg | hwhealctl rules replay -
  hwhealctl rules replay --format syslog /var/log/kern.log
  hwhealctl rules replay /var/tmp/smart/*.json
  hwhealctl rules replay 2024-01-*.csv -o table`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := replay.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			rs, err := loadRules(rulesDir)
			if err != nil {
				return err
			}
			asJSON := o.output == outJSON || !cmd.Flags().Changed("output")
			var out []replay.Record
			emit := func(r replay.Record) error {
				if asJSON {
					return replay.WriteJSONLine(o.stdout, r)
				}
				if o.output == outYAML {
					return o.writeItem(r)
				}
				out = append(out, r)
				return nil
			}
			st, err := replay.Replay(args, replay.Rules{
				Match:        rs.Match,
				NewEvaluator: func() replay.Evaluator { return detect.NewEvaluator(rs, detect.EvaluatorOptions{}) },
			}, replay.Options{Format: f, Parser: o.replayClock, Stdin: os.Stdin, KeepGoing: keepGoing}, emit)
			if o.output == outTable && cmd.Flags().Changed("output") {
				tw := newTable(o.stdout, "FILE:LINE", "CLASS", "SEVERITY", "PART", "SUMMARY")
				for _, r := range out {
					part := r.Part.Kind
					if r.Part.Name != "" {
						part += ":" + r.Part.Name
					} else if r.Part.Serial != "" {
						part += ":" + r.Part.Serial
					}
					fmt.Fprintf(tw, "%s:%d\t%s\t%s\t%s\t%s\n", r.File, r.Line, r.Class, r.Severity, part, truncate(r.Summary, 80))
				}
				if ferr := tw.Flush(); ferr != nil && err == nil {
					err = ferr
				}
			}
			fmt.Fprintf(o.stderr, "replay: %d records", st.Records)
			if st.Observations > 0 {
				fmt.Fprintf(o.stderr, ", %d observations", st.Observations)
			}
			if st.Drives > 0 {
				fmt.Fprintf(o.stderr, " (%d drives, %d duplicate rows)", st.Drives, st.Duplicates)
			}
			fmt.Fprintf(o.stderr, ", %d faults%s\n", st.Faults, skippedString(st.Skipped))
			for _, e := range st.Errors {
				fmt.Fprintln(o.stderr, "replay: skipped:", e)
			}
			return err
		},
	}
	var names []string
	for _, f := range replay.Formats {
		names = append(names, string(f))
	}
	cmd.Flags().StringVar(&format, "format", "auto", "input format: "+strings.Join(names, ", "))
	cmd.Flags().StringVar(&rulesDir, "rules-dir", "", "rule files to apply over the shipped ones, as the collector's --rules-dir")
	cmd.Flags().BoolVar(&keepGoing, "keep-going", false, "skip smartctl files that cannot be read (counted) instead of stopping")
	return cmd
}

func newRulesEvalCmd(o *options) *cobra.Command {
	var rulesDir, disputes string
	var classes []string
	var perClass bool
	cmd := &cobra.Command{
		Use:   "eval FILE|DIR...",
		Short: "Compare what the rules raise with labels: precision and recall",
		Long: `Evaluates the rules against labeled data and prints Markdown tables (or
JSON with -o json):

  *.csv         Backblaze Drive Stats (the failure column is the label):
                failed drives flagged before their failure day, how many days
                ahead, healthy drives flagged, precision - for the rules and
                for the plain "any of raw 5/187/188/197/198 above zero" rule
                they have to beat
  kernel logs   labeled lines and blocks (the lkml_archives *.jsonl and
                *.blocks.jsonl: category, line, fault_keyword), gpud's dmesg and
                kmsg captures (labeled by NVIDIA's Xid catalog), node-problem-
                detector's samples (labeled by NPD's own rules) and loghub BGL
                (its alert column): per category, fault lines caught and benign
                lines flagged; per class family, precision and recall; the
                issue's aims (>= 95 % caught per hardware area, < 2 % benign)

A directory is walked for the files it knows (Backblaze CSVs by their header). --disputes reads reviewed labels
(a YAML list of line/fault/reason) that replace the corpus's where it is
wrong.`,
		Example: `  hwhealctl rules eval corpora/backblaze/
  hwhealctl rules eval --disputes agent/detect/testdata/label_disputes.yaml corpora/kernel_logs`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := loadRules(rulesDir)
			if err != nil {
				return err
			}
			csvs, logs, err := replay.SplitEvalArgs(args)
			if err != nil {
				return err
			}
			if len(csvs)+len(logs) == 0 {
				return errors.New("no Backblaze CSV or labeled kernel-log inputs among the arguments")
			}
			var result struct {
				Drives []replay.NamedDriveReport `json:"drives,omitempty"`
				Kernel *replay.KernelReport      `json:"kernel_log,omitempty"`
			}
			tables := io.Writer(o.stdout)
			if o.structured() {
				tables = io.Discard
			}
			if len(csvs) > 0 {
				result.Drives, err = replay.CompareBackblaze(tables, csvs, classes, perClass,
					replay.NamedEvaluator{Name: "baseline: raw 5/187/188/197/198 > 0", New: func() replay.Evaluator { return replay.BaselineRule{} }},
					replay.NamedEvaluator{Name: "hwheal rules", New: func() replay.Evaluator { return detect.NewEvaluator(rs, detect.EvaluatorOptions{}) }})
				if err != nil {
					return err
				}
			}
			if len(logs) > 0 {
				var opt replay.KernelOptions
				if disputes != "" {
					if opt.Disputes, err = replay.ReadDisputesFile(disputes); err != nil {
						return err
					}
				}
				kr, err := replay.EvalKernelLog(logs, replay.KernelLineMatcher(rs.Match, o.replayClock), opt)
				if err != nil {
					return err
				}
				result.Kernel = &kr
				if len(csvs) > 0 {
					fmt.Fprintln(tables)
				}
				if err := replay.WriteKernelTable(tables, kr); err != nil {
					return err
				}
			}
			if o.structured() {
				return o.write(result)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&rulesDir, "rules-dir", "", "rule files to apply over the shipped ones, as the collector's --rules-dir")
	cmd.Flags().StringVar(&disputes, "disputes", "", "YAML of reviewed labels that replace the corpus's (kernel logs)")
	cmd.Flags().StringSliceVar(&classes, "class", nil, "only faults of these classes count (a trailing '.' is a prefix, e.g. disk.)")
	cmd.Flags().BoolVar(&perClass, "per-class", false, "a row per fault class as well (Backblaze)")
	return cmd
}

func skippedString(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return ", skipped " + strings.Join(parts, " ")
}
