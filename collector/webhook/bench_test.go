package webhook

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/collector/store/sqlite"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func benchEvent() *hwhealv1.Event {
	ev := faultEvent(evOpened, "node-0042", "disk.media", sevCritical)
	ev.Id = 123456
	ev.Time = timestamppb.New(t0)
	ev.Fault.Summary = "critical medium error on sda"
	ev.Fault.Evidence = &hwhealv1.Evidence{
		KernelLog: &hwhealv1.KernelLogRecord{Message: "blk_update_request: critical medium error, dev sda, sector 123456 op 0x0:(READ)"},
		Captures:  map[string]string{"device": "sda", "sector": "123456"},
	}
	return ev
}

// BenchmarkEncode is the CloudEvent envelope; the baseline is protojson
// alone, which every event pays anyway.
func BenchmarkEncode(b *testing.B) {
	ev := benchEvent()
	b.Run("baseline-protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dataJSON.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cloudevent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(ev, DefaultSourceURI); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDispatch is events delivered per second to a local receiver
// through the whole dispatcher (log read, filter, encode, POST, cursor);
// the baseline POSTs the same pre-encoded body in a loop on one client.
func BenchmarkDispatch(b *testing.B) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	defer srv.Close()
	body, err := Encode(benchEvent(), DefaultSourceURI)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("baseline-post", func(b *testing.B) {
		client := srv.Client()
		for b.Loop() {
			resp, err := client.Post(srv.URL, ContentType, bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	run := func(b *testing.B, src Source, add func(n int)) {
		got.Store(0)
		add(b.N)
		d, err := New(Config{Targets: []Target{{Name: "bench", URL: srv.URL, Start: StartBeginning}}}, src,
			Options{Client: srv.Client()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.ResetTimer()
		go func() { done <- d.Run(ctx) }()
		for got.Load() < int64(b.N) {
			select {
			case err := <-done:
				b.Fatalf("Run returned %v after %d of %d events", err, got.Load(), b.N)
			case <-time.After(100 * time.Microsecond):
			}
		}
		b.StopTimer()
		cancel()
		<-done
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}

	b.Run("dispatcher-memory-log", func(b *testing.B) {
		src := newMemSource()
		run(b, src, func(n int) {
			for range n {
				ev := benchEvent()
				ev.Id = 0 // numbered by add
				src.add(ev)
			}
		})
	})
	b.Run("dispatcher-sqlite-log", func(b *testing.B) {
		st := openStoreB(b, filepath.Join(b.TempDir(), "hwheal.db"))
		defer st.Close()
		run(b, st, func(n int) {
			ctx := context.Background()
			if _, err := st.Hello(ctx, store.Hello{Node: "n1", StreamID: "s1", BootID: "b"}); err != nil {
				b.Fatal(err)
			}
			// Each report of a new part opens a fault: one event each
			// (plus the health change of the first).
			var batch []*hwhealv1.Report
			for i := range n {
				batch = append(batch, diskFault(uint64(i+1), "disk.media", sevWarning, "sd"+strconv.Itoa(i), t0))
			}
			if _, err := st.Apply(ctx, []store.Batch{{Node: "n1", StreamID: "s1", Reports: batch, Received: t0}}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

func openStoreB(b *testing.B, path string) *sqlite.Store {
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return st
}
