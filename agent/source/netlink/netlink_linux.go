package netlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

const (
	// updateQueue lets the library's reader keep draining the socket
	// while a burst is handed to the sink, so the kernel's buffer
	// overflows later.
	updateQueue = 256
	// Resubscription backoff: doubled after each failure, back to the
	// minimum after a subscription that delivered for stableAfter.
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 30 * time.Second
	stableAfter = time.Minute
)

// Run subscribes to link events and hands observations and faults to sink
// until ctx is done. The first message of every subscription lists the
// links as they are, so state lost while the source was not subscribed is
// caught up with: a link found in another state than last seen counts as
// one transition. A subscription that cannot be made (a namespace not there
// yet) or that ends (the kernel dropped notifications because the receive
// buffer overflowed) is made again after a backoff (100 ms, doubling to
// 30 s while it keeps failing); each new reason is logged as a warning,
// the same reason again at debug level. Run returns nil on cancellation,
// and the configuration error if there is one.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	if s.invalid != nil {
		return s.invalid
	}
	t := s.newTracker()
	delay := minBackoff
	lastReason := ""
	for {
		started := time.Now()
		delivered, err := s.subscribe(ctx, t, sink)
		if ctx.Err() != nil {
			return nil
		}
		s.failures.Add(1)
		msg := "link subscription failed, retrying"
		if delivered {
			msg = "link events ended, resubscribing"
			// A stream that held for a while broke once (an overflow):
			// catch up soon. One that keeps breaking backs off.
			if time.Since(started) >= stableAfter {
				delay = minBackoff
			}
		}
		level := slog.LevelWarn
		if reason := msg + err.Error(); reason == lastReason {
			level = slog.LevelDebug
		} else {
			lastReason = reason
		}
		s.log.Log(ctx, level, msg, "netns", s.cfg.NetNS, "err", err, "retry_in", delay)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		delay = min(2*delay, maxBackoff)
	}
}

// openNS opens the configured namespace; the handle is None for the
// agent's own.
func (s *Source) openNS() (netns.NsHandle, error) {
	if s.cfg.NetNS == "" {
		return netns.None(), nil
	}
	h, err := netns.GetFromPath(s.cfg.NetNS)
	if err != nil {
		return netns.None(), fmt.Errorf("open network namespace %s: %w", s.cfg.NetNS, err)
	}
	return h, nil
}

func closeNS(ns netns.NsHandle) {
	if ns.IsOpen() {
		ns.Close()
	}
}

// subscribe runs one subscription until ctx is done or the stream ends. It
// reports whether any message arrived, and why the stream ended.
func (s *Source) subscribe(ctx context.Context, t *tracker, sink source.Sink) (delivered bool, err error) {
	ns, err := s.openNS()
	if err != nil {
		return false, err
	}
	// The socket is bound to the namespace once made: the handle is not
	// needed after that.
	defer closeNS(ns)

	ch := make(chan vnl.LinkUpdate, updateQueue)
	done := make(chan struct{})
	var (
		stopping atomic.Bool
		lastErr  atomic.Pointer[error]
	)
	opts := vnl.LinkSubscribeOptions{
		Namespace:         &ns,
		ListExisting:      true,
		ReceiveBufferSize: s.cfg.ReceiveBufferSize,
		// Without force the kernel caps the size at rmem_max, a default
		// sized for the notifications of a few hundred links.
		ReceiveBufferForceSize: s.cfg.ReceiveBufferSize > 0,
		ErrorCallback: func(err error) {
			// Closing the socket on the way out fails the pending read.
			if stopping.Load() {
				return
			}
			lastErr.Store(&err)
			if errors.Is(err, vnl.ErrDumpInterrupted) {
				s.log.Warn("link listing interrupted by changes, some initial states may be stale", "netns", s.cfg.NetNS)
			}
		},
	}
	if err := vnl.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		close(done) // stops the library's closer goroutine if it started one
		return false, fmt.Errorf("subscribe to link events: %w", err)
	}
	s.subscriptions.Add(1)
	s.log.Info("subscribed to link events", "netns", s.cfg.NetNS)
	defer func() {
		// Closing done closes the socket; the reader then fails, closes ch
		// and exits. Draining ch lets it finish a send it is blocked in.
		stopping.Store(true)
		close(done)
		for range ch {
		}
	}()
	for {
		// Checked first: under a flood of messages select would pick the
		// queue as often as ctx, and stopping would wait for it to empty.
		if ctx.Err() != nil {
			return delivered, nil
		}
		select {
		case <-ctx.Done():
			return delivered, nil
		case u, ok := <-ch:
			if !ok {
				cause := errors.New("stream closed")
				if p := lastErr.Load(); p != nil {
					cause = *p
				}
				return delivered, fmt.Errorf("receive link events: %w", cause)
			}
			delivered = true
			s.apply(t, u, sink)
		}
	}
}

