package bench

import (
	"context"
	"io"
	"time"
)

// FloodConfig is a paced flood of records.
type FloodConfig struct {
	// Rate is records per second.
	Rate float64
	// Duration is how long the flood lasts.
	Duration time.Duration
	// Record returns the i-th record (from 0); each is one write. The
	// slice is not kept after the write.
	Record func(i int64) []byte
	// Marks are records written once each, alone, at their time into the
	// flood (in order of At): the real faults whose fate is followed.
	Marks []Mark
	// Tick is how long the writer sleeps between bursts of due records;
	// 0 means 1 ms.
	Tick time.Duration
}

// Mark is a record written at a set time into a flood.
type Mark struct {
	At     time.Duration
	Record []byte
}

// MarkResult is when a mark was written and how that went.
type MarkResult struct {
	// At is when its write began: the start of its latency. Zero if the
	// flood ended before its time.
	At    time.Time
	Write time.Duration
	Err   error
}

// FloodResult is what a flood wrote.
type FloodResult struct {
	Start   time.Time
	Elapsed time.Duration
	// Written counts the records written whole; Errors the writes that
	// failed, FirstErr the first failure.
	Written, Errors int64
	FirstErr        error
	// MaxWrite is the slowest write of a flood record.
	MaxWrite time.Duration
	// Marks are in the order of FloodConfig.Marks.
	Marks []MarkResult
}

// Rate is the achieved rate in records per second.
func (r FloodResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Written) / r.Elapsed.Seconds()
}

// Due is how many records of a flood at rate are due after elapsed.
func Due(rate float64, elapsed time.Duration) int64 {
	if rate <= 0 || elapsed <= 0 {
		return 0
	}
	return int64(rate * elapsed.Seconds())
}

// Flood writes cfg's records to w, one write each, keeping to cfg.Rate:
// after every sleep it writes the records that fell due meanwhile, so a
// late wake-up is caught up, not lost. It stops after cfg.Duration or when
// ctx is done.
func Flood(ctx context.Context, w io.Writer, cfg FloodConfig) FloodResult {
	tick := cfg.Tick
	if tick <= 0 {
		tick = time.Millisecond
	}
	r := FloodResult{Start: time.Now(), Marks: make([]MarkResult, len(cfg.Marks))}
	var i int64
	next := 0 // the next mark
	for ctx.Err() == nil {
		elapsed := time.Since(r.Start)
		if elapsed >= cfg.Duration {
			break
		}
		for next < len(cfg.Marks) && elapsed >= cfg.Marks[next].At {
			m := &r.Marks[next]
			m.At = time.Now()
			_, m.Err = w.Write(cfg.Marks[next].Record)
			m.Write = time.Since(m.At)
			next++
		}
		for due := Due(cfg.Rate, elapsed); i < due; i++ {
			t0 := time.Now()
			if _, err := w.Write(cfg.Record(i)); err != nil {
				r.Errors++
				if r.FirstErr == nil {
					r.FirstErr = err
				}
				continue
			}
			r.MaxWrite = max(r.MaxWrite, time.Since(t0))
			r.Written++
		}
		time.Sleep(tick)
	}
	r.Elapsed = time.Since(r.Start)
	return r
}
