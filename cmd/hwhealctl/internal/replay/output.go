package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Record is one fault as `rules replay -o json` prints it, one object a
// line: where it was read, what was raised on which part, when, and the
// evidence (the matching kernel line, or the samples used).
type Record struct {
	File         string            `json:"file"`
	Line         int               `json:"line"` // 1-based line (kernel log, CSV row); 0 for a JSON document
	Class        string            `json:"class"`
	Severity     string            `json:"severity"`
	Rule         string            `json:"rule"`
	Part         Part              `json:"part"`
	Summary      string            `json:"summary"`
	Time         string            `json:"time,omitempty"` // RFC 3339, UTC
	MonotonicSec *float64          `json:"monotonic_sec,omitempty"`
	Format       Format            `json:"format"`
	Captures     map[string]string `json:"captures,omitempty"`
	Message      string            `json:"message,omitempty"` // the kernel log line's message
	Samples      []Sample          `json:"samples,omitempty"` // the values a counter rule used
	Mode         string            `json:"mode,omitempty"`    // "shadow" for a rule not yet trusted
}

// Part is the part a fault names.
type Part struct {
	Kind       string `json:"kind"`
	Name       string `json:"name,omitempty"`
	Serial     string `json:"serial,omitempty"`
	Model      string `json:"model,omitempty"`
	PCIAddress string `json:"pci_address,omitempty"`
}

// Sample is one value of a fault's evidence.
type Sample struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// enumName turns SEVERITY_CRITICAL into "critical".
func enumName(full, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(full, prefix))
}

