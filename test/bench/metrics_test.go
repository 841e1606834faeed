package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// agentPage is an excerpt of the agent's real /metrics page.
const agentPage = `# HELP hwheal_agent_kmsg_records_total Kernel log records read.
# TYPE hwheal_agent_kmsg_records_total counter
hwheal_agent_kmsg_records_total 101093
# HELP hwheal_agent_kmsg_skipped_total Kernel log lines skipped, by reason.
# TYPE hwheal_agent_kmsg_skipped_total counter
hwheal_agent_kmsg_skipped_total{reason="malformed"} 3
hwheal_agent_kmsg_skipped_total{reason="too long"} 1
hwheal_agent_spool_bytes 388048
go_gc_duration_seconds{quantile="0.5"} 5.2731e-05
go_memstats_alloc_bytes 6.3e+06 1700000000000
weird{path="a } b",q="say \"hi\" {x}"} +Inf
`

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(agentPage))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"hwheal_agent_kmsg_records_total":                     101093,
		`hwheal_agent_kmsg_skipped_total{reason="malformed"}`: 3,
		`hwheal_agent_kmsg_skipped_total{reason="too long"}`:  1,
		"hwheal_agent_spool_bytes":                            388048,
		`go_gc_duration_seconds{quantile="0.5"}`:              5.2731e-05,
		"go_memstats_alloc_bytes":                             6.3e6,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if v, ok := m[`weird{path="a } b",q="say \"hi\" {x}"}`]; !ok || v < 1e308 {
		t.Errorf("series with braces and escaped quotes in its labels: %v, %v; have %v", v, ok, m)
	}
	if len(m) != len(want)+1 {
		t.Errorf("%d series, want %d", len(m), len(want)+1)
	}
	if Name(`hwheal_agent_kmsg_skipped_total{reason="x"}`) != "hwheal_agent_kmsg_skipped_total" {
		t.Error("Name kept the labels")
	}
	d := Delta(Metrics{"a": 1, "b": 5}, Metrics{"a": 4, "b": 5, "c": 2})
	if d["a"] != 3 || d["b"] != 0 || d["c"] != 2 {
		t.Errorf("Delta = %v", d)
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no value":         "metric\n",
		"bad value":        "metric x\n",
		"unterminated set": `metric{a="b" 1` + "\n",
		"too many fields":  "metric 1 2 3\n",
		"no name":          "{a=\"b\"} 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseMetrics(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
				t.Errorf("ParseMetrics(%q) = %v, want an error naming line 1", in, err)
			}
		})
	}
}

// TestScraperAndFetch scrapes a real HTTP server: every endpoint is
// scraped at the start and after each interval, failures are counted,
// and a scrape cut short by the end of the run is not a failure.
func TestScraperAndFetch(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		fmt.Fprint(w, agentPage)
	}))
	defer srv.Close()
	good, bad := srv.URL+"/metrics", srv.URL+"/nothing"

	ctx := context.Background()
	m, n, err := Fetch(ctx, nil, good)
	if err != nil || n != int64(len(agentPage)) || m["hwheal_agent_spool_bytes"] != 388048 {
		t.Fatalf("Fetch = %d bytes, %v, %v", n, err, m)
	}
	if _, _, err := Fetch(ctx, nil, bad); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Fetch of a 404: %v", err)
	}
	if err := WaitReady(ctx, good); err != nil {
		t.Errorf("WaitReady: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := WaitReady(short, bad); err == nil {
		t.Error("WaitReady of a 404 returned ready")
	}

	s := &Scraper{URLs: []string{good, bad}, Every: time.Hour}
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan struct{})
	before := hits.Load()
	go func() { defer close(done); s.Run(sctx) }()
	for hits.Load() == before {
		time.Sleep(time.Millisecond)
	}
	// The first round is done once the bad URL has been tried too.
	for s.Stats()[1].Fails == 0 {
		time.Sleep(time.Millisecond)
	}
	scancel()
	<-done
	st := s.Stats()
	if st[0].Scrapes != 1 || st[0].Fails != 0 || st[0].Series != 7 || st[0].Bytes != int64(len(agentPage)) {
		t.Errorf("good endpoint: %+v", st[0])
	}
	if st[1].Scrapes != 0 || st[1].Fails != 1 || st[1].LastErr == nil {
		t.Errorf("bad endpoint: %+v", st[1])
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add(agentPage)
	f.Add("a{b=\"}\"} 1\n")
	f.Add("a{b=\"\\\"\"} NaN 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseMetrics(strings.NewReader(in))
		if err != nil {
			return
		}
		for k := range m {
			if k == "" || strings.ContainsAny(Name(k), " \t") {
				t.Errorf("series %q", k)
			}
		}
	})
}
