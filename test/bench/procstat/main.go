// Command procstat measures the CPU time and peak resident memory of sides
// of running processes (each with its descendants) over a window, scraping
// Prometheus endpoints meanwhile as a real deployment would, and prints a
// table and the ratios between two sides. The scrapes are its own work,
// counted on no side. scripts/bench-agent.sh runs it.
//
//	procstat --duration 10m --side agent=PID --side stack=PID,PID,PID \
//	  --scrape http://127.0.0.1:9100/metrics --compare agent/stack
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hwheal/hwheal/test/bench"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "procstat:", err)
		os.Exit(1)
	}
}

func run() error {
	var sideArgs, scrapes list
	duration := flag.Duration("duration", 10*time.Minute, "length of the measured window")
	interval := flag.Duration("interval", time.Second, "how often to sample /proc")
	scrapeEvery := flag.Duration("scrape-every", 15*time.Second, "interval between scrapes of each --scrape URL")
	compare := flag.String("compare", "", "a/b: print side a's figures as a ratio of side b's")
	maxCPURatio := flag.Float64("max-cpu-ratio", 0, "target: a's CPU at most this fraction of b's (0: none)")
	maxRSSMB := flag.Float64("max-rss-mb", 0, "target: a's peak RSS under this many MiB (0: none)")
	procRoot := flag.String("proc", "/proc", "procfs mount")
	flag.Var(&sideArgs, "side", "name=pid[,pid...] (repeatable): processes measured together with their descendants")
	flag.Var(&scrapes, "scrape", "URL to scrape every --scrape-every during the window (repeatable); waited for before it starts")
	flag.Parse()
	sides, err := bench.ParseSides(sideArgs)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	readyCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	for _, u := range scrapes {
		if err := bench.WaitReady(readyCtx, u); err != nil {
			cancel()
			return err
		}
	}
	cancel()

	fs := bench.ProcFS{Root: *procRoot}
	m, err := bench.NewMeter(fs, sides)
	if err != nil {
		return err
	}
	fmt.Printf("measuring %s for %s (sample every %s)", sideNames(sides), *duration, *interval)
	if len(scrapes) > 0 {
		fmt.Printf("; scraping %s every %s, counted on no side", strings.Join(scrapes, " and "), *scrapeEvery)
	}
	fmt.Println()

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	scraper := &bench.Scraper{URLs: scrapes, Every: *scrapeEvery}
	scraped := make(chan struct{})
	go func() { defer close(scraped); scraper.Run(sctx) }()

	deadline := time.Now().Add(*duration)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	var interrupted bool
loop:
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			interrupted = true
			break loop
		case <-tick.C:
		case <-time.After(time.Until(deadline)):
		}
		if err := m.Sample(); err != nil {
			return err
		}
	}
	m.Sample()
	scancel()
	<-scraped

	r := m.Result()
	fmt.Println()
	if err := r.WriteTable(os.Stdout); err != nil {
		return err
	}
	for _, st := range scraper.Stats() {
		fmt.Printf("scraped %s: %d times, %d failed, %d series, %.1f KiB a scrape, slowest %s\n",
			st.URL, st.Scrapes, st.Fails, st.Series, float64(st.Bytes)/1024/float64(max(1, st.Scrapes+st.Fails)),
			st.MaxDuration.Round(time.Millisecond))
		if st.LastErr != nil {
			fmt.Printf("  last error: %v\n", st.LastErr)
		}
	}
	for _, s := range r.Sides {
		for _, p := range s.Procs {
			if p.Root && p.Exited {
				fmt.Printf("WARNING: %s process %s (pid %d) exited during the window\n", s.Name, p.Comm, p.PID)
			}
		}
	}
	if *compare != "" {
		a, b, ok := strings.Cut(*compare, "/")
		if !ok {
			return fmt.Errorf("compare %q: want a/b", *compare)
		}
		ratio, err := r.Compare(a, b)
		if err != nil {
			return err
		}
		fmt.Printf("\n%s/%s: CPU %.3f, peak RSS %.3f, max sampled RSS %.3f\n", a, b, ratio.CPU, ratio.PeakRSS, ratio.MaxRSS)
		if *maxCPURatio > 0 {
			fmt.Printf("target %s CPU <= %.2f x %s: %s (%.3f)\n", a, *maxCPURatio, b, verdict(ratio.CPU <= *maxCPURatio), ratio.CPU)
		}
		if *maxRSSMB > 0 {
			fmt.Printf("target %s peak RSS < %.0f MB: %s (%.1f MB)\n", a, *maxRSSMB, verdict(bench.MB(ratio.APeakRSS) < *maxRSSMB), bench.MB(ratio.APeakRSS))
		}
	}
	if interrupted {
		return errors.New("interrupted: the window is shorter than asked")
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func sideNames(sides []bench.Side) string {
	var s []string
	for _, sd := range sides {
		s = append(s, fmt.Sprintf("%s %v", sd.Name, sd.PIDs))
	}
	return strings.Join(s, ", ")
}
