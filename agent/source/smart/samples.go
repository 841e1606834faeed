package smart

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Sample names: pkg/smart owns them (the offline replay reads drives with
// the same vocabulary); these are the same constants under the names the
// source's code and tests use.
const (
	SampleStandby                   = smart.SampleStandby
	SampleReadError                 = smart.SampleReadError
	SampleReadTimeout               = smart.SampleReadTimeout
	SampleReadBySmartctl            = smart.SampleReadBySmartctl
	SampleSmartPassed               = smart.SampleSmartPassed
	SampleTemperature               = smart.SampleTemperature
	SamplePowerOnHours              = smart.SamplePowerOnHours
	SampleATAReallocated            = smart.SampleATAReallocated
	SampleATAReportedUncorrect      = smart.SampleATAReportedUncorrect
	SampleATACommandTimeout         = smart.SampleATACommandTimeout
	SampleATAPending                = smart.SampleATAPending
	SampleATAOfflineUncorrectable   = smart.SampleATAOfflineUncorrectable
	SampleATAUDMACRCErrors          = smart.SampleATAUDMACRCErrors
	SampleATAPrefailFailingNow      = smart.SampleATAPrefailFailingNow
	SampleATAPrefailFailedPast      = smart.SampleATAPrefailFailedPast
	SampleATASelfTestErrors         = smart.SampleATASelfTestErrors
	SampleATAErrorLogLastUNC        = smart.SampleATAErrorLogLastUNC
	SampleNVMeCriticalWarning       = smart.SampleNVMeCriticalWarning
	SampleNVMeAvailableSpare        = smart.SampleNVMeAvailableSpare
	SampleNVMeAvailableSpareThresh  = smart.SampleNVMeAvailableSpareThresh
	SampleNVMePercentageUsed        = smart.SampleNVMePercentageUsed
	SampleNVMeMediaErrors           = smart.SampleNVMeMediaErrors
	SampleNVMeUnsafeShutdowns       = smart.SampleNVMeUnsafeShutdowns
	SampleNVMePowerCycles           = smart.SampleNVMePowerCycles
	SampleNVMeErrorLogEntries       = smart.SampleNVMeErrorLogEntries
	SampleNVMeDataUnitsRead         = smart.SampleNVMeDataUnitsRead
	SampleNVMeDataUnitsWritten      = smart.SampleNVMeDataUnitsWritten
	SampleNVMeHostReadCommands      = smart.SampleNVMeHostReadCommands
	SampleNVMeHostWriteCommands     = smart.SampleNVMeHostWriteCommands
	SampleNVMeControllerBusyMinutes = smart.SampleNVMeControllerBusyMinutes
	SampleNVMeWarningTempMinutes    = smart.SampleNVMeWarningTempMinutes
	SampleNVMeCriticalTempMinutes   = smart.SampleNVMeCriticalTempMinutes
	SampleNVMeEnduranceGroupWarning = smart.SampleNVMeEnduranceGroupWarning
	SampleSCSIGrownDefects          = smart.SampleSCSIGrownDefects
	SampleSCSIUncorrectedErrors     = smart.SampleSCSIUncorrectedErrors
	SampleSCSIPercentageUsedEndu    = smart.SampleSCSIPercentageUsedEndu
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
		add(SampleStandby, 0)
		add(SampleReadError, 1)
		add(SampleReadTimeout, b2f(r.timedOut))
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
