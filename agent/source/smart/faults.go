package smart

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Fault classes the source raises, from pkg/smart.Assess's findings of
// warning or critical severity (its info findings are evidence for fleet
// rules, not faults):
const (
	// The drive's overall verdict failed, an attribute is at or below its
	// threshold now (or a pre-failure one was in the past), or a self-test
	// failed: smart.overall_failed, ata.prefail_failing_now,
	// ata.prefail_failed_past, ata.oldage_failing_now, ata.selftest_failed.
	ClassSmartFailing = "disk.smart_failing"
	// The drive has lost or remapped sectors: ata.reallocated_sectors (5),
	// ata.reported_uncorrect (187), ata.pending_sectors (197),
	// ata.offline_uncorrectable (198), ata.error_log.uncorrectable,
	// scsi.grown_defects, scsi.uncorrected_errors.
	ClassMedia = "disk.media"
	// NVMe critical warning bits other than the spare bit:
	// nvme.critical_warning.{temperature,reliability,read_only,
	// volatile_backup,persistent_memory,reserved6,reserved7}.
	ClassNVMeCriticalWarning = "nvme.critical_warning"
	// nvme.media_errors: unrecovered data integrity errors.
	ClassNVMeMediaErrors = "nvme.media_errors"
	// Available spare below its threshold: nvme.critical_warning.spare
	// (the drive's bit) or nvme.spare_below_threshold (our comparison).
	ClassNVMeSpareLow = "nvme.spare_low"
	// nvme.percentage_used: 100 % or more of the rated endurance used.
	ClassNVMeWearOut = "nvme.wear_out"
)

// faultClass maps a finding to the class it raises, "" for none.
func faultClass(f smart.Finding) string {
	if f.Severity < smart.SeverityWarning {
		return ""
	}
	switch f.Code {
	case smart.CodeOverallFailed, smart.CodeATAPrefailFailingNow, smart.CodeATAPrefailFailedPast,
		smart.CodeATAOldAgeFailingNow, smart.CodeATAOldAgeFailedPast, smart.CodeATASelfTestFailed:
		return ClassSmartFailing
	case smart.CodeATAReallocated, smart.CodeATAReportedUncorrect, smart.CodeATAPending,
		smart.CodeATAOfflineUncorrect, smart.CodeATAErrorLogUNC, smart.CodeATACommandTimeout,
		smart.CodeSCSIGrownDefects, smart.CodeSCSIUncorrectedErrors:
		return ClassMedia
	case smart.CodeNVMeCriticalWarning + ".spare", smart.CodeNVMeSpareBelow:
		return ClassNVMeSpareLow
	case smart.CodeNVMePercentageUsed:
		return ClassNVMeWearOut
	case smart.CodeNVMeMediaErrors:
		return ClassNVMeMediaErrors
	}
	if strings.HasPrefix(f.Code, smart.CodeNVMeCriticalWarning+".") {
		return ClassNVMeCriticalWarning
	}
	return ClassSmartFailing // a code Assess learns later: still the drive's own verdict
}

// tracked is a finding as it was last seen on a drive.
type tracked struct {
	finding smart.Finding
	// level is what "worse" compares: a count or percentage for most
	// findings (higher is worse), a normalized value or the spare left for
	// those where lower is worse, nothing for bits that are set or not.
	level      uint64
	lowerWorse bool
	levelless  bool
}

func track(f smart.Finding, rep *smart.Report) tracked {
	t := tracked{finding: f, level: f.Value}
	switch {
	case f.Code == smart.CodeNVMeCriticalWarning+".spare" || f.Code == smart.CodeNVMeSpareBelow:
		t.level, t.lowerWorse = uint64(rep.NVMe.AvailableSpare), true
	case f.Code == smart.CodeOverallFailed || strings.HasPrefix(f.Code, smart.CodeNVMeCriticalWarning+"."):
		t.levelless = true // the byte's other bits must not count
	case f.Code == smart.CodeATAPrefailFailingNow || f.Code == smart.CodeATAPrefailFailedPast ||
		f.Code == smart.CodeATAOldAgeFailingNow || f.Code == smart.CodeATAOldAgeFailedPast:
		t.lowerWorse = true // the normalized value (now) or worst (past)
	}
	return t
}

