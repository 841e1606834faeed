package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// jsonOpts is how every proto leaves hwhealctl: field names as in the
// .proto (snake_case), so jq filters match the documentation.
var jsonOpts = protojson.MarshalOptions{UseProtoNames: true}

// writeJSONList prints messages as one JSON array.
func writeJSONList[M proto.Message](w io.Writer, msgs []M) error {
	raw := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		b, err := jsonOpts.Marshal(m)
		if err != nil {
			return err
		}
		raw[i] = b
	}
	return writeIndented(w, raw)
}

// writeJSON prints one message.
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		return err
	}
	return writeIndented(w, json.RawMessage(b))
}

// writeJSONLine prints one message on one line (streams).
func writeJSONLine(w io.Writer, m proto.Message) error {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		return err
	}
	// protojson may vary its spacing to discourage byte comparisons;
	// compacting gives one stable line.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// enumName turns SEVERITY_CRITICAL into "critical".
func enumName(full, prefix string) string {
	s := strings.TrimPrefix(full, prefix)
	return strings.ToLower(s)
}

func severityName(s hwhealv1.Severity) string   { return enumName(s.String(), "SEVERITY_") }
func healthName(h hwhealv1.NodeHealth) string   { return enumName(h.String(), "NODE_HEALTH_") }
func eventTypeName(t hwhealv1.EventType) string { return enumName(t.String(), "EVENT_TYPE_") }
func partKindName(k hwhealv1.PartKind) string   { return enumName(k.String(), "PART_KIND_") }

func modeName(m hwhealv1.RuleMode) string {
	if m == hwhealv1.RuleMode_RULE_MODE_SHADOW {
		return "shadow"
	}
	return "enforce"
}

func partString(p *hwhealv1.Part) string {
	if p == nil {
		return "-"
	}
	s := partKindName(p.GetKind())
	if p.GetName() != "" {
		s += ":" + p.GetName()
	}
	if p.GetPciAddress() != "" && p.GetPciAddress() != p.GetName() {
		s += "@" + p.GetPciAddress()
	}
	if p.GetSerial() != "" {
		s += " sn=" + p.GetSerial()
	}
	return s
}

func timeString(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func labelsString(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
