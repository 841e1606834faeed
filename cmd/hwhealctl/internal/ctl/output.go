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
	"gopkg.in/yaml.v3"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// jsonOpts is how every proto leaves hwhealctl: field names as in the
// .proto (snake_case), so jq filters match the documentation.
var jsonOpts = protojson.MarshalOptions{UseProtoNames: true}

// Output formats.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

// structured reports whether -o asks for data (JSON or YAML) rather than
// a table for people.
func (o *options) structured() bool { return o.output == outJSON || o.output == outYAML }

// write prints one value as -o asks: indented JSON, or YAML with the same
// field names (YAML is made from the JSON, so the two never disagree). v
// is a proto message, a json.RawMessage, or any value encoding/json takes.
func (o *options) write(v any) error {
	b, err := toJSON(v)
	if err != nil {
		return err
	}
	if o.output == outYAML {
		return writeYAML(o.stdout, b, false)
	}
	return writeIndented(o.stdout, json.RawMessage(b))
}

// writeList prints messages as one list.
func writeList[M proto.Message](o *options, msgs []M) error {
	raw := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		b, err := jsonOpts.Marshal(m)
		if err != nil {
			return err
		}
		raw[i] = b
	}
	return o.write(raw)
}

// writeItem prints one item of a stream: a JSON object on one line, or
// one YAML document.
func (o *options) writeItem(v any) error {
	b, err := toJSON(v)
	if err != nil {
		return err
	}
	if o.output == outYAML {
		return writeYAML(o.stdout, b, true)
	}
	// protojson may vary its spacing to discourage byte comparisons;
	// compacting gives one stable line.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = o.stdout.Write(out.Bytes())
	return err
}

func toJSON(v any) ([]byte, error) {
	switch v := v.(type) {
	case proto.Message:
		return jsonOpts.Marshal(v)
	case json.RawMessage:
		return v, nil
	}
	return json.Marshal(v)
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeYAML prints a JSON document as YAML, keeping its field order;
// doc starts it with "---" (one document of a stream).
func writeYAML(w io.Writer, js []byte, doc bool) error {
	var n yaml.Node
	if err := yaml.Unmarshal(js, &n); err != nil {
		return fmt.Errorf("yaml output: %w", err)
	}
	blockStyle(&n)
	var buf bytes.Buffer
	if doc {
		buf.WriteString("---\n")
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return fmt.Errorf("yaml output: %w", err)
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// blockStyle drops JSON's flow style and quotes: the encoder quotes only
// the strings that would otherwise read as another type ("123", "true"),
// and multi-line text (step output) becomes a literal block.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, "\n") {
		n.Style = yaml.LiteralStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
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

func actionTypeName(t hwhealv1.ActionType) string {
	if n := action.TypeName(t); n != "" {
		return n
	}
	return "-"
}

// approvalName is the policy's spelling (auto, required, two-person), "-"
// for none.
func approvalName(m hwhealv1.ApprovalMode) string {
	if n := action.ApprovalName(m); n != "" {
		return n
	}
	return "-"
}

func expiryName(e hwhealv1.ExpiryOutcome) string { return enumName(e.String(), "EXPIRY_OUTCOME_") }

// ageString is a duration in one or two units, as a table column:
// 45s, 12m, 3h20m, 5d.
func ageString(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) - 60*h; m > 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// noteString is who, when (UTC) and why.
func noteString(n *hwhealv1.ActionNote) string { return noteAt(n, timeString(n.GetTime())) }

// noteAt is who, when and why, with when as the caller writes it.
func noteAt(n *hwhealv1.ActionNote, when string) string {
	s := n.GetActor() + " at " + when
	if n.GetReason() != "" {
		s += ": " + n.GetReason()
	}
	return s
}