// condition names what a finding is about, so that one condition seen
// through another code is still the same: an attribute at its threshold
// now or in the past, the spare below its threshold by the drive's bit or
// by our comparison.
func condition(f smart.Finding) string {
	switch f.Code {
	case smart.CodeATAPrefailFailingNow, smart.CodeATAPrefailFailedPast,
		smart.CodeATAOldAgeFailingNow, smart.CodeATAOldAgeFailedPast:
		return fmt.Sprintf("ata.threshold.%d", f.Attribute)
	case smart.CodeNVMeCriticalWarning + ".spare", smart.CodeNVMeSpareBelow:
		return "nvme.spare"
	}
	return f.Code
}

// worse tells whether cur is worse than prev: more severe, or further
// along in the direction that is bad.
func (cur tracked) worse(prev tracked) bool {
	switch {
	case cur.finding.Severity != prev.finding.Severity:
		return cur.finding.Severity > prev.finding.Severity
	case cur.levelless:
		return false
	case cur.lowerWorse:
		return cur.level < prev.level
	}
	return cur.level > prev.level
}

// memory is what the source remembers of one drive.
type memory struct {
	serial     string
	conditions map[string]tracked
}

// track updates what the source remembers of each drive with one reading
// and returns the faults to raise: a class with a condition that is new on
// the drive, or worse than when it was last seen. A reading without data
// (standby, failure) leaves the drive's memory as it was; a drive with
// another serial number under the same name is another drive; drives no
// longer present are forgotten.
func (s *Source) track(rd *reading) []*hwhealv1.Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*hwhealv1.Fault
	present := map[string]bool{}
	for _, r := range rd.results {
		name := r.disk.Name
		present[name] = true
		if r.rep == nil || r.rep.Standby {
			continue
		}
		serial := part(r.disk, r.rep).GetSerial()
		var prev map[string]tracked
		if m, ok := s.memory[name]; ok && (m.serial == "" || serial == "" || m.serial == serial) {
			prev = m.conditions
		}
		fs, now := faultsFor(r, prev)
		s.memory[name] = memory{serial: serial, conditions: now}
		out = append(out, fs...)
	}
	if rd.discoverErr == nil {
		for k := range s.memory {
			if !present[k] {
				delete(s.memory, k)
			}
		}
	}
	return out
}

// faultsFor returns the faults of one drive's reading given what was seen
// before (nil: nothing, as for Probe), and what to remember now.
func faultsFor(r result, prev map[string]tracked) ([]*hwhealv1.Fault, map[string]tracked) {
	if r.rep == nil || r.rep.Standby {
		return nil, prev
	}
	now := map[string]tracked{}
	byClass := map[string][]smart.Finding{}
	changed := map[string][]string{} // class -> why it is raised again
	for _, f := range smart.Assess(r.rep) {
		class := faultClass(f)
		if class == "" {
			continue
		}
		t := track(f, r.rep)
		cond := condition(f)
		if p, ok := now[cond]; ok && !t.worse(p) {
			t = p // two codes of one condition in a reading: keep the worse
		}
		now[cond] = t
		byClass[class] = append(byClass[class], f)
		p, seen := prev[cond]
		switch {
		case !seen:
			changed[class] = append(changed[class], "")
		case t.worse(p):
			changed[class] = append(changed[class], fmt.Sprintf("%s was %d", f.Code, p.level))
		}
	}
	if len(changed) == 0 {
		return nil, now
	}
	obsSamples := map[string]float64{}
	for _, s := range protoSamples(smart.Samples(r.rep)) {
		obsSamples[s.GetName()] = s.GetValue()
	}
	p := part(r.disk, r.rep)
	var out []*hwhealv1.Fault
	for _, class := range slices.Sorted(maps.Keys(changed)) {
		fs := byClass[class]
		sev := smart.SeverityInfo
		var codes, details []string
		names := map[string]bool{}
		for _, f := range fs {
			sev = max(sev, f.Severity)
			codes = append(codes, f.Code)
			details = append(details, f.Detail)
			for _, n := range evidenceSamples(f) {
				names[n] = true
			}
		}
		ev := &hwhealv1.Evidence{Captures: map[string]string{
			"findings": strings.Join(codes, " "),
			"device":   r.rep.Device,
			"reader":   r.reader,
		}}
		if was := slices.DeleteFunc(slices.Clone(changed[class]), func(s string) bool { return s == "" }); len(was) > 0 {
			ev.Captures["previous"] = strings.Join(was, ", ")
		}
		for _, n := range slices.Sorted(maps.Keys(names)) {
			if v, ok := obsSamples[n]; ok {
				ev.Samples = append(ev.Samples, &hwhealv1.Sample{Name: n, Value: v})
			}
		}
		summary := fmt.Sprintf("%s: %s", r.disk.Name, strings.Join(details, "; "))
		if len(summary) > 1000 {
			summary = summary[:1000] + "..."
		}
		out = append(out, &hwhealv1.Fault{
			FaultClass: class,
			Severity:   severity(sev),
			Part:       p,
			Rule:       "smart/" + codes[0],
			Time:       timestamppb.New(r.at),
			Summary:    summary,
			Evidence:   ev,
		})
	}
	return out, now
}

