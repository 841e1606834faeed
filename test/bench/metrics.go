package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Metrics maps a series, as written in the text exposition format
// (`name{label="value",...}`), to its value.
type Metrics map[string]float64

// ParseMetrics parses Prometheus' text exposition format: comments and
// blank lines are skipped, every other line is a series and a value with
// an optional timestamp.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		series, rest, err := cutSeries(line)
		if err != nil {
			return m, fmt.Errorf("metrics line %d: %w", n, err)
		}
		f := strings.Fields(rest)
		if len(f) < 1 || len(f) > 2 {
			return m, fmt.Errorf("metrics line %d: want a value and an optional timestamp after %s", n, series)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return m, fmt.Errorf("metrics line %d: value of %s: %w", n, series, err)
		}
		m[series] = v
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("read metrics: %w", err)
	}
	return m, nil
}

// cutSeries splits a sample line after its series: the name and, when
// present, the label set, whose quoted values may hold spaces, braces and
// escaped quotes.
func cutSeries(line string) (series, rest string, err error) {
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return "", "", errors.New("no series name and value")
	}
	if line[i] != '{' {
		return line[:i], line[i:], nil
	}
	inQuote := false
	for j := i + 1; j < len(line); j++ {
		switch c := line[j]; {
		case inQuote && c == '\\':
			j++ // the escaped character
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return line[:j+1], line[j+1:], nil
		}
	}
	return "", "", errors.New("unterminated label set")
}

// Name returns the metric name of a series.
func Name(series string) string {
	if i := strings.IndexByte(series, '{'); i >= 0 {
		return series[:i]
	}
	return series
}

// Delta returns after minus before for every series of after; a series
// absent before counts from 0.
func Delta(before, after Metrics) Metrics {
	d := Metrics{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// Fetch reads and parses one /metrics page; a nil c is a client with a 10 s
// timeout.
func Fetch(ctx context.Context, c *http.Client, url string) (Metrics, int64, error) {
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, 0, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	cr := &countingReader{r: resp.Body}
	m, err := ParseMetrics(cr)
	if err != nil {
		return nil, cr.n, fmt.Errorf("scrape %s: %w", url, err)
	}
	return m, cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Scraper scrapes endpoints at a fixed interval, as Prometheus does, and
// counts what it got.
type Scraper struct {
	URLs   []string
	Every  time.Duration
	Client *http.Client

	mu    sync.Mutex
	stats map[string]*ScrapeStats
}

// ScrapeStats counts the scrapes of one endpoint.
type ScrapeStats struct {
	URL            string
	Scrapes, Fails int
	Bytes          int64
	Series         int // series on the last good page
	MaxDuration    time.Duration
	LastErr        error
}

// Run scrapes every endpoint now and then every Every until ctx is done.
func (s *Scraper) Run(ctx context.Context) {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		s.scrapeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Scraper) scrapeAll(ctx context.Context) {
	for _, u := range s.URLs {
		t0 := time.Now()
		m, n, err := Fetch(ctx, s.Client, u)
		d := time.Since(t0)
		if ctx.Err() != nil {
			return // cut short by the end of the run: not a failure
		}
		s.mu.Lock()
		if s.stats == nil {
			s.stats = map[string]*ScrapeStats{}
		}
		st := s.stats[u]
		if st == nil {
			st = &ScrapeStats{URL: u}
			s.stats[u] = st
		}
		st.Bytes += n
		st.MaxDuration = max(st.MaxDuration, d)
		if err != nil {
			st.Fails++
			st.LastErr = err
		} else {
			st.Scrapes++
			st.Series = len(m)
		}
		s.mu.Unlock()
	}
}

// Stats returns the counts so far, in the order of URLs.
func (s *Scraper) Stats() []ScrapeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ScrapeStats, 0, len(s.URLs))
	for _, u := range s.URLs {
		if st := s.stats[u]; st != nil {
			out = append(out, *st)
		} else {
			out = append(out, ScrapeStats{URL: u})
		}
	}
	return out
}

// WaitReady polls url until it answers 200 or ctx is done.
func WaitReady(ctx context.Context, url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	var err error
	for {
		if _, _, err = Fetch(ctx, c, url); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
