// Package replay owns what `hwhealctl rules replay` and `hwhealctl rules
// eval` read and measure offline: the input formats besides kernel logs
// (`smartctl --json` files, Backblaze Drive Stats CSV) and how each becomes
// the observations a live agent would send; the replay driver that runs
// kernel-log rules and observation evaluators over saved files and prints
// one JSON object per fault; and the evaluation harness that compares what
// rules raise with labels (Backblaze's failure column per drive; for
// kernel logs, every labeled source of the kernel_logs corpus, each read
// and labeled its own way: lkml line records and dmesg blocks, gpud's
// saved logs against NVIDIA's Xid catalog and gpud's own matchers,
// node-problem-detector's samples against NPD's own rules, loghub BGL's
// alert column) and reports precision, recall, the aims and how
// many days ahead failing drives were flagged.
//
// It depends on no rule engine: kernel-log rules come in as a match
// function and observation rules as an Evaluator, so the shipped rules,
// a candidate rule file and the plain BaselineRule are measured the same
// way.
package replay
