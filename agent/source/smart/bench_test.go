package smart

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hwheal/hwheal/pkg/smart"
)

// BenchmarkReadNativeATA is one drive read natively (libblockdev's WD20EARS
// through the SAT seam): the five commands' decoding, IDENTIFY and the
// SMART pages parsed, and the report turned into samples. The kernel's
// share (five SG_IO round trips to the drive) is not in it.
func BenchmarkReadNativeATA(b *testing.B) {
	drive := newPageDrive(readBlob(b, filepath.Join(blobDir, "WDC_WD20EARS-00MVWB0.bin")))
	r := nativeFor(map[string]*pageDrive{"/dev/sda": drive})
	d := Disk{Name: "sda", Protocol: smart.ProtocolATA, Path: "/dev/sda"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		drive.log = drive.log[:0]
		rep, err := r.Read(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		_ = protoSamples(smart.Samples(rep))
	}
}

// BenchmarkReadSmartctlATA is the baseline: the same drive read by the
// real smartctl (its SG_IO answered from the same pages by
// testdata/satshim.c), the JSON parsed and turned into samples: what a
// collector that runs smartctl per disk pays, minus the drive's time.
func BenchmarkReadSmartctlATA(b *testing.B) {
	lookSmartctl(b)
	sd := newShimDrive(b, shim(b), readBlob(b, filepath.Join(blobDir, "WDC_WD20EARS-00MVWB0.bin")))
	r := NewSmartctlReader("")
	r.env = sd.env[:len(sd.env)-1] // no command log
	d := Disk{Name: "sda", Protocol: smart.ProtocolATA, Path: sd.dev, BlockPath: sd.dev}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rep, err := r.Read(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		_ = protoSamples(smart.Samples(rep))
	}
}

// BenchmarkInterval is the source's own cost for one interval over 16
// drives whose readers answer at once (recorded smartctl reports): the
// parallel reads and the observations.
func BenchmarkInterval(b *testing.B) {
	r := newFakeReader(PreferSmartctl)
	var disks []sysDisk
	files := []string{"sat-HGST_Ultrastar_7K6000-HGST_HUS726020ALE614-sda.json", "smart-fail2.json",
		"nvme-null-Samsung_SSD_970_EVO_Plus_250GB-nvme0.json", "nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json"}
	reps := make([]*smart.Report, len(files))
	for i, f := range files {
		reps[i] = parseJSONFile(b, filepath.Join(jsonDir, f))
	}
	for i := range 16 {
		name := "sd" + string(rune('a'+i))
		disks = append(disks, sataDisk(name, i))
		r.set(name, reps[i%len(reps)])
	}
	root := diskTree(b, disks...)
	s := New(Config{Root: root, Readers: []Reader{r}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rd := s.read(ctx)
		_ = rd.observations()
	}
}
