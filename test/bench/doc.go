// Package bench owns hwheal's cost benchmarks: what the agent costs on a
// host compared with the stack it replaces (node_exporter, rasdaemon and
// smartd), and how it holds up under a kernel-log flood. It measures real
// processes from the outside, as an operator would, through /proc: CPU
// seconds (utime+stime of a process and its children) and peak resident
// memory (VmHWM, and the largest VmRSS it sampled), and reads counters from
// Prometheus /metrics endpoints.
//
// The commands are procstat (measure the processes a script started; see
// scripts/bench-agent.sh and make bench-agent) and flood (start a collector
// and an agent, flood /dev/kmsg, measure; make bench-flood).
package bench
