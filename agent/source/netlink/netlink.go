// Package netlink is the agent's event-driven NIC link source: it
// subscribes to the kernel's rtnetlink link notifications (RTNLGRP_LINK), in
// the agent's own network namespace or in a named one, and turns every
// change of an interface's state (administratively up, operationally up,
// carrier) into an observation the moment the kernel announces it, with no
// polling. It owns two local detectors that need every transition, which a
// poller would miss: a link that goes down and back up too often is raised
// once as nic.link_flap, and a bond with fewer members up than it has is
// raised once per degradation as nic.bond_degraded.
//
// The counters (rx/tx errors, drops, carrier_changes, bonding MII status by
// polling) are the netdev source's; this source does not read them.
package netlink

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hwheal/hwheal/agent/source"
)

// Name is the source's name in logs, metrics and observations.
const Name = "netlink"

// Defaults of the flap detector.
const (
	DefaultFlapThreshold = 3
	DefaultFlapWindow    = 10 * time.Minute
)

// Fault classes and the rules that raise them.
const (
	ClassLinkFlap     = "nic.link_flap"
	ClassBondDegraded = "nic.bond_degraded"
	RuleLinkFlap      = "netlink-link-flap"
	RuleBondDegraded  = "netlink-bond-degraded"
)

// Sample names.
const (
	SampleAdminUp      = "admin_up"          // 1 when the interface is set up (IFF_UP)
	SampleOperUp       = "oper_up"           // 1 when it can pass packets (IFF_RUNNING: operstate up or unknown)
	SampleCarrier      = "carrier"           // 1 when the lower layer is up (IFF_LOWER_UP)
	SampleTransitions  = "transitions_total" // oper_up changes since the source started
	SampleMembersUp    = "members_up"        // bonds: members operationally up and not failed by the bond
	SampleMembersTotal = "members_total"     // bonds: enslaved interfaces

	// Evidence of a flap.
	SampleFlapTransitions = "transitions"    // oper_up changes within the window when it was raised
	SampleWindowSeconds   = "window_seconds" // the window
)

// Config configures the source.
type Config struct {
	// NetNS is the path of a network namespace file (/var/run/netns/NAME,
	// /proc/PID/ns/net) whose links are watched; empty means the agent's
	// own namespace.
	NetNS string
	// Root is where /sys is found, for the PCI address of physical NICs:
	// "/" on a host, a fixture tree in tests. The agent's /sys lists the
	// interfaces of its own namespace, so with NetNS set the PCI address
	// is looked up only when Root is given (a sysfs of that namespace);
	// otherwise an interface that happens to share a host NIC's name would
	// be named after the host's device.
	Root string
	// FlapThreshold is how many times an interface must go down and come
	// back up within FlapWindow to be raised as flapping; 0 means
	// DefaultFlapThreshold.
	FlapThreshold int
	// FlapWindow is the flap detector's window, and how long a flapping
	// link must stay still before a new episode may be raised; 0 means
	// DefaultFlapWindow.
	FlapWindow time.Duration
	// ReceiveBufferSize sets the netlink socket's receive buffer (bytes);
	// 0 keeps the kernel's default. Hosts with thousands of interfaces
	// (container veths) raise it: when it overflows the kernel drops
	// notifications and the source resubscribes to resynchronise. It is
	// forced (SO_RCVBUFFORCE, past net.core.rmem_max), which needs
	// CAP_NET_ADMIN.
	ReceiveBufferSize int
	// Now is the clock of the flap detector and of observations; nil
	// means time.Now.
	Now func() time.Time
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.FlapThreshold < 0 {
		errs = append(errs, fmt.Errorf("%s: FlapThreshold %d is negative", Name, c.FlapThreshold))
	}
	if c.FlapWindow < 0 {
		errs = append(errs, fmt.Errorf("%s: FlapWindow %v is negative", Name, c.FlapWindow))
	}
	if c.ReceiveBufferSize < 0 {
		errs = append(errs, fmt.Errorf("%s: ReceiveBufferSize %d is negative", Name, c.ReceiveBufferSize))
	}
	return errors.Join(errs...)
}

// Stats counts what the source did since New.
type Stats struct {
	// Subscriptions is how many times the source subscribed to link
	// events; more than one means it resubscribed after a failure.
	Subscriptions uint64
	// Failures counts subscriptions that could not be made and event
	// streams that ended with an error (a receive buffer overflow).
	Failures uint64
	// Updates is the number of link messages handled.
	Updates uint64
	// Transitions is the number of oper_up changes seen.
	Transitions uint64
}

// Source watches link state through netlink. It implements source.Source
// and source.Prober.
type Source struct {
	cfg     Config
	invalid error
	log     *slog.Logger
	pciRoot string // "" when PCI addresses are not looked up

	subscriptions, failures, updates, transitions atomic.Uint64
}

var _ source.Prober = (*Source)(nil)

// New returns a source for cfg with defaults filled in. It touches nothing
// until Run or Probe; an invalid cfg is reported by them.
func New(cfg Config) *Source {
	s := &Source{cfg: cfg, invalid: cfg.Validate(), log: cfg.Logger}
	s.cfg.FlapThreshold = cmp.Or(cfg.FlapThreshold, DefaultFlapThreshold)
	s.cfg.FlapWindow = cmp.Or(cfg.FlapWindow, DefaultFlapWindow)
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("source", Name)
	if cfg.NetNS == "" || cfg.Root != "" {
		s.pciRoot = cmp.Or(cfg.Root, "/")
	}
	return s
}

// Name implements source.Source.
func (s *Source) Name() string { return Name }

// Stats returns a snapshot of the counters.
func (s *Source) Stats() Stats {
	return Stats{
		Subscriptions: s.subscriptions.Load(),
		Failures:      s.failures.Load(),
		Updates:       s.updates.Load(),
		Transitions:   s.transitions.Load(),
	}
}

func (s *Source) newTracker() *tracker {
	return newTracker(s.cfg.FlapThreshold, s.cfg.FlapWindow, s.pciRoot)
}
