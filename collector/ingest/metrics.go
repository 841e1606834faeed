package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are ingest's Prometheus metrics.
type Metrics struct {
	Streams      prometheus.Gauge
	Reports      *prometheus.CounterVec // by kind: fault, observation, action_update
	Duplicates   prometheus.Counter
	Rejected     *prometheus.CounterVec // by reason
	ApplySeconds prometheus.Histogram
	TxBatches    prometheus.Histogram
	OrdersSent   prometheus.Counter
}

// NewMetrics registers ingest's metrics with reg (nil: not registered, as in
// tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "hwheal", Subsystem: "ingest", Name: "streams",
			Help: "Agent streams connected now.",
		}),
		Reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "hwheal", Subsystem: "ingest", Name: "reports_total",
			Help: "Reports received from agents, by kind.",
		}, []string{"kind"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "hwheal", Subsystem: "ingest", Name: "duplicate_reports_total",
			Help: "Reports dropped because the store already held their sequence number (replays).",
		}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "hwheal", Subsystem: "ingest", Name: "rejected_streams_total",
			Help: "Agent streams ended with an error status, by reason.",
		}, []string{"reason"}),
		ApplySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "hwheal", Subsystem: "ingest", Name: "apply_seconds",
			Help:    "Time to store one group-committed transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		TxBatches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "hwheal", Subsystem: "ingest", Name: "batches_per_transaction",
			Help:    "Agent batches stored together in one transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		OrdersSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "hwheal", Subsystem: "ingest", Name: "orders_sent_total",
			Help: "Action orders sent to agents, resends included.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Streams, m.Reports, m.Duplicates, m.Rejected, m.ApplySeconds, m.TxBatches, m.OrdersSent)
	}
	return m
}
