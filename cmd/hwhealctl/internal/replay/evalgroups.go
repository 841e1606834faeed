package replay

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// The report's description of each group: its name, unit and labels.
var groupInfo = map[KernelFileKind][3]string{
	KindBlocks: {"lkml blocks", "block", "through the lkml line records (after disputes) of the block's lines, looked up by message"},
	KindRaw:    {"gpud", "line", "GPUDCatalog: NVIDIA Xid lines and gpud's own kernel-message matchers; every other line benign"},
	KindNPD:    {"npd", "line", "node-problem-detector's kmsg monitor rules (config/*.json with plugin kmsg), run as NPD runs them"},
	KindBGL:    {"bgl", "line", "loghub BGL alert column (\"-\" is non-alert); BlueGene/L, not Linux"},
}

// tally counts one group per category.
type tally struct {
	g          KernelGroup
	cats       map[string]*KernelFigures
	catClasses map[string][]string
}

func (e *kernelEval) group(kind KernelFileKind) *tally {
	t := e.groups[kind]
	if t == nil {
		info := groupInfo[kind]
		t = &tally{g: KernelGroup{Name: info[0], Unit: info[1], Labels: info[2]}, cats: map[string]*KernelFigures{}, catClasses: e.opt.CategoryClasses}
		e.groups[kind] = t
	}
	return t
}

// plausible says whether faults hold a class of a family category
// expects; known is false when the category expects none.
func (t *tally) plausible(category string, faults []*hwhealv1.Fault) (ok, known bool) {
	want := t.catClasses[category]
	if len(want) == 0 {
		return false, false
	}
	for _, f := range faults {
		if slices.Contains(want, classFamily(f.GetFaultClass())) {
			return true, true
		}
	}
	return false, true
}

// line counts one unit of a line group.
func (t *tally) line(where, category string, fault bool, text string, faults []*hwhealv1.Fault) {
	t.g.Units++
	hit := len(faults) > 0
	k := getFigures(t.cats, category)
	countUnit(k, fault, hit)
	countUnit(&t.g.Total, fault, hit)
	switch {
	case fault:
		ok, known := t.plausible(category, faults)
		if !known {
			k.noClasses, t.g.Total.noClasses = true, true
		}
		if ok {
			k.ClassTP++
			t.g.Total.ClassTP++
		}
		if !hit {
			t.g.Missed = append(t.g.Missed, fmt.Sprintf("%s: %s: %s", where, category, text))
		}
	case hit:
		t.g.Flagged = append(t.g.Flagged, fmt.Sprintf("%s: %s: %s -> %s", where, category, text, classesOf(faults)))
	}
}

func classesOf(faults []*hwhealv1.Fault) string {
	var cs []string
	for _, f := range faults {
		if c := f.GetFaultClass(); !slices.Contains(cs, c) {
			cs = append(cs, c)
		}
	}
	slices.Sort(cs)
	return strings.Join(cs, ",")
}

func (t *tally) finish() KernelGroup {
	t.g.Categories = sortedRows(t.cats, true, -1)
	t.g.Total.Name = "all"
	t.g.Total.finish(true)
	return t.g
}

// blocks evaluates one file of lkml blocks.
func (e *kernelEval) blocks(t *tally, name string) error {
	if err := e.siblingLabels(name); err != nil {
		return err
	}
	return readFile(name, func(r io.Reader) error {
		return ReadBlocks(r, name, func(b LabeledBlock) error {
			t.g.Units++
			lab := e.labels.label(b)
			var raised []*hwhealv1.Fault
			var raisedLines []string
			for _, l := range b.Lines {
				// The quote's indentation is the mail's, not the log's.
				l = strings.TrimLeft(l, " \t")
				if fs := e.match(l); len(fs) > 0 {
					raised = append(raised, fs...)
					raisedLines = append(raisedLines, strings.TrimSpace(l)+" -> "+classesOf(fs))
				}
			}
			hit := len(raised) > 0
			where := fmt.Sprintf("%s:%d %s", name, b.Row, b.URL)
			switch lab.verdict {
			case VerdictFault:
				cats := slices.Sorted(maps.Keys(lab.cats))
				anyPlausible, allKnown := false, true
				for _, c := range cats {
					k := getFigures(t.cats, c)
					countUnit(k, true, hit)
					ok, known := t.plausible(c, raised)
					if !known {
						k.noClasses, allKnown = true, false
					}
					if ok {
						k.ClassTP++
						anyPlausible = true
					}
				}
				countUnit(&t.g.Total, true, hit)
				if !allKnown {
					t.g.Total.noClasses = true
				}
				if anyPlausible {
					t.g.Total.ClassTP++
				}
				if !hit {
					t.g.Missed = append(t.g.Missed, fmt.Sprintf("%s: %s: %s", where, strings.Join(cats, ","), firstLines(b.Lines, 3)))
				}
			case VerdictBenign:
				for _, c := range uniq(b.Categories) {
					countUnit(getFigures(t.cats, c), false, hit)
				}
				countUnit(&t.g.Total, false, hit)
				if hit {
					t.g.Flagged = append(t.g.Flagged, fmt.Sprintf("%s: %s: %s", where, strings.Join(b.Categories, ","), strings.Join(raisedLines, " | ")))
				}
			default:
				for _, c := range uniq(b.Categories) {
					k := getFigures(t.cats, c)
					k.Unlabeled++
					if hit {
						k.UnlabeledRaised++
					}
				}
				t.g.Total.Unlabeled++
				if hit {
					t.g.Total.UnlabeledRaised++
					t.g.Unlabeled = append(t.g.Unlabeled, fmt.Sprintf("%s: %s: %s", where, strings.Join(b.Categories, ","), strings.Join(raisedLines, " | ")))
				}
			}
			return nil
		})
	})
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func firstLines(lines []string, n int) string {
	var out []string
	for _, l := range lines[:min(n, len(lines))] {
		out = append(out, strings.TrimSpace(l))
	}
	return strings.Join(out, " | ")
}

// siblingLabels reads the line records beside a block file
// (X.blocks.jsonl[.gz] -> X.jsonl[.gz]) into the label index, unless they
// were read already. A block file with no line records beside it and none
// among the inputs cannot be labeled.
func (e *kernelEval) siblingLabels(blockFile string) error {
	stem := strings.TrimSuffix(strings.TrimSuffix(blockFile, ".gz"), ".blocks.jsonl")
	if stem == strings.TrimSuffix(blockFile, ".gz") {
		stem = "" // not named like a block file: no sibling to look for
	}
	for _, ext := range []string{".jsonl", ".jsonl.gz"} {
		if stem == "" {
			break
		}
		sib := stem + ext
		if e.read[sib] {
			return nil
		}
		f, err := os.Open(sib)
		if err != nil {
			continue
		}
		e.read[sib] = true
		err = ReadLabeled(f, sib, func(l LabeledLine) error {
			e.labels.add(l.Line, l.Category, e.opt.Disputes.Adjust(l.Line, l.Fault))
			return nil
		})
		f.Close()
		return err
	}
	if len(e.read) == 0 {
		return fmt.Errorf("%s: no line records to label its blocks with: give the lkml line file (%s) as well", blockFile, cmpOr(stem, "X")+".jsonl")
	}
	return nil
}

// rawLog evaluates a saved kernel log labeled by the catalog.
func (e *kernelEval) rawLog(t *tally, r io.Reader, name string) error {
	return scanLines(r, name, func(line string, row int) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		cat, fault := labelByCatalog(e.opt.Catalog, line)
		t.line(fmt.Sprintf("%s:%d", name, row), cat, fault, line, e.match(line))
		return nil
	})
}

