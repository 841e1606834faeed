package smart

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// sampleMap is a reading's samples by name; a name sent twice fails.
func sampleMap(t *testing.T, ss []Sample) map[string]float64 {
	t.Helper()
	m := make(map[string]float64, len(ss))
	for _, s := range ss {
		if _, dup := m[s.Name]; dup {
			t.Fatalf("sample %s sent twice", s.Name)
		}
		m[s.Name] = s.Value
	}
	return m
}

// shows tells whether a reading's samples carry finding f, the way a rule
// over observations has to see it; "" when they do, else why not.
func shows(f Finding, s map[string]float64) string {
	has := func(name string, ok func(v float64) bool) string {
		v, found := s[name]
		switch {
		case !found:
			return "no sample " + name
		case !ok(v):
			return fmt.Sprintf("%s = %v", name, v)
		}
		return ""
	}
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
	equals := func(n uint64) func(float64) bool { return func(v float64) bool { return v == float64(n) } }
	switch f.Code {
	case CodeOverallFailed:
		return has(SampleSmartPassed, equals(0))
	case CodeATAPrefailFailingNow:
		return has(SampleATAPrefailFailingNow, atLeast(1))
	case CodeATAPrefailFailedPast:
		return has(SampleATAPrefailFailedPast, atLeast(1))
	case CodeATAOldAgeFailingNow:
		thresh := s[AttrSample(f.Attribute, "thresh")]
		return has(AttrSample(f.Attribute, "value"), func(v float64) bool { return thresh > 0 && v <= thresh })
	case CodeATAReallocated:
		return has(SampleATAReallocated, equals(f.Value))
	case CodeATAReportedUncorrect:
		return has(SampleATAReportedUncorrect, equals(f.Value))
	case CodeATAPending:
		return has(SampleATAPending, equals(f.Value))
	case CodeATAOfflineUncorrect:
		return has(SampleATAOfflineUncorrectable, equals(f.Value))
	case CodeATASelfTestFailed:
		return has(SampleATASelfTestErrors, equals(f.Value))
	case CodeATAErrorLogUNC:
		return has(SampleATAErrorLogLastUNC, atLeast(1))
	case CodeNVMeSpareBelow:
		return has(SampleNVMeAvailableSpare, func(v float64) bool { return v < s[SampleNVMeAvailableSpareThresh] })
	case CodeNVMePercentageUsed:
		return has(SampleNVMePercentageUsed, atLeast(100))
	case CodeNVMeMediaErrors:
		return has(SampleNVMeMediaErrors, equals(f.Value))
	case CodeSCSIGrownDefects:
		return has(SampleSCSIGrownDefects, equals(f.Value))
	case CodeSCSIUncorrectedErrors:
		return has(SampleSCSIUncorrectedErrors, equals(f.Value))
	}
	if strings.HasPrefix(f.Code, CodeNVMeCriticalWarning+".") {
		return has(SampleNVMeCriticalWarning, equals(f.Value))
	}
	return "no sample is known to show " + f.Code
}