// apply hands one link message to the tracker.
func (s *Source) apply(t *tracker, u vnl.LinkUpdate, sink source.Sink) {
	// RTNLGRP_LINK also carries the bridge's per-port messages (family
	// AF_BRIDGE), whose RTM_DELLINK means "left the bridge", not "gone".
	if u.Family != unix.AF_UNSPEC || u.Link == nil || u.Attrs() == nil {
		return
	}
	s.updates.Add(1)
	ls, ok := linkStateOf(u.Link)
	if !ok {
		return
	}
	now := s.cfg.Now()
	if u.Header.Type == unix.RTM_DELLINK {
		t.remove(ls.Index, now, sink)
		return
	}
	if t.update(ls, now, sink) {
		s.transitions.Add(1)
	}
}

// linkStateOf reduces a link to what the tracker keeps; ok is false for
// loopback, which has no hardware.
func linkStateOf(l vnl.Link) (ls linkState, ok bool) {
	a := l.Attrs()
	if a.Flags&net.FlagLoopback != 0 || a.Name == "lo" {
		return linkState{}, false
	}
	ls = linkState{
		Index:   a.Index,
		Name:    a.Name,
		Type:    l.Type(),
		Master:  a.MasterIndex,
		AdminUp: a.RawFlags&unix.IFF_UP != 0,
		OperUp:  a.RawFlags&unix.IFF_RUNNING != 0,
		Carrier: a.RawFlags&unix.IFF_LOWER_UP != 0,
	}
	if bs, isBond := a.Slave.(*vnl.BondSlave); isBond {
		ls.BondFailed = bs.MiiStatus != vnl.BondLinkUp
	}
	return ls, true
}

// Probe lists the links once, without subscribing: an observation of each
// (transitions_total 0: a probe has no history), and a fault for each bond
// that is degraded now. Flaps need history and are never probed.
func (s *Source) Probe(ctx context.Context) source.Probe {
	p := source.Probe{Source: Name}
	if s.invalid != nil {
		p.Unavailable = s.invalid.Error()
		return p
	}
	if err := ctx.Err(); err != nil {
		p.Unavailable = err.Error()
		return p
	}
	ns, err := s.openNS()
	if err != nil {
		p.Unavailable = err.Error()
		return p
	}
	defer closeNS(ns)
	h, err := vnl.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		p.Unavailable = fmt.Sprintf("open rtnetlink socket: %v", err)
		return p
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil && !errors.Is(err, vnl.ErrDumpInterrupted) {
		p.Unavailable = fmt.Sprintf("list links: %v", err)
		return p
	}
	if err != nil {
		// The list is complete but may mix states from before and after a
		// change that happened while it was taken.
		p.Errors = append(p.Errors, fmt.Sprintf("list links: %v", err))
	}
	t := s.newTracker()
	now := s.cfg.Now()
	var faults faultSink
	for _, l := range links {
		if ls, ok := linkStateOf(l); ok {
			t.update(ls, now, &faults)
		}
	}
	p.Observations = t.snapshot(now)
	p.Faults = faults.faults
	return p
}

// faultSink keeps the faults of a probe; its observations are replaced by
// one snapshot at the end.
type faultSink struct{ faults []*hwhealv1.Fault }

func (f *faultSink) Observe(*hwhealv1.Observation) {}
func (f *faultSink) Log(kernlog.Record)            {}
func (f *faultSink) Raise(x *hwhealv1.Fault)       { f.faults = append(f.faults, x) }
