package ctl

import (
	"context"
	"fmt"
	"io"
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
			if o.output == "json" {
				return writeJSONList(o.stdout, faults)
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
	return cmd
}

func writeFaultTable(w io.Writer, faults []*hwhealv1.FaultRecord) error {
	tw := newTable(w, "ID", "NODE", "CLASS", "SEVERITY", "PART", "COUNT", "FIRST SEEN", "LAST SEEN", "SUMMARY")
	for _, f := range faults {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", f.GetId(), f.GetNode(), f.GetFaultClass(), severityName(f.GetSeverity()),
			partString(f.GetPart()), f.GetCount(), timeString(f.GetFirstSeen()), timeString(f.GetLastSeen()), truncate(f.GetSummary(), 80))
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
