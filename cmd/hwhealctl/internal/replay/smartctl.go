package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// ReadSmartctl reads one `smartctl --json` document and returns the
// observation the agent's SMART source would have sent for it (the samples
// come from pkg/smart.ReadingSamples, which the agent's source uses too):
// the part is the disk named after the device
// smartctl read ("/dev/sda" gives "sda") with the drive's serial and
// model, and the time is smartctl's local_time (unset when the file has
// none). name names the input in errors. Broken input fails with
// pkg/smart's error (smart.ErrMalformed for empty, truncated or invalid
// JSON, naming the offset, line and column; smart.ErrNoDevice for JSON that
// is not a device's report).
func ReadSmartctl(r io.Reader, name string) (*hwhealv1.Observation, error) {
	data, err := io.ReadAll(io.LimitReader(r, smart.MaxJSONSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	rep, err := smart.ParseSmartctlJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return observationOf(rep, deviceName(rep.Device), smartctlTime(data)), nil
}

// observationOf is the observation of a drive smartctl read as rep, named
// name by the kernel ("" when not known), at time at (zero: unset). The
// serial and model are the drive's own: there is no sysfs to ask.
func observationOf(rep *smart.Report, name string, at time.Time) *hwhealv1.Observation {
	o := &hwhealv1.Observation{
		Source: smart.ObservationSource,
		Part:   &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: name, Serial: rep.Serial, Model: rep.Model},
	}
	if !at.IsZero() {
		o.Time = timestamppb.New(at)
	}
	for _, x := range smart.ReadingSamples(rep, true) {
		o.Samples = append(o.Samples, &hwhealv1.Sample{Name: x.Name, Value: x.Value})
	}
	return o
}

// deviceName is the kernel's name for the device smartctl read: the last
// element of its path.
func deviceName(dev string) string {
	if dev == "" {
		return ""
	}
	return path.Base(strings.TrimRight(dev, "/"))
}

// smartctlTime is the document's local_time.time_t: when smartctl ran. The
// document already parsed, so a failure here only means the field is
// missing or of another type.
func smartctlTime(data []byte) time.Time {
	var doc struct {
		LocalTime *struct {
			TimeT *int64 `json:"time_t"`
		} `json:"local_time"`
	}
	if json.Unmarshal(data, &doc) != nil || doc.LocalTime == nil || doc.LocalTime.TimeT == nil || *doc.LocalTime.TimeT <= 0 {
		return time.Time{}
	}
	return time.Unix(*doc.LocalTime.TimeT, 0).UTC()
}
