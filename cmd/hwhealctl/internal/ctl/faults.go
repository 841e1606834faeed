package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func newFaultsCmd(o *options) *cobra.Command {
	var node, class, minSeverity string
	var all bool
	var labels map[string]string
	var limit int
	cmd := &cobra.Command{
		Use:   "faults",
		Short: "List faults (open ones unless --all)",
		Example: `  hwhealctl faults --node web-17
  hwhealctl faults --class disk.io_error --min-severity critical -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &hwhealv1.ListFaultsRequest{Node: node, FaultClass: class, AllStates: all, Labels: labels}
			if minSeverity != "" {
				v, ok := hwhealv1.Severity_value["SEVERITY_"+strings.ToUpper(minSeverity)]
				if !ok || v == 0 {
					return fmt.Errorf("--min-severity %q: use info, warning or critical", minSeverity)
				}
				req.MinSeverity = hwhealv1.Severity(v)
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			var faults []*hwhealv1.FaultRecord
			err = paginate(cmd.Context(), o, limit, func(ctx context.Context, size uint32, token string) (string, int, error) {
				req.PageSize, req.PageToken = size, token
				resp, err := c.ListFaults(ctx, req)
				if err != nil {
					return "", 0, err
				}
				faults = append(faults, resp.GetFaults()...)
				return resp.GetNextPageToken(), len(resp.GetFaults()), nil
			})
			if err != nil {
				return err
			}
			if o.structured() {
				return writeList(o, faults)
			}
			return writeFaultTable(o.stdout, faults)
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "only faults of this node")
	f.StringVar(&class, "class", "", "only faults of this class (e.g. disk.io_error)")
	f.StringVar(&minSeverity, "min-severity", "", "only faults at least this severe (info, warning, critical)")
	f.BoolVar(&all, "all", false, "include resolved faults")
	f.StringToStringVar(&labels, "label", nil, "only faults on nodes with these labels (k=v)")
	f.IntVar(&limit, "limit", 0, "at most this many faults (0: all)")
	cmd.AddCommand(newFaultNoteCmd(o, "ack", "Acknowledge an open fault: you have seen it (it stays open)"),
		newFaultNoteCmd(o, "resolve", "Resolve an open fault by hand (new evidence opens a new fault)"))
	return cmd
}

func newFaultCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "fault ID",
		Short: "Show one fault, open or resolved, with its evidence",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := faultID(args[0])
			if err != nil {
				return err
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			resp, err := c.GetFault(ctx, &hwhealv1.GetFaultRequest{Id: id})
			if err != nil {
				return rpcError(err)
			}
			if o.structured() {
				return o.write(resp.GetFault())
			}
			return writeFaultDetail(o.stdout, resp.GetFault())
		},
	}
}

func faultID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("fault id %q: want a positive number (the ID column of hwhealctl faults)", s)
	}
	return id, nil
}

// newFaultNoteCmd is `faults ack` and `faults resolve`: both take an id and
// a reason and print the fault as it is after.
func newFaultNoteCmd(o *options, verb, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     verb + " ID --reason TEXT",
		Short:   short,
		Example: fmt.Sprintf("  hwhealctl faults %s 42 --reason \"disk replaced, ticket OPS-1234\"", verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := faultID(args[0])
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: say why, for the next person who reads the fault")
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			var fr *hwhealv1.FaultRecord
			if verb == "ack" {
				resp, err := c.AcknowledgeFault(ctx, &hwhealv1.AcknowledgeFaultRequest{Id: id, Reason: reason})
				if err != nil {
					return rpcError(err)
				}
				fr = resp.GetFault()
			} else {
				resp, err := c.ResolveFault(ctx, &hwhealv1.ResolveFaultRequest{Id: id, Reason: reason})
				if err != nil {
					return rpcError(err)
				}
				fr = resp.GetFault()
			}
			if o.structured() {
				return o.write(fr)
			}
			return writeFaultTable(o.stdout, []*hwhealv1.FaultRecord{fr})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; kept with the fault and in its event)")
	return cmd
}

func writeFaultDetail(w io.Writer, f *hwhealv1.FaultRecord) error {
	tw := newTable(w, "FIELD", "VALUE")
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("id", strconv.FormatUint(f.GetId(), 10))
	row("node", f.GetNode())
	row("class", f.GetFaultClass())
	row("severity", severityName(f.GetSeverity()))
	row("state", enumName(f.GetState().String(), "FAULT_STATE_"))
	row("mode", modeName(f.GetMode()))
	row("rule", f.GetRule())
	row("part", partString(f.GetPart()))
	row("count", strconv.FormatUint(f.GetCount(), 10))
	row("first seen", timeString(f.GetFirstSeen()))
	row("last seen", timeString(f.GetLastSeen()))
	if f.GetClearAfter() != nil {
		row("clears after", f.GetClearAfter().AsDuration().String()+" without evidence")
	} else {
		row("clears after", "never by itself (resolve by hand)")
	}
	if f.GetReopened() > 0 {
		row("reopened", strconv.FormatUint(uint64(f.GetReopened()), 10))
	}
	if a := f.GetAcknowledged(); a != nil {
		row("acknowledged", fmt.Sprintf("%s by %s: %s", timeString(a.GetTime()), a.GetActor(), a.GetReason()))
	}
	if f.GetResolved() != nil {
		by := "by itself"
		if r := f.GetResolvedBy(); r != nil {
			by = fmt.Sprintf("by %s: %s", r.GetActor(), r.GetReason())
		}
		row("resolved", timeString(f.GetResolved())+" "+by)
	}
	row("summary", f.GetSummary())
	if kl := f.GetEvidence().GetKernelLog(); kl != nil {
		row("kernel log", kl.GetMessage())
	}
	for _, s := range f.GetEvidence().GetSamples() {
		row("sample "+s.GetName(), strconv.FormatFloat(s.GetValue(), 'g', -1, 64))
	}
	return tw.Flush()
}

// faultFlags says in a few words what the table's columns do not: shadow
// mode, an acknowledgement, reopenings.
func faultFlags(f *hwhealv1.FaultRecord) string {
	var flags []string
	if f.GetMode() == hwhealv1.RuleMode_RULE_MODE_SHADOW {
		flags = append(flags, "shadow")
	}
	if f.GetAcknowledged() != nil {
		flags = append(flags, "acked")
	}
	if f.GetReopened() > 0 {
		flags = append(flags, fmt.Sprintf("reopened:%d", f.GetReopened()))
	}
	if f.GetState() == hwhealv1.FaultState_FAULT_STATE_RESOLVED {
		flags = append(flags, "resolved")
	}
	if len(flags) == 0 {
		return "-"
	}
	return strings.Join(flags, ",")
}

func writeFaultTable(w io.Writer, faults []*hwhealv1.FaultRecord) error {
	tw := newTable(w, "ID", "NODE", "CLASS", "SEVERITY", "PART", "COUNT", "FIRST SEEN", "LAST SEEN", "FLAGS", "SUMMARY")
	for _, f := range faults {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", f.GetId(), f.GetNode(), f.GetFaultClass(), severityName(f.GetSeverity()),
			partString(f.GetPart()), f.GetCount(), timeString(f.GetFirstSeen()), timeString(f.GetLastSeen()), faultFlags(f), truncate(f.GetSummary(), 80))
	}
	return tw.Flush()
}

// rpcError makes a gRPC error read like a sentence.
func rpcError(err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", codeName(st.Code()), st.Message())
	}
	return err
}

// codeName spells a status code as gRPC documents it, in lower case:
// NotFound is "not_found" (not "notfound"), so people and scripts can match
// the canonical names.
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