// TestSamplesShowFindings: every warning or critical finding Assess makes
// of a real drive (the smartctl corpus and libblockdev's raw pages) is in
// the samples the agent and the offline replay send, so that the
// collector's rules, which see only samples, can judge it; and the
// pre-failure verdict samples agree with the findings both ways.
func TestSamplesShowFindings(t *testing.T) {
	type reading struct {
		name string
		rep  *Report
	}
	var readings []reading
	for _, p := range corpusJSONFiles(t, corpusDir) {
		rep, err := parseFile(t, p)
		if err != nil || rep.Standby {
			continue
		}
		readings = append(readings, reading{strings.TrimPrefix(filepath.ToSlash(p), corpusDir+"/"), rep})
	}
	blobs, _ := filepath.Glob(filepath.Join(blobDir, "*.bin"))
	for _, p := range blobs {
		b := readBlob(t, p)
		h, err := ParseATASmartPages(b.data, b.thresholds)
		if err != nil {
			t.Fatal(err)
		}
		readings = append(readings, reading{filepath.Base(p), &Report{Protocol: ProtocolATA, OverallPassed: b.statusGood, ATA: h}})
	}
	if len(readings) < 100 {
		t.Fatalf("%d readings, want the whole corpus", len(readings))
	}
	shown := map[string]int{}
	for _, r := range readings {
		t.Run(r.name, func(t *testing.T) {
			s := sampleMap(t, Samples(r.rep))
			var now, past float64
			for _, f := range Assess(r.rep) {
				switch f.Code {
				case CodeATAPrefailFailingNow:
					now++
				case CodeATAPrefailFailedPast:
					past++
				}
				if f.Severity < SeverityWarning {
					continue
				}
				if why := shows(f, s); why != "" {
					t.Errorf("%s (%s): %s", f.Code, f.Detail, why)
				}
				shown[strings.SplitN(f.Code, ".", 3)[0]+"."+strings.SplitN(f.Code, ".", 3)[1]]++
			}
			if r.rep.ATA != nil && len(r.rep.ATA.Attributes) > 0 &&
				(s[SampleATAPrefailFailingNow] != now || s[SampleATAPrefailFailedPast] != past) {
				t.Errorf("pre-failure failing now %v, in the past %v; Assess has %v and %v",
					s[SampleATAPrefailFailingNow], s[SampleATAPrefailFailedPast], now, past)
			}
		})
	}
	// The corpus must keep exercising what the new samples are for.
	for _, code := range []string{CodeOverallFailed, CodeATAPrefailFailingNow, CodeATAPrefailFailedPast,
		CodeATASelfTestFailed, CodeATAErrorLogUNC, CodeNVMeCriticalWarning + ".volatile_backup"} {
		parts := strings.SplitN(code, ".", 3)
		if shown[parts[0]+"."+parts[1]] == 0 {
			t.Errorf("no real drive in the corpus has a %s finding", code)
		}
	}
}

// TestVerdictSamples checks the samples made for the drive's own verdicts
// on real drives whose values are known from their files.
func TestVerdictSamples(t *testing.T) {
	maxtor := readBlob(t, filepath.Join(blobDir, "Maxtor_6Y120P0.bin"))
	mh, err := ParseATASmartPages(maxtor.data, maxtor.thresholds)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rep  *Report
		want map[string]float64 // -1: not sent
	}{
		// SMART failed, attribute 5 (pre-failure) FAILING_NOW, three
		// failed self-tests not outdated, 56 logged errors, all IDNF.
		{"smart-fail2", mustParse(t, filepath.Join(corpusDir, "scrutiny/webapp/backend/pkg/models/testdata/smart-fail2.json")),
			map[string]float64{SampleATAPrefailFailingNow: 1, SampleATAPrefailFailedPast: 0, SampleATASelfTestErrors: 3, SampleATAErrorLogLastUNC: 0}},
		// Two logged errors, both UNC: numbers 1 and 2.
		{"Toshiba MG05ACA800E", mustParse(t, filepath.Join(corpusDir, "smartctl_exporter/testdata/sat-Toshiba_MG05ACA..._Enterprise_Capacity_HDD-TOSHIBA_MG05ACA800E-sdw.json")),
			map[string]float64{SampleATAPrefailFailingNow: 0, SampleATAPrefailFailedPast: 0, SampleATASelfTestErrors: -1, SampleATAErrorLogLastUNC: 2}},
		// Attribute 5's worst (1) went below its threshold (63) once; its
		// value is above it now. Raw pages: no logs.
		{"Maxtor 6Y120P0", &Report{Protocol: ProtocolATA, OverallPassed: maxtor.statusGood, ATA: mh},
			map[string]float64{SampleATAPrefailFailingNow: 0, SampleATAPrefailFailedPast: 1, SampleATASelfTestErrors: -1, SampleATAErrorLogLastUNC: -1}},
		// NVMe: none of the ATA verdicts.
		{"NVMe", mustParse(t, filepath.Join(corpusDir, "smartctl_exporter/testdata/nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json")),
			map[string]float64{SampleATAPrefailFailingNow: -1, SampleATAPrefailFailedPast: -1, SampleATASelfTestErrors: -1, SampleATAErrorLogLastUNC: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sampleMap(t, Samples(tc.rep))
			for name, want := range tc.want {
				got, ok := s[name]
				switch {
				case want < 0 && ok:
					t.Errorf("%s = %v, want none", name, got)
				case want >= 0 && (!ok || got != want):
					t.Errorf("%s = %v (sent %v), want %v", name, got, ok, want)
				}
			}
		})
	}
}
