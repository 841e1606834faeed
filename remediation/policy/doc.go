// Package policy owns the remediation policy: the YAML file that says
// which fault classes lead to which actions (a ladder of steps), who must
// approve them, and the limits, windows, freezes, cooldowns and caps that
// hold every automatic action back. It parses and validates the file with
// errors that name the line, and answers the planner's questions about it
// (which rule covers a fault, is this time inside a window). It keeps no
// state and does no I/O beyond reading the file.
//
// A fresh install runs [Default], the shipped file shipped/default.yaml:
// dry-run, no rules, every manual request approved by a person.
// shipped/example.yaml is a commented policy to copy.
//
// # The file
//
// One YAML document; every key is optional. Durations are Go durations
// (90s, 15m, 4h, 72h). Unknown and duplicate keys are errors, so a typo
// never silently drops a limit.
//
//	dry_run: false                  # true: plan everything, let agents only say what they would do
//	limits:
//	  max_out_of_service: 5%        # or a count: 3. Default 10%. 100% lifts it.
//	  min_available: 90%            # floor on nodes connected, in service, not faulty, idle
//	  domains:                      # per failure domain: the nodes sharing one value of a label
//	    - label: rack
//	      max_out_of_service: 1
//	    - label: zone
//	      max_out_of_service: 10%
//	breaker:                        # on by default; enabled: false turns it off
//	  nodes: 5                      # a storm: faults of one class on at least this many nodes
//	  percent: 5                    # ... or this share of the fleet, whichever is more
//	  window: 15m                   # ... within this long
//	approval:                       # defaults for steps and manual requests
//	  ttl: 24h                      # how long an action waits for its approvals
//	  on_expiry: deny               # deny | proceed (planned work runs at the deadline)
//	windows:                        # maintenance windows rules may wait for
//	  - name: weeknights
//	    schedule: "0 22 * * 1-5"    # five-field cron: when the window opens
//	    duration: 6h                # how long it stays open (elapsed time)
//	    timezone: Europe/Berlin     # the schedule's zone; default UTC
//	freezes:                        # no automatic action is dispatched inside one
//	  - name: year-end              # a one-off: from <= t < to
//	    from: 2026-12-20T00:00:00Z  # RFC 3339, or a date (2026-12-20) in timezone
//	    to: 2027-01-04T00:00:00Z
//	  - name: friday-afternoons     # or recurring, like a window
//	    schedule: "0 12 * * 5"
//	    duration: 12h
//	    timezone: UTC
//	cooldowns:                      # per node and action type; none unless named
//	  reboot: 24h
//	  offline: 1h
//	max_per_node_per_week: 3        # automatic actions per node in any 7 days; 0: no cap
//	manual:                         # operators' requests (hwhealctl remediate); default required;
//	                                # unanswered they expire (on_expiry proceed is refused here)
//	  reboot: required              # or {approval: two-person, ttl: 4h}
//	  offline: required
//	  online: auto
//	rules:                          # file order: the first rule that covers a fault applies
//	  - name: kernel-lockup
//	    classes: [kernel.lockup, "kernel.hung_*"]   # fault classes or path.Match globs
//	    min_severity: warning       # info | warning | critical; default: every fault
//	    dry_run: false              # this rule alone in dry-run
//	    windows: [weeknights]       # dispatch only inside one of these; default any time
//	    escalate_within: 24h        # new evidence later than this starts the ladder again
//	    ladder:                     # first step for a new fault, the next when it comes back
//	      - action: reboot          # migrate | reboot | offline (online is for people)
//	        approval: auto          # auto | required | two-person; default required
//	        timeout: 20m            # dispatch to final update; default per action type
//	      - action: offline
//	        approval: required
//	        ttl: 4h                 # default approval.ttl
//	        on_expiry: deny         # default approval.on_expiry
//	        timeout: 2h
//
// A step's ttl and on_expiry matter only while it waits for approval: an
// auto step ignores them. Online brings a repaired node back; it is for
// operators (manual:), never a fault's ladder.
//
// Percent limits round in the safe direction: a maximum rounds down but is
// at least 1 of a non-empty set (so a three-node lab can act), a floor
// rounds up. Recurring windows follow their time zone's clock across
// daylight-saving changes: an opening the clock skips (02:30 on the
// spring-forward night) does not happen, one it repeats happens twice.
package policy
