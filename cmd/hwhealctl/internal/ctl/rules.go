package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func newRulesCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with the fault rules offline",
	}
	cmd.AddCommand(newRulesReplayCmd(o), newRulesListCmd(o))
	return cmd
}

func newRulesListCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the shipped rules",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rs, err := detect.Builtin()
			if err != nil {
				return err
			}
			if o.output == "json" {
				type row struct {
					Name     string `json:"name"`
					Class    string `json:"class"`
					Severity string `json:"severity"`
					Part     string `json:"part"`
				}
				var rows []row
				for _, r := range rs.Rules() {
					rows = append(rows, row{r.Name, r.Class, severityName(r.Severity), partKindName(r.Part)})
				}
				return writeIndented(o.stdout, rows)
			}
			tw := newTable(o.stdout, "NAME", "CLASS", "SEVERITY", "PART")
			for _, r := range rs.Rules() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Class, severityName(r.Severity), partKindName(r.Part))
			}
			return tw.Flush()
		},
	}
}

// replayFault is one line of `rules replay` output.
type replayFault struct {
	File         string            `json:"file"`
	Line         int               `json:"line"`
	Class        string            `json:"class"`
	Severity     string            `json:"severity"`
	Rule         string            `json:"rule"`
	Part         replayPart        `json:"part"`
	Summary      string            `json:"summary"`
	Time         string            `json:"time,omitempty"`
	MonotonicSec *float64          `json:"monotonic_sec,omitempty"`
	Format       string            `json:"format"`
	Captures     map[string]string `json:"captures,omitempty"`
	Message      string            `json:"message"`
}

type replayPart struct {
	Kind       string `json:"kind"`
	Name       string `json:"name,omitempty"`
	PCIAddress string `json:"pci_address,omitempty"`
}

func newRulesReplayCmd(o *options) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "replay FILE...",
		Short: "Run the shipped rules over saved kernel logs and print the faults they raise",
		Long: `Reads saved kernel logs - raw /dev/kmsg records, dmesg, dmesg -T,
dmesg --time-format iso, syslog or journal text ("-" for standard input) -
and prints each fault the shipped rules raise, one JSON object a line (or a
table with -o table). Lines that are not kernel records are skipped and
counted; the counts go to standard error.`,
		Example: `  dmesg | hwhealctl rules replay -
  hwhealctl rules replay --format syslog /var/log/kern.log`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := kernlog.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			rs, err := detect.Builtin()
			if err != nil {
				return err
			}
			asJSON := o.output == "json" || !cmd.Flags().Changed("output")
			var out []replayFault
			emit := func(rf replayFault) error {
				if asJSON {
					b, err := json.Marshal(rf)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(o.stdout, "%s\n", b)
					return err
				}
				out = append(out, rf)
				return nil
			}
			var records, faults int
			skipped := map[string]uint64{}
			for _, name := range args {
				n, nf, sk, err := replayFile(name, f, o.replayClock, rs, emit)
				records += n
				faults += nf
				for k, v := range sk {
					skipped[k] += v
				}
				if err != nil {
					return err
				}
			}
			if !asJSON {
				tw := newTable(o.stdout, "FILE:LINE", "CLASS", "SEVERITY", "PART", "SUMMARY")
				for _, rf := range out {
					part := rf.Part.Kind
					if rf.Part.Name != "" {
						part += ":" + rf.Part.Name
					}
					fmt.Fprintf(tw, "%s:%d\t%s\t%s\t%s\t%s\n", rf.File, rf.Line, rf.Class, rf.Severity, part, truncate(rf.Summary, 80))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			fmt.Fprintf(o.stderr, "replay: %d records, %d faults%s\n", records, faults, skippedString(skipped))
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "auto", "input format: auto (per line), kmsg, dmesg, dmesg-ctime, dmesg-iso, syslog, plain")
	return cmd
}

func replayFile(name string, f kernlog.Format, p kernlog.Parser, rs *detect.RuleSet, emit func(replayFault) error) (records, faults int, skipped map[string]uint64, err error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		fh, err := os.Open(name)
		if err != nil {
			return 0, 0, nil, err
		}
		defer fh.Close()
		r = fh
	}
	sc := kernlog.NewScanner(r, f)
	sc.SetParser(p)
	for sc.Scan() {
		records++
		rec := sc.Record()
		for _, flt := range rs.Match(rec) {
			faults++
			if err := emit(toReplayFault(name, sc, rec, flt)); err != nil {
				return records, faults, sc.Skipped(), err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return records, faults, sc.Skipped(), fmt.Errorf("read %s: %w", name, err)
	}
	return records, faults, sc.Skipped(), nil
}

func toReplayFault(file string, sc *kernlog.Scanner, rec kernlog.Record, f *hwhealv1.Fault) replayFault {
	rf := replayFault{
		File:     file,
		Line:     sc.Line(),
		Class:    f.GetFaultClass(),
		Severity: severityName(f.GetSeverity()),
		Rule:     f.GetRule(),
		Part: replayPart{
			Kind:       partKindName(f.GetPart().GetKind()),
			Name:       f.GetPart().GetName(),
			PCIAddress: f.GetPart().GetPciAddress(),
		},
		Summary:  f.GetSummary(),
		Format:   sc.Format().String(),
		Captures: f.GetEvidence().GetCaptures(),
		Message:  rec.Message,
	}
	if !rec.Time.IsZero() {
		rf.Time = rec.Time.UTC().Format(time.RFC3339Nano)
	}
	if rec.HasMonotonic {
		s := rec.Monotonic.Seconds()
		rf.MonotonicSec = &s
	}
	return rf
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
