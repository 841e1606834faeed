package smart

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func part(d Disk, rep *smart.Report) *hwhealv1.Part {
	p := &hwhealv1.Part{
		Kind:       hwhealv1.PartKind_PART_KIND_DISK,
		Name:       d.Name,
		Serial:     d.Serial,
		Model:      d.Model,
		PciAddress: d.PCIAddress,
	}
	// sysfs first, so that a disk's serial here and in diskstats and the
	// inventory agree; the drive's own word where sysfs has none (and its
	// full model: sysfs holds SCSI INQUIRY's 16 bytes for a SATA drive).
	if rep != nil {
		if p.Serial == "" {
			p.Serial = rep.Serial
		}
		if rep.Model != "" {
			p.Model = rep.Model
		}
	}
	return p
}

// observation is one drive's reading as the agent reports it.
func observation(r result) *hwhealv1.Observation {
	o := &hwhealv1.Observation{
		Time:   timestamppb.New(r.at),
		Source: Name,
		Part:   part(r.disk, r.rep),
	}
	add := func(name string, v float64) { o.Samples = append(o.Samples, &hwhealv1.Sample{Name: name, Value: v}) }
	switch {
	case r.err != nil:
		add(smart.SampleStandby, 0)
		add(smart.SampleReadError, 1)
		add(smart.SampleReadTimeout, b2f(r.timedOut))
	default:
		o.Samples = protoSamples(smart.ReadingSamples(r.rep, r.reader == PreferSmartctl))
	}
	return o
}

func protoSamples(ss []smart.Sample) []*hwhealv1.Sample {
	out := make([]*hwhealv1.Sample, len(ss))
	for i, x := range ss {
		out[i] = &hwhealv1.Sample{Name: x.Name, Value: x.Value}
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