// FaultRecord is the Record of fault f read at file:line in format.
func FaultRecord(file string, line int, format Format, f *hwhealv1.Fault) Record {
	p := f.GetPart()
	r := Record{
		File:     file,
		Line:     line,
		Class:    f.GetFaultClass(),
		Severity: enumName(f.GetSeverity().String(), "SEVERITY_"),
		Rule:     f.GetRule(),
		Part: Part{
			Kind: enumName(p.GetKind().String(), "PART_KIND_"), Name: p.GetName(), Serial: p.GetSerial(),
			Model: p.GetModel(), PCIAddress: p.GetPciAddress(),
		},
		Summary:  f.GetSummary(),
		Format:   format,
		Captures: f.GetEvidence().GetCaptures(),
	}
	if f.GetTime() != nil {
		r.Time = f.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	if kl := f.GetEvidence().GetKernelLog(); kl != nil {
		r.Message = kl.GetMessage()
	}
	for _, s := range f.GetEvidence().GetSamples() {
		r.Samples = append(r.Samples, Sample{s.GetName(), s.GetValue()})
	}
	if f.GetMode() == hwhealv1.RuleMode_RULE_MODE_SHADOW {
		r.Mode = "shadow"
	}
	return r
}

// KernelRecord is the Record of fault f raised by kernel log record rec
// (read at file:line as format): the record's message and times, which a
// fault from a saved log may lack (a dmesg line has only a monotonic
// time).
func KernelRecord(file string, line int, format kernlog.Format, rec kernlog.Record, f *hwhealv1.Fault) Record {
	r := FaultRecord(file, line, Format(format.String()), f)
	r.Message = rec.Message
	if !rec.Time.IsZero() {
		r.Time = rec.Time.UTC().Format(time.RFC3339Nano)
	}
	if rec.HasMonotonic {
		s := rec.Monotonic.Seconds()
		r.MonotonicSec = &s
	}
	return r
}

// ObservationRecord is the Record of fault f raised by observation o (read
// at file:line as format): the fault's time, else the observation's; the
// fault's part, else the observation's.
func ObservationRecord(file string, line int, format Format, o *hwhealv1.Observation, f *hwhealv1.Fault) Record {
	r := FaultRecord(file, line, format, f)
	if r.Time == "" && o.GetTime() != nil {
		r.Time = o.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	if f.GetPart() == nil {
		p := o.GetPart()
		r.Part = Part{
			Kind: enumName(p.GetKind().String(), "PART_KIND_"), Name: p.GetName(), Serial: p.GetSerial(),
			Model: p.GetModel(), PCIAddress: p.GetPciAddress(),
		}
	}
	return r
}

// WriteJSONLine writes r as one line of JSON.
func WriteJSONLine(w io.Writer, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// pct prints a ratio as a percentage, "-" when undefined.
func pct(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100**v)
}

func frac(n int, v *float64) string {
	if v == nil {
		return fmt.Sprintf("%d", n)
	}
	return fmt.Sprintf("%d (%s)", n, pct(v))
}

func leadString(s *Spread) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%g (%g-%g; %g-%g)", s.Median, s.P25, s.P75, s.Min, s.Max)
}

// NamedDriveReport is one evaluator's DriveReport.
type NamedDriveReport struct {
	Name   string      `json:"name"`
	Report DriveReport `json:"report"`
}

// WriteDriveTable writes a Markdown table of Backblaze evaluations, one row
// per evaluator (and, with perClass, one more per class it raised): failed
// drives flagged before their failure day, lead days (median, p25-p75,
// min-max), healthy drives flagged, and precision.
func WriteDriveTable(w io.Writer, reports []NamedDriveReport, perClass bool) error {
	var b strings.Builder
	if len(reports) > 0 {
		r := reports[0].Report
		fmt.Fprintf(&b, "%d drives (%d failed, %d of them with days before the failure; %d healthy), %d rows, %d duplicate rows skipped\n\n",
			r.Drives, r.Failed, r.FailedWithHistory, r.Healthy, r.Rows, r.Duplicates)
	}
	b.WriteString("| rules | class | failed drives flagged before failure day | flagged only on failure day | lead days: median (p25-p75; min-max) | healthy drives flagged | precision |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	row := func(name string, f DriveFigures, failed int) {
		class := f.Class
		if class == "" {
			class = "any"
		}
		fmt.Fprintf(&b, "| %s | %s | %d/%d (%s) | %d | %s | %s | %s |\n", name, class,
			f.FailedFlagged, failed, pct(f.Recall), f.OnFailureDay, leadString(f.LeadDays),
			frac(f.HealthyFlagged, f.HealthyFlaggedRate), pct(f.Precision))
	}
	for _, nr := range reports {
		row(nr.Name, nr.Report.Flagged, nr.Report.Failed)
		if perClass {
			for _, c := range nr.Report.Classes {
				row(nr.Name, c, nr.Report.Failed)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CompareBackblaze evaluates each evaluator on the same Backblaze files and
// writes WriteDriveTable's table: the function behind the README's table
// (the baseline is NamedEvaluator{"baseline", func() Evaluator { return
// BaselineRule{} }}).
func CompareBackblaze(w io.Writer, files []string, classes []string, perClass bool, evs ...NamedEvaluator) ([]NamedDriveReport, error) {
	var out []NamedDriveReport
	for _, ev := range evs {
		r, err := EvalBackblaze(files, ev.New, classes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ev.Name, err)
		}
		out = append(out, NamedDriveReport{ev.Name, r})
	}
	return out, WriteDriveTable(w, out, perClass)
}

// WriteKernelTable writes Markdown tables of a kernel-log evaluation:
// for the lkml line records, per category (fault lines caught, benign
// lines flagged, against the corpus labels and the adjusted reading), per
// class family and per class; then one table per other source (lkml
// blocks, gpud, npd, bgl) with its misses and flags listed (up to
// maxListed each; -o json has them all); then the aims.
func WriteKernelTable(w io.Writer, r KernelReport) error {
	var b strings.Builder
	if len(r.Files) > 0 {
		writeLineRecordTables(&b, r)
	}
	for _, g := range r.Groups {
		writeGroupTable(&b, g)
	}
	if len(r.Aims) > 0 {
		writeAimTables(&b, r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeLineRecordTables(b *strings.Builder, r KernelReport) {
	fmt.Fprintf(b, "lkml line records: %d lines, %d excluded by label disputes\n\n", r.Lines, r.Excluded)
	b.WriteString("| category | fault lines caught | benign lines flagged | precision | raw labels: caught | raw labels: flagged |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	rawBy := map[string]KernelFigures{}
	for _, k := range r.RawCategories {
		rawBy[k.Name] = k
	}
	cat := func(a, raw KernelFigures) {
		fmt.Fprintf(b, "| %s | %d/%d (%s) | %d/%d (%s) | %s | %d/%d (%s) | %d/%d (%s) |\n", a.Name,
			a.TP, a.Faults, pct(a.Recall), a.FP, a.Benign, pct(a.FlaggedRate), pct(a.Precision),
			raw.TP, raw.Faults, pct(raw.Recall), raw.FP, raw.Benign, pct(raw.FlaggedRate))
	}
	for _, k := range r.Categories {
		cat(k, rawBy[k.Name])
	}
	cat(r.Total, r.RawTotal)
	b.WriteString("\n| class family | TP | FP | FN | precision | recall |\n|---|---|---|---|---|---|\n")
	for _, k := range r.Families {
		fmt.Fprintf(b, "| %s | %d | %d | %d | %s | %s |\n", k.Name, k.TP, k.FP, k.FN, pct(k.Precision), pct(k.Recall))
	}
	b.WriteString("\n| class | fault lines | benign lines | precision |\n|---|---|---|---|\n")
	for _, k := range r.Classes {
		fmt.Fprintf(b, "| %s | %d | %d | %s |\n", k.Name, k.TP, k.FP, pct(k.Precision))
	}
}

// maxListed bounds each list of misses and flags in the Markdown.
const maxListed = 30

func writeGroupTable(b *strings.Builder, g KernelGroup) {
	u := g.Unit
	fmt.Fprintf(b, "\n%s: %d %ss from %d files; labels: %s\n\n", g.Name, g.Units, u, len(g.Files), g.Labels)
	if u == "block" {
		b.WriteString("| category | fault blocks caught | with a plausible class | benign blocks flagged | unlabeled blocks raising a fault |\n|---|---|---|---|---|\n")
	} else {
		fmt.Fprintf(b, "| category | fault %[1]ss caught | with a plausible class | benign %[1]ss flagged | precision |\n|---|---|---|---|---|\n", u)
	}
	row := func(k KernelFigures) {
		last := pct(k.Precision)
		if u == "block" {
			last = fmt.Sprintf("%d/%d", k.UnlabeledRaised, k.Unlabeled)
		}
		fmt.Fprintf(b, "| %s | %d/%d (%s) | %s | %d/%d (%s) | %s |\n", k.Name, k.TP, k.Faults, pct(k.Recall),
			classCell(k), k.FP, k.Benign, pct(k.FlaggedRate), last)
	}
	for _, k := range g.Categories {
		row(k)
	}
	row(g.Total)
	list := func(what string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(b, "\n%s (%d):\n\n", what, len(items))
		for _, it := range items[:min(len(items), maxListed)] {
			fmt.Fprintf(b, "- `%s`\n", strings.ReplaceAll(it, "`", "'"))
		}
		if len(items) > maxListed {
			fmt.Fprintf(b, "- ... and %d more (-o json lists them all)\n", len(items)-maxListed)
		}
	}
	list("missed fault "+u+"s", g.Missed)
	list("flagged benign "+u+"s", g.Flagged)
	list("unlabeled blocks raising a fault", g.Unlabeled)
}

// classCell is the plausible-class figure of a row, "-" for categories
// that expect no class family.
func classCell(k KernelFigures) string {
	if k.ClassRecall == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d (%s)", k.ClassTP, k.TP+k.FN, pct(k.ClassRecall))
}

func writeAimTables(b *strings.Builder, r KernelReport) {
	fmt.Fprintf(b, "\naims: at least %.0f%% of fault lines caught with a plausible class per area; under %.0f%% of benign lines flagged\n\n", 100*AimRecall, 100*AimFlagged)
	b.WriteString("| area | categories | fault lines caught | with a plausible class | fault blocks caught | with a plausible class | aim met |\n|---|---|---|---|---|---|---|\n")
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	for _, a := range r.Aims {
		fmt.Fprintf(b, "| %s | %s | %d/%d (%s) | %d/%d (%s) | %d/%d (%s) | %d/%d (%s) | %s |\n", a.Name, strings.Join(a.Categories, ", "),
			a.Caught, a.Faults, pct(a.Recall), a.ClassCaught, a.Faults, pct(a.ClassRecall),
			a.BlocksCaught, a.Blocks, pct(a.BlockRecall), a.BlocksClassCaught, a.Blocks, pct(a.BlockClassRecall), yes(a.Met))
	}
	b.WriteString("\n| source | benign units flagged | aim met |\n|---|---|---|\n")
	for _, k := range r.BenignFlagged {
		fmt.Fprintf(b, "| %s | %d/%d (%s) | %s |\n", k.Name, k.FP, k.Benign, pct(k.FlaggedRate), yes(k.FlaggedRate != nil && *k.FlaggedRate < AimFlagged))
	}
}
