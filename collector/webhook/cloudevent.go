package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// ContentType is the media type of a CloudEvent in structured mode.
const ContentType = "application/cloudevents+json"

// TypePrefix starts every CloudEvents type this package sends.
const TypePrefix = "io.hwheal."

// DefaultSourceURI is the CloudEvents source unless Options say otherwise.
const DefaultSourceURI = "hwheal-collector"

// CloudEvent is the JSON envelope of the CloudEvents 1.0 structured mode
// with the attributes Encode writes: what a receiver written in Go (or a
// test) decodes a delivery into.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time,omitempty"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// dataJSON is how the event travels as data: proto field names, as
// hwhealctl -o json prints them, so one jq filter works on both.
var dataJSON = protojson.MarshalOptions{UseProtoNames: true}

// Encode returns ev as a structured-mode CloudEvent. The id is the event's
// store id, the same on every retry and every target, so that receivers
// can drop repeats: delivery is at least once.
func Encode(ev *hwhealv1.Event, source string) ([]byte, error) {
	name := EventTypeName(ev.GetType())
	if name == "" {
		return nil, fmt.Errorf("encode event %d: unknown type %v", ev.GetId(), ev.GetType())
	}
	data, err := dataJSON.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %d: %w", ev.GetId(), err)
	}
	// Written by hand rather than through encoding/json, which would
	// escape <, > and & in the data (kernel log lines are full of "<3>").
	b := bytes.NewBuffer(make([]byte, 0, len(data)+256))
	b.WriteString(`{"specversion":"1.0","id":"`)
	b.WriteString(strconv.FormatUint(ev.GetId(), 10))
	b.WriteString(`","source":`)
	writeString(b, source)
	b.WriteString(`,"type":`)
	writeString(b, TypePrefix+name)
	if n := ev.GetNode(); n != "" {
		b.WriteString(`,"subject":`)
		writeString(b, n)
	}
	if ts := ev.GetTime(); ts != nil {
		b.WriteString(`,"time":`)
		writeString(b, ts.AsTime().UTC().Format(time.RFC3339Nano))
	}
	b.WriteString(`,"datacontenttype":"application/json","data":`)
	// Compacting undoes protojson's deliberately unstable spacing: the
	// same event is the same bytes on every attempt.
	if err := json.Compact(b, data); err != nil {
		return nil, fmt.Errorf("encode event %d: %w", ev.GetId(), err)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}
