package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/inventory"
	"github.com/hwheal/hwheal/agent/source/kmsg"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Inspection is one snapshot of everything the agent reads on a host: what
// `hwheal-agent inspect` prints, and what an SRE runs first on a new
// machine to see which sources work there and why the others do not.
type Inspection struct {
	Node      string
	Root      string
	Time      time.Time
	BootID    string
	Inventory *hwhealv1.Inventory
	// InventoryError says why the inventory is missing or partial.
	InventoryError string
	// Sources are the probes of every enabled source, in start order.
	Sources []source.Probe
}

// ProbeTimeout bounds one source's probe in Inspect: a source that hangs
// (a disk that does not answer) is reported, not waited for.
const ProbeTimeout = 60 * time.Second

// Inspect probes every enabled source of cfg once, in parallel, and takes
// the inventory. It writes nothing: no spool, no cursor, no connection.
// Of cfg it uses Root, Node, Disable, DiskExclude, Intervals and Logger.
func Inspect(ctx context.Context, cfg Config) (*Inspection, error) {
	cfg.Root = cmp.Or(cfg.Root, "/")
	cfg.StateDir = "" // the kmsg source must not touch a cursor
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validateSources(); err != nil {
		return nil, err
	}
	rules, err := detect.Builtin()
	if err != nil {
		return nil, fmt.Errorf("load shipped rules: %w", err)
	}
	in := &Inspection{Node: cfg.Node, Root: cfg.Root, Time: time.Now(), BootID: readBootID(cfg.Root)}
	if in.Node == "" {
		in.Node, _ = os.Hostname()
	}
	set := builtinSources(&cfg, cfg.Logger)
	in.Sources = make([]source.Probe, len(set.all))
	var wg sync.WaitGroup
	for i, s := range set.all {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
			defer cancel()
			in.Sources[i] = probe(pctx, s, rules, bootWallTime())
		})
	}
	ictx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	inv, err := inventory.Collect(ictx, cfg.Root, cfg.Logger.With("component", "inventory"))
	cancel()
	in.Inventory = inv
	if err != nil {
		in.InventoryError = err.Error()
	}
	wg.Wait()
	in.Sources = append(in.Sources, set.liveOnly...)
	return in, ctx.Err()
}

// probe takes one source's probe. The kmsg source has no faults of its
// own: its records go through the agent's rules, as they do in Run.
func probe(ctx context.Context, s source.Source, rules *detect.RuleSet, bootWall time.Time) source.Probe {
	switch s := s.(type) {
	case *kmsg.Source:
		return probeKmsg(ctx, s, rules, bootWall)
	case source.Prober:
		p := s.Probe(ctx)
		p.Source = s.Name()
		if ctx.Err() != nil && p.Unavailable == "" {
			p.Errors = append(p.Errors, fmt.Sprintf("probe cut after %v: %v", ProbeTimeout, ctx.Err()))
		}
		return p
	default:
		return source.Probe{Source: s.Name(), Unavailable: "this source cannot be probed"}
	}
}

func probeKmsg(ctx context.Context, s *kmsg.Source, rules *detect.RuleSet, bootWall time.Time) source.Probe {
	p := source.Probe{Source: s.Name()}
	recs, skipped, err := s.Snapshot(ctx)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.Unavailable = err.Error()
		return p
	case err != nil:
		p.Errors = append(p.Errors, err.Error())
	}
	for _, rec := range recs {
		for _, f := range rules.Match(rec) {
			if t := recordTime(rec, bootWall); f.GetTime() == nil && !t.IsZero() {
				f.Time = timestamppb.New(t)
			}
			p.Faults = append(p.Faults, f)
		}
	}
	note := fmt.Sprintf("%d records in the ring, %d rules", len(recs), len(rules.Rules()))
	var n uint64
	for _, k := range skipped {
		n += k
	}
	if n > 0 {
		note += fmt.Sprintf(", %d unparsable", n)
	}
	p.Notes = append(p.Notes, note)
	return p
}

