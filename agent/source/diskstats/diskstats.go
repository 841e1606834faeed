// Package diskstats is the agent's block I/O counter source: every interval
// it reads <root>/proc/diskstats and emits one observation per disk, named
// by the kernel device and, where sysfs knows them, the drive's model,
// serial number and the PCI address of its controller.
//
// The sample names follow node_exporter's diskstats collector but keep the
// kernel's units (sectors, milliseconds) in the name, so rules can compute
// rates without guessing.
package diskstats

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/procfs/blockdevice"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/periodic"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Name is the source's name in logs, metrics and observations.
const Name = "diskstats"

// DefaultInterval is how often diskstats is read when Config.Interval is 0.
// A minute: readings feed trends and rates; faults come from events
// (kernel log, eBPF, netlink) the moment they happen.
const DefaultInterval = 60 * time.Second

// DefaultExcludePattern is node_exporter's default device exclusion: RAM
// disks, loop devices, floppies and partitions of sd/hd/vd/xvd/nvme disks.
const DefaultExcludePattern = `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`

// Sample names. Counters keep the kernel's units: sectors are 512 bytes,
// times are milliseconds.
const (
	SampleReadsCompleted    = "reads_completed"
	SampleReadsMerged       = "reads_merged"
	SampleReadSectors       = "read_sectors"
	SampleReadTimeMs        = "read_time_ms"
	SampleWritesCompleted   = "writes_completed"
	SampleWritesMerged      = "writes_merged"
	SampleWriteSectors      = "write_sectors"
	SampleWriteTimeMs       = "write_time_ms"
	SampleIOInProgress      = "io_in_progress"
	SampleIOTimeMs          = "io_time_ms"
	SampleIOWeightedTimeMs  = "io_weighted_time_ms"
	SampleDiscardsCompleted = "discards_completed"
	SampleDiscardsMerged    = "discards_merged"
	SampleDiscardSectors    = "discard_sectors"
	SampleDiscardTimeMs     = "discard_time_ms"
	SampleFlushRequests     = "flush_requests"
	SampleFlushTimeMs       = "flush_time_ms"
)

// Config configures the source.
type Config struct {
	// Root is where /proc and /sys are found: "/" on a host, a fixture tree
	// in tests. Empty means "/".
	Root string
	// Interval between readings; 0 means DefaultInterval.
	Interval time.Duration
	// Exclude drops devices whose name matches. nil means
	// DefaultExcludePattern; to keep every device pass a pattern that matches
	// nothing, such as `^$`.
	Exclude *regexp.Regexp
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error { return periodic.ValidateInterval(Name, c.Interval) }

// Source reads /proc/diskstats periodically. It implements source.Source.
type Source struct {
	root             string
	exclude          *regexp.Regexp
	*periodic.Runner // Name, Run, Errors
}

var _ source.Source = (*Source)(nil)

// New returns a source for cfg with defaults filled in. An invalid cfg is
// reported by Run.
func New(cfg Config) *Source {
	s := &Source{root: cmp.Or(cfg.Root, "/"), exclude: cfg.Exclude}
	if s.exclude == nil {
		s.exclude = regexp.MustCompile(DefaultExcludePattern)
	}
	s.Runner = periodic.New(periodic.Loop{
		Name: Name, Interval: cfg.Interval, Default: DefaultInterval, Logger: cfg.Logger,
		Read:   s.Read,
		Absent: periodic.Message{Msg: "diskstats not available, source stopped", Attrs: []any{"path", s.Path()}},
		Failed: periodic.Message{Msg: "read diskstats", Attrs: []any{"path", s.Path()}},
	})
	return s
}

// Path is the diskstats file the source reads.
func (s *Source) Path() string { return filepath.Join(s.root, "proc", "diskstats") }

// Read takes one reading: an observation for every device not excluded, in
// file order. On a partly malformed file it returns the observations of the
// good lines together with an error naming the file and the bad lines.
func (s *Source) Read(ctx context.Context) ([]*hwhealv1.Observation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := s.Path()
	// One read of the whole file: the kernel builds it in one go, so the
	// lines are a consistent snapshot.
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	stats, perr := Parse(bytes.NewReader(b))
	if perr != nil {
		perr = fmt.Errorf("parse %s: %w", path, perr)
	}
	now := timestamppb.Now()
	obs := make([]*hwhealv1.Observation, 0, len(stats))
	for _, d := range stats {
		if s.exclude.MatchString(d.DeviceName) {
			continue
		}
		id := readIdentity(s.root, d.DeviceName)
		obs = append(obs, &hwhealv1.Observation{
			Time:   now,
			Source: Name,
			Part: &hwhealv1.Part{
				Kind:       hwhealv1.PartKind_PART_KIND_DISK,
				Name:       d.DeviceName,
				Serial:     id.serial,
				Model:      id.model,
				PciAddress: id.pciAddress,
			},
			Samples: Samples(d),
		})
	}
	return obs, perr
}

// Samples turns one diskstats line into samples; the discard and flush
// groups only when the kernel wrote them.
func Samples(d blockdevice.Diskstats) []*hwhealv1.Sample {
	type kv struct {
		name string
		v    uint64
	}
	vals := []kv{
		{SampleReadsCompleted, d.ReadIOs},
		{SampleReadsMerged, d.ReadMerges},
		{SampleReadSectors, d.ReadSectors},
		{SampleReadTimeMs, d.ReadTicks},
		{SampleWritesCompleted, d.WriteIOs},
		{SampleWritesMerged, d.WriteMerges},
		{SampleWriteSectors, d.WriteSectors},
		{SampleWriteTimeMs, d.WriteTicks},
		{SampleIOInProgress, d.IOsInProgress},
		{SampleIOTimeMs, d.IOsTotalTicks},
		{SampleIOWeightedTimeMs, d.WeightedIOTicks},
	}
	if d.IoStatsCount >= fieldsDiscard {
		vals = append(vals,
			kv{SampleDiscardsCompleted, d.DiscardIOs},
			kv{SampleDiscardsMerged, d.DiscardMerges},
			kv{SampleDiscardSectors, d.DiscardSectors},
			kv{SampleDiscardTimeMs, d.DiscardTicks},
		)
	}
	if d.IoStatsCount >= fieldsFlush {
		vals = append(vals,
			kv{SampleFlushRequests, d.FlushRequestsCompleted},
			kv{SampleFlushTimeMs, d.TimeSpentFlushing},
		)
	}
	out := make([]*hwhealv1.Sample, len(vals))
	for i, v := range vals {
		out[i] = &hwhealv1.Sample{Name: v.name, Value: float64(v.v)}
	}
	return out
}
