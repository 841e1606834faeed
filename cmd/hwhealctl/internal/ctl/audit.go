package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hwheal/hwheal/pkg/auditchain"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func newAuditCmd(o *options) *cobra.Command {
	var node, actionID string
	var limit int
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit log: every request, decision, approval, dispatch, step and result, oldest first",
		Example: `  hwhealctl audit --node web-17
  hwhealctl audit --action a-7f3c -o json
  hwhealctl audit verify`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			req := &hwhealv1.ListAuditRequest{Node: node, ActionId: actionID}
			var records []*hwhealv1.AuditRecord
			err = paginate(cmd.Context(), o, limit, func(ctx context.Context, size uint32, token string) (string, int, error) {
				req.PageSize, req.PageToken = size, token
				resp, err := c.ListAudit(ctx, req)
				if err != nil {
					return "", 0, err
				}
				records = append(records, resp.GetRecords()...)
				return resp.GetNextPageToken(), len(resp.GetRecords()), nil
			})
			if err != nil {
				return err
			}
			if o.structured() {
				return writeList(o, records)
			}
			return writeAuditTable(o.stdout, records)
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "only records of this node")
	f.StringVar(&actionID, "action", "", "only records of this action")
	f.IntVar(&limit, "limit", 0, "at most this many records (0: all)")
	cmd.AddCommand(newAuditVerifyCmd(o))
	return cmd
}

func writeAuditTable(w io.Writer, records []*hwhealv1.AuditRecord) error {
	tw := newTable(w, "ID", "TIME", "ACTOR", "KIND", "NODE", "ACTION", "DETAIL")
	for _, r := range records {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetId(), timeString(r.GetTime()), orDash(r.GetActor()), r.GetKind(),
			orDash(r.GetNode()), orDash(r.GetActionId()), orDash(truncate(oneLine(r.GetDetail()), 100)))
	}
	return tw.Flush()
}

func newAuditVerifyCmd(o *options) *cobra.Command {
	var expect string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Read the whole audit log and check its hash chain: no record changed, removed or inserted",
		Long: `Pages through the whole audit log from its first record and checks that each
record's hash is what its fields give and that it carries the hash of the one
before. Prints the number of records and the hash of the last (the head):
write it down elsewhere to check later that the log was not rewritten whole.
With --expect N:HEAD (what an earlier verify printed) it also checks that
the log still holds those N records unchanged: a log cut short, or rewritten
with every hash recomputed, no longer matches the head written down.
Exits non-zero at the first record that does not hold.`,
		Example: `  hwhealctl audit verify
  hwhealctl audit verify --expect 1842:5499e300da654ee8e92761644191d284d9e54b372eb963f7fcf4a6f812070f1d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var wantN uint64
			var wantHead string
			if expect != "" {
				n, head, ok := strings.Cut(expect, ":")
				var err error
				if wantN, err = strconv.ParseUint(n, 10, 64); !ok || err != nil || wantN == 0 || len(head) != 64 {
					return fmt.Errorf("--expect %q: want N:HEAD as audit verify printed it (a record count and a 64-digit hex hash)", expect)
				}
				wantHead = strings.ToLower(head)
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			var v auditchain.Verifier
			var verr error
			req := &hwhealv1.ListAuditRequest{}
			err = paginate(cmd.Context(), o, 0, func(ctx context.Context, size uint32, token string) (string, int, error) {
				req.PageSize, req.PageToken = size, token
				resp, err := c.ListAudit(ctx, req)
				if err != nil {
					return "", 0, err
				}
				if len(resp.GetRecords()) == 0 && resp.GetNextPageToken() != "" {
					verr = errors.New("the collector returned an empty page that is not the last")
					return "", 0, nil
				}
				for _, r := range resp.GetRecords() {
					if err := v.Add(r); err != nil {
						verr = err
						return "", 0, nil
					}
					if v.Count() == wantN && v.Head() != wantHead {
						verr = fmt.Errorf("audit record %d hashes to %s, not the head %s written down: the log was rewritten up to it", wantN, v.Head(), wantHead)
						return "", 0, nil
					}
				}
				return resp.GetNextPageToken(), len(resp.GetRecords()), nil
			})
			if err != nil {
				return err
			}
			if verr != nil {
				return verr
			}
			if v.Count() < wantN {
				return fmt.Errorf("the audit log holds %d records, fewer than the %d written down: records were removed from its end", v.Count(), wantN)
			}
			if o.structured() {
				return o.write(struct {
					Verified bool   `json:"verified"`
					Records  uint64 `json:"records"`
					Head     string `json:"head"`
				}{true, v.Count(), v.Head()})
			}
			_, err = fmt.Fprintf(o.stdout, "audit log verified: %d records, head %s\n", v.Count(), v.Head())
			if err == nil && wantN > 0 {
				_, err = fmt.Fprintf(o.stdout, "the first %d records are the ones written down\n", wantN)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&expect, "expect", "", "N:HEAD from an earlier verify: check the log still begins with those records")
	return cmd
}