// npd evaluates one NPD sample.
func (e *kernelEval) npd(t *tally, name string) error {
	dir := e.opt.NPDConfigDir
	if dir == "" {
		var err error
		if dir, err = findNPDConfigDir(name); err != nil {
			return err
		}
	}
	l := e.npdLabelers[dir]
	if l == nil {
		var err error
		if l, err = LoadNPDConfigDir(dir); err != nil {
			return err
		}
		if e.npdLabelers == nil {
			e.npdLabelers = map[string]*NPDLabeler{}
		}
		e.npdLabelers[dir] = l
	}
	return readFile(name, func(r io.Reader) error {
		return l.Label(r, name, func(line string, row int, reasons []string) error {
			cat := strings.Join(reasons, "+")
			if cat == "" {
				cat = catalogBenign
			}
			t.line(fmt.Sprintf("%s:%d", filepath.Base(name), row), cat, len(reasons) > 0, line, e.match(line))
			return nil
		})
	})
}

// bgl evaluates a BGL log: the rules see each line's message.
func (e *kernelEval) bgl(t *tally, r io.Reader, name string) error {
	return ReadBGL(r, name, func(l BGLLine) error {
		cat, fault := l.Alert, true
		if cat == "" {
			cat, fault = "non-alert", false
		}
		t.line(fmt.Sprintf("%s:%d", filepath.Base(name), l.Row), cat, fault, l.Content, e.match(l.Content))
		return nil
	})
}

// aims sums each area's categories over the lkml line records (adjusted)
// and the gpud and NPD lines, and the lkml blocks; and the benign units
// flagged per source.
func (e *kernelEval) aims() {
	rep := &e.rep
	lineRows := [][]KernelFigures{rep.Categories}
	var blockRows []KernelFigures
	for _, g := range rep.Groups {
		switch g.Name {
		case groupInfo[KindRaw][0], groupInfo[KindNPD][0]:
			lineRows = append(lineRows, g.Categories)
		case groupInfo[KindBlocks][0]:
			blockRows = g.Categories
		}
	}
	for _, a := range e.opt.Aims {
		af := AimFigures{Aim: a}
		for _, rows := range lineRows {
			for _, k := range rows {
				if slices.Contains(a.Categories, k.Name) {
					af.Faults += k.TP + k.FN
					af.Caught += k.TP
					af.ClassCaught += k.ClassTP
				}
			}
		}
		for _, k := range blockRows {
			if slices.Contains(a.Categories, k.Name) {
				af.Blocks += k.TP + k.FN
				af.BlocksCaught += k.TP
				af.BlocksClassCaught += k.ClassTP
			}
		}
		af.Recall, af.ClassRecall = ratio(af.Caught, af.Faults), ratio(af.ClassCaught, af.Faults)
		af.BlockRecall, af.BlockClassRecall = ratio(af.BlocksCaught, af.Blocks), ratio(af.BlocksClassCaught, af.Blocks)
		af.Met = af.ClassRecall != nil && *af.ClassRecall >= AimRecall
		rep.Aims = append(rep.Aims, af)
	}
	all := KernelFigures{Name: "all lines"}
	add := func(name string, total KernelFigures, line bool) {
		k := KernelFigures{Name: name, Benign: total.Benign, FP: total.FP}
		k.FlaggedRate = ratio(k.FP, k.Benign)
		rep.BenignFlagged = append(rep.BenignFlagged, k)
		if line {
			all.Benign += total.Benign
			all.FP += total.FP
		}
	}
	if len(rep.Files) > 0 {
		add("lkml lines", rep.Total, true)
	}
	for _, g := range rep.Groups {
		add(g.Name, g.Total, g.Unit == "line")
	}
	all.FlaggedRate = ratio(all.FP, all.Benign)
	rep.BenignFlagged = append(rep.BenignFlagged, all)
}