// WriteJSON writes the inspection as one JSON document; observations,
// faults and the inventory in the proto's JSON mapping.
func (in *Inspection) WriteJSON(w io.Writer) error {
	type probeJSON struct {
		Source       string            `json:"source"`
		Available    bool              `json:"available"`
		Unavailable  string            `json:"unavailable,omitempty"`
		Notes        []string          `json:"notes,omitempty"`
		Errors       []string          `json:"errors,omitempty"`
		Observations []json.RawMessage `json:"observations"`
		Faults       []json.RawMessage `json:"faults"`
	}
	doc := struct {
		Node           string          `json:"node"`
		Root           string          `json:"root"`
		Time           time.Time       `json:"time"`
		BootID         string          `json:"boot_id,omitempty"`
		Inventory      json.RawMessage `json:"inventory,omitempty"`
		InventoryError string          `json:"inventory_error,omitempty"`
		Sources        []probeJSON     `json:"sources"`
	}{Node: in.Node, Root: in.Root, Time: in.Time, BootID: in.BootID, InventoryError: in.InventoryError}
	m := protojson.MarshalOptions{UseProtoNames: true}
	raw := func(msg proto.Message) (json.RawMessage, error) { return m.Marshal(msg) }
	if in.Inventory != nil {
		b, err := raw(in.Inventory)
		if err != nil {
			return err
		}
		doc.Inventory = b
	}
	for _, p := range in.Sources {
		pj := probeJSON{Source: p.Source, Available: p.Unavailable == "", Unavailable: p.Unavailable,
			Notes: p.Notes, Errors: p.Errors, Observations: []json.RawMessage{}, Faults: []json.RawMessage{}}
		for _, o := range p.Observations {
			b, err := raw(o)
			if err != nil {
				return err
			}
			pj.Observations = append(pj.Observations, b)
		}
		for _, f := range p.Faults {
			b, err := raw(f)
			if err != nil {
				return err
			}
			pj.Faults = append(pj.Faults, b)
		}
		doc.Sources = append(doc.Sources, pj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// WriteTable writes the inspection for people: the sources and their
// status first, then the inventory, every reading and every fault.
func (in *Inspection) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "node %s, root %s, boot %s, %s\n\n", in.Node, in.Root, cmp.Or(in.BootID, "unknown"), in.Time.Format(time.RFC3339))
	fmt.Fprintln(tw, "SOURCE\tSTATUS\tREADINGS\tFAULTS\tDETAIL")
	for _, p := range in.Sources {
		status, detail := "ok", strings.Join(p.Notes, "; ")
		switch {
		case p.Unavailable != "":
			status, detail = "unavailable", p.Unavailable
		case len(p.Errors) > 0:
			status = "partial"
			detail = strings.Join(append(p.Errors, p.Notes...), "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", p.Source, status, len(p.Observations), len(p.Faults), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeInventory(w, in.Inventory, in.InventoryError)

	fmt.Fprintln(w, "\nREADINGS")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tPART\tVALUES")
	for _, p := range in.Sources {
		for _, o := range p.Observations {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Source, partString(o.GetPart()), samplesString(o.GetSamples()))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nFAULTS")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSEVERITY\tCLASS\tPART\tTIME\tSUMMARY")
	for _, p := range in.Sources {
		for _, f := range p.Faults {
			t := "-"
			if f.GetTime() != nil {
				t = f.GetTime().AsTime().Local().Format(time.RFC3339)
			}
			sev := strings.TrimPrefix(f.GetSeverity().String(), "SEVERITY_")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Source, sev, f.GetFaultClass(), partString(f.GetPart()), t, f.GetSummary())
		}
	}
	return tw.Flush()
}

func writeInventory(w io.Writer, inv *hwhealv1.Inventory, invErr string) {
	fmt.Fprintln(w, "\nINVENTORY")
	if invErr != "" {
		fmt.Fprintf(w, "  (partial: %s)\n", invErr)
	}
	if inv == nil {
		return
	}
	fmt.Fprintf(w, "  system  %s %s serial %s, BIOS %s, board serial %s\n", cmp.Or(inv.GetSystemVendor(), "?"),
		cmp.Or(inv.GetSystemProduct(), "?"), cmp.Or(inv.GetSystemSerial(), "?"), cmp.Or(inv.GetBiosVersion(), "?"), cmp.Or(inv.GetBoardSerial(), "?"))
	fmt.Fprintf(w, "  cpu     %s, %d cores; memory %d MiB\n", cmp.Or(inv.GetCpuModel(), "?"), inv.GetCpuCores(), inv.GetMemoryBytes()>>20)
	for _, d := range inv.GetDisks() {
		fmt.Fprintf(w, "  disk    %s %s serial %s wwn %s %s %d GB\n", d.GetName(), cmp.Or(d.GetModel(), "?"), cmp.Or(d.GetSerial(), "?"),
			cmp.Or(d.GetWwn(), "-"), d.GetBus(), d.GetSizeBytes()/1e9)
	}
	for _, d := range inv.GetDimms() {
		fmt.Fprintf(w, "  dimm    %s %s serial %s part %s %d MiB\n", d.GetLabel(), cmp.Or(d.GetVendor(), "?"), cmp.Or(d.GetSerial(), "?"),
			cmp.Or(d.GetPartNumber(), "?"), d.GetSizeBytes()>>20)
	}
	for _, n := range inv.GetNics() {
		if n.GetVirtual() {
			continue
		}
		fmt.Fprintf(w, "  nic     %s %s pci %s\n", n.GetName(), n.GetMac(), cmp.Or(n.GetPciAddress(), "-"))
	}
	for _, g := range inv.GetGpus() {
		fmt.Fprintf(w, "  gpu     %s %s %s driver %s\n", g.GetAddress(), g.GetVendor(), g.GetProduct(), cmp.Or(g.GetDriver(), "-"))
	}
}

func partString(p *hwhealv1.Part) string {
	if p == nil {
		return "-"
	}
	s := strings.ToLower(strings.TrimPrefix(p.GetKind().String(), "PART_KIND_")) + " " + cmp.Or(p.GetName(), "-")
	if p.GetPciAddress() != "" && p.GetPciAddress() != p.GetName() {
		s += " (" + p.GetPciAddress() + ")"
	}
	if p.GetSerial() != "" {
		s += " serial " + p.GetSerial()
	}
	return s
}

func samplesString(samples []*hwhealv1.Sample) string {
	parts := make([]string, 0, len(samples))
	for _, s := range samples {
		parts = append(parts, s.GetName()+"="+strconv.FormatFloat(s.GetValue(), 'g', -1, 64))
	}
	return strings.Join(parts, " ")
}
