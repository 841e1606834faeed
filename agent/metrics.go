package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// agentMetrics exposes the counters the agent's parts keep themselves; it
// reads them at scrape time, so the hot paths pay nothing for metrics.
type agentMetrics struct {
	a *Agent

	kmsgRecords, kmsgDropped, kmsgOverruns, kmsgSkipped  *prometheus.Desc
	sourceErrors, sourceDropped                          *prometheus.Desc
	faults, observations, appendErrors                   *prometheus.Desc
	faultsShed, faultsMerged, faultsAlone, faultsEvicted *prometheus.Desc
	spoolPending, spoolBytes, spoolDropped, spoolCorrupt *prometheus.Desc
	connected, connects, reportsSent, rejected           *prometheus.Desc
	spoolSyncs, collectorBehind, collectorAhead          *prometheus.Desc
	orders, actions                                      *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("hwheal_agent_"+name, help, labels, nil)
}

func (a *Agent) metrics() prometheus.Collector {
	return &agentMetrics{
		a:            a,
		kmsgRecords:  desc("kmsg_records_total", "Kernel log records read."),
		kmsgDropped:  desc("kmsg_dropped_total", "Kernel log records overwritten in the ring before the agent read them."),
		kmsgOverruns: desc("kmsg_overruns_total", "Reads of /dev/kmsg that returned EPIPE (ring overrun)."),
		kmsgSkipped:  desc("kmsg_skipped_total", "Kernel log lines skipped, by reason.", "reason"),
		sourceErrors: desc("source_errors_total", "Reads of a periodic source that failed, by source.", "source"),
		sourceDropped: desc("source_dropped_total",
			"Events a source lost before the agent read them (a full eBPF ring buffer), by source.", "source"),
		faults:       desc("faults_total", "Faults spooled: raised by the agent's rules and sources, after merging and shedding."),
		observations: desc("observations_total", "Observations taken by periodic sources."),
		faultsShed:   desc("faults_shed_total", "Faults not spooled because one (rule, part) raised them faster than the limit, by rule.", "rule"),
		faultsMerged: desc("faults_merged_total", "Failed block requests seen by eBPF and the kernel log, spooled as one fault."),
		faultsAlone: desc("faults_merge_alone_total",
			"Failed block requests seen by one source only (the kernel rate-limits its log lines; eBPF may be unavailable)."),
		faultsEvicted: desc("faults_merge_evicted_total",
			"Failed block requests sent before their hold ended because the merger held its maximum."),
		appendErrors: desc("spool_append_errors_total", "Reports that could not be written to the spool."),
		spoolPending: desc("spool_pending_reports", "Reports in the spool not yet acknowledged by the collector."),
		spoolBytes:   desc("spool_bytes", "Bytes of the on-disk spool."),
		spoolDropped: desc("spool_dropped_total", "Reports dropped because the spool reached its bound."),
		spoolCorrupt: desc("spool_corrupt_total", "Damaged spool frames found and cut."),
		connected:    desc("collector_connected", "1 while a stream to the collector is up."),
		connects:     desc("collector_connects_total", "Streams opened to the collector."),
		reportsSent:  desc("reports_sent_total", "Reports sent to the collector, replays included."),
		rejected:     desc("reports_rejected_total", "Reports the collector refused as invalid and the agent skipped."),
		spoolSyncs:   desc("spool_syncs_total", "fsyncs of spool segments."),
		collectorBehind: desc("collector_behind_total",
			"Connects where the collector held fewer reports than it had acknowledged (it lost acknowledged data)."),
		orders: desc("action_orders_total", "Action orders received from the collector, resends included."),
		actions: desc("actions_total",
			"Actions ended, by type and outcome (succeeded, failed, refused by the local guard).", "type", "outcome"),
		collectorAhead: desc("collector_ahead_total",
			"Connects where the collector held sequence numbers this spool had not produced (state directory restored); numbering skipped ahead."),
	}
}

func (m *agentMetrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m *agentMetrics) Collect(ch chan<- prometheus.Metric) {
	a := m.a
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	if a.kmsg != nil {
		ks := a.kmsg.Stats()
		counter(m.kmsgRecords, ks.Records)
		counter(m.kmsgDropped, ks.Dropped)
		counter(m.kmsgOverruns, ks.Overruns)
		for reason, n := range ks.Skipped {
			counter(m.kmsgSkipped, n, reason)
		}
	}
	for _, src := range a.sources {
		if e, ok := src.(interface{ Errors() uint64 }); ok {
			counter(m.sourceErrors, e.Errors(), src.Name())
		}
		if d, ok := src.(interface{ Dropped() uint64 }); ok {
			counter(m.sourceDropped, d.Dropped(), src.Name())
		}
	}
	counter(m.faults, a.faults.Load())
	counter(m.observations, a.observations.Load())
	for rule, n := range a.limiter.Shed() {
		counter(m.faultsShed, n, rule)
	}
	ms := a.merger.Stats()
	counter(m.faultsMerged, ms.Merged)
	counter(m.faultsAlone, ms.Alone)
	counter(m.faultsEvicted, ms.Evicted)
	counter(m.appendErrors, a.appendErrors.Load())
	ss := a.spool.Stats()
	gauge(m.spoolPending, float64(ss.Pending))
	gauge(m.spoolBytes, float64(ss.Bytes))
	counter(m.spoolDropped, ss.Dropped)
	counter(m.spoolCorrupt, ss.Corrupt)
	counter(m.spoolSyncs, ss.Syncs)
	ts := a.client.Stats()
	c := 0.0
	if ts.Connected {
		c = 1
	}
	gauge(m.connected, c)
	counter(m.connects, ts.Connects)
	counter(m.reportsSent, ts.ReportsSent)
	counter(m.rejected, ts.Rejected)
	counter(m.collectorBehind, ts.CollectorBehind)
	counter(m.collectorAhead, ts.CollectorAhead)
	counter(m.orders, ts.Orders)
	if a.act != nil {
		for _, c := range a.act.Counts() {
			counter(m.actions, c.N, c.Type, c.Outcome)
		}
	}
}