// evidenceSamples names the observation samples that show a finding.
func evidenceSamples(f smart.Finding) []string {
	if f.Attribute != 0 {
		out := []string{smart.AttrSample(f.Attribute, "value"), smart.AttrSample(f.Attribute, "worst"),
			smart.AttrSample(f.Attribute, "thresh"), smart.AttrSample(f.Attribute, "raw")}
		switch f.Attribute {
		case smart.AttrReallocatedSectors:
			out = append(out, SampleATAReallocated)
		case smart.AttrReportedUncorrect:
			out = append(out, SampleATAReportedUncorrect)
		case smart.AttrCommandTimeout:
			out = append(out, SampleATACommandTimeout)
		case smart.AttrPendingSectors:
			out = append(out, SampleATAPending)
		case smart.AttrOfflineUncorrectable:
			out = append(out, SampleATAOfflineUncorrectable)
		}
		return out
	}
	switch {
	case f.Code == smart.CodeOverallFailed:
		return []string{SampleSmartPassed}
	case f.Code == smart.CodeNVMeCriticalWarning+".spare", f.Code == smart.CodeNVMeSpareBelow:
		return []string{SampleNVMeCriticalWarning, SampleNVMeAvailableSpare, SampleNVMeAvailableSpareThresh}
	case f.Code == smart.CodeNVMeCriticalWarning+".temperature":
		return []string{SampleNVMeCriticalWarning, SampleTemperature, SampleNVMeWarningTempMinutes, SampleNVMeCriticalTempMinutes}
	case strings.HasPrefix(f.Code, smart.CodeNVMeCriticalWarning+"."):
		return []string{SampleNVMeCriticalWarning, SampleNVMeMediaErrors, SampleNVMePercentageUsed}
	case f.Code == smart.CodeNVMePercentageUsed:
		return []string{SampleNVMePercentageUsed, SampleNVMeAvailableSpare}
	case f.Code == smart.CodeNVMeMediaErrors:
		return []string{SampleNVMeMediaErrors, SampleNVMeErrorLogEntries}
	case f.Code == smart.CodeSCSIGrownDefects:
		return []string{SampleSCSIGrownDefects}
	case f.Code == smart.CodeSCSIUncorrectedErrors:
		return []string{SampleSCSIUncorrectedErrors}
	}
	return nil
}

func severity(s smart.Severity) hwhealv1.Severity {
	switch s {
	case smart.SeverityCritical:
		return hwhealv1.Severity_SEVERITY_CRITICAL
	case smart.SeverityWarning:
		return hwhealv1.Severity_SEVERITY_WARNING
	}
	return hwhealv1.Severity_SEVERITY_INFO
}
