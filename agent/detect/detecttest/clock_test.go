package detecttest

import (
	"fmt"
	"testing"
	"time"
)

// TestClock checks what the Merger's tests rely on: timers fire from
// Advance in deadline order with the clock at their deadline, a stopped
// timer does not fire, and a timer started by a callback fires in the same
// Advance when it falls due within it.
func TestClock(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(start)
	var log []string
	note := func(name string) func() {
		return func() { log = append(log, fmt.Sprintf("%s@%v", name, c.Now().Sub(start))) }
	}
	c.AfterFunc(30*time.Millisecond, note("c"))
	c.AfterFunc(10*time.Millisecond, note("a"))
	stopped := c.AfterFunc(20*time.Millisecond, note("never"))
	c.AfterFunc(10*time.Millisecond, func() {
		note("b")()
		c.AfterFunc(5*time.Millisecond, note("b2"))
		c.AfterFunc(time.Hour, note("late"))
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop should report true once, then false")
	}
	c.Advance(40 * time.Millisecond)
	if got, want := fmt.Sprint(log), "[a@10ms b@10ms b2@15ms c@30ms]"; got != want {
		t.Errorf("fired %s, want %s", got, want)
	}
	if got := c.Now().Sub(start); got != 40*time.Millisecond {
		t.Errorf("Now after Advance = +%v, want +40ms", got)
	}
	if c.Pending() != 1 {
		t.Errorf("Pending = %d, want 1 (the hour-long timer)", c.Pending())
	}
}
