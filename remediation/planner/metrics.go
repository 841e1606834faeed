package planner

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hwheal/hwheal/remediation/policy"
)

type metrics struct {
	passSeconds  prometheus.Histogram
	dispatched   *prometheus.CounterVec
	breakerTrips prometheus.Counter
	escalations  prometheus.Counter
	paused       prometheus.Gauge
	outOfService prometheus.Gauge
	awaiting     prometheus.Gauge
	inFlight     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		passSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hwheal_collector_planner_pass_seconds", Help: "Time of one remediation planner pass.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwheal_collector_actions_dispatched_total", Help: "Actions dispatched to agents, by type.",
		}, []string{"type"}),
		breakerTrips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwheal_collector_breaker_trips_total", Help: "Times the storm breaker paused automatic remediation.",
		}),
		escalations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwheal_collector_escalations_total", Help: "Faults automatic remediation handed to people.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwheal_collector_remediation_paused", Help: "1 while automatic remediation is paused.",
		}),
		outOfService: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwheal_collector_nodes_out_of_service", Help: "Nodes out of service or with an action in flight that takes them out.",
		}),
		awaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwheal_collector_actions_awaiting_approval", Help: "Actions awaiting approval.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwheal_collector_actions_in_flight", Help: "Actions dispatched or running.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.passSeconds, m.dispatched, m.breakerTrips, m.escalations, m.paused, m.outOfService, m.awaiting, m.inFlight)
	}
	return m
}

func (m *metrics) observe(s *snapshot, pol *policy.Policy) {
	if s.state.Paused {
		m.paused.Set(1)
	} else {
		m.paused.Set(0)
	}
	m.outOfService.Set(float64(s.fleet.Usage(pol.Limits).OutOfService))
	awaiting, inFlight := s.counts()
	m.awaiting.Set(float64(awaiting))
	m.inFlight.Set(float64(inFlight))
}
