package smart

import (
	"context"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hwheal/hwheal/pkg/smart"
)

// TestLiveSamplesAreReadingSamples reads real smartctl JSON files through
// the live source (reader seam, sysfs tree) and checks that what it sends
// is exactly pkg/smart.ReadingSamples of the same report: the function
// `hwhealctl rules replay` builds a saved file's observation with, so a
// replayed drive meets the rules with the samples a live one would.
func TestLiveSamplesAreReadingSamples(t *testing.T) {
	for _, file := range []string{
		"sat-HGST_Ultrastar_7K6000-HGST_HUS726020ALE614-sda.json",
		"smart-fail2.json",
		"nvme-null-Samsung_SSD_970_EVO_Plus_250GB-nvme0.json",
		"SEAGATE_ST373453LC_27.json",
		"MB0500EBNCR_13.json",
	} {
		t.Run(file, func(t *testing.T) {
			rep := parseJSONFile(t, filepath.Join(jsonDir, file))
			r := newFakeReader(PreferSmartctl)
			r.set("sda", rep)
			s := New(Config{Root: diskTree(t, sataDisk("sda", 1)), Readers: []Reader{r}})
			obs := s.read(context.Background()).observations()
			if len(obs) != 1 {
				t.Fatalf("%d live observations", len(obs))
			}
			live := obs[0]
			want := protoSamples(smart.ReadingSamples(parseJSONFile(t, filepath.Join(jsonDir, file)), true))
			if len(want) < 5 || len(live.GetSamples()) != len(want) {
				t.Fatalf("%d live samples, ReadingSamples %d", len(live.GetSamples()), len(want))
			}
			for i, s := range want {
				if !proto.Equal(s, live.GetSamples()[i]) {
					t.Errorf("sample %d: live %v, ReadingSamples %v", i, live.GetSamples()[i], s)
				}
			}
			if live.GetSource() != smart.ObservationSource {
				t.Errorf("source %q", live.GetSource())
			}
		})
	}
	t.Run("standby", func(t *testing.T) {
		got := map[string]float64{}
		for _, s := range smart.ReadingSamples(&smart.Report{Standby: true, PowerMode: "STANDBY"}, true) {
			got[s.Name] = s.Value
		}
		if len(got) != 2 || got[smart.SampleStandby] != 1 || got[smart.SampleReadError] != 0 {
			t.Errorf("standby samples %v", got)
		}
	})
}
