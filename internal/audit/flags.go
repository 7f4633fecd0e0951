package audit

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/envflag"
)

// Size is a byte count as flags take it: a number with an optional unit
// (B, KiB, MiB, GiB), or "off" (also "0") for no limit, held as -1. It
// implements flag.Value.
type Size int64

var sizeUnits = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// ParseSize reads a Size.
func ParseSize(v string) (Size, error) {
	v = strings.TrimSpace(v)
	if v == "off" || v == "0" {
		return -1, nil
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(rest), u.n
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("want a size such as 64MiB, 512KiB, 1GiB or a number of bytes, or off")
	}
	return Size(n * mult), nil
}

// Set implements flag.Value.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

func (s Size) String() string {
	switch {
	case s < 0:
		return "off"
	case s == 0:
		return ""
	}
	for _, u := range sizeUnits {
		if int64(s)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.n, u.suffix)
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// LogFlags are the audit log's settings that both services take as flags
// (one home, so the two cannot drift). The zero value means the defaults.
type LogFlags struct {
	// SegmentSize: a new segment past this size (0: DefaultSegmentSize;
	// off: none by size).
	SegmentSize Size
	// SegmentDaily: a new segment each UTC day too.
	SegmentDaily bool
	// RecoverInterval: how soon a failed log first tries to recover
	// (0: 5s), doubling up to a minute.
	RecoverInterval time.Duration
}

// Register adds -audit-segment-size, -audit-segment-daily and
// -audit-recover-interval, with defaults from env (AUDIT_SEGMENT_SIZE,
// AUDIT_SEGMENT_DAILY, AUDIT_RECOVER_INTERVAL).
func (f *LogFlags) Register(fs *flag.FlagSet, env envflag.Env) {
	f.SegmentSize = DefaultSegmentSize
	if s, err := ParseSize(env.String("AUDIT_SEGMENT_SIZE", "")); err == nil {
		f.SegmentSize = s
	}
	fs.Var(&f.SegmentSize, "audit-segment-size", "start a new audit log segment past this size (KiB, MiB, GiB; off: by day only); start-up verifies only the open segment")
	fs.BoolVar(&f.SegmentDaily, "audit-segment-daily", env.Bool("AUDIT_SEGMENT_DAILY", false), "also start a new audit log segment each UTC day (one file per day: retention and export by day)")
	fs.DurationVar(&f.RecoverInterval, "audit-recover-interval", env.Duration("AUDIT_RECOVER_INTERVAL", 5*time.Second), "after an audit write or fsync error, first try to recover after this long (doubling up to 1m)")
}

// Validate names the first bad setting.
func (f LogFlags) Validate() error {
	switch {
	case f.SegmentSize > 0 && f.SegmentSize < 64<<10:
		return errors.New("config: audit-segment-size must be at least 64KiB (or off)")
	case f.RecoverInterval != 0 && (f.RecoverInterval < 100*time.Millisecond || f.RecoverInterval > 10*time.Minute):
		return errors.New("config: audit-recover-interval must be 100ms-10m")
	}
	return nil
}

// Apply sets o's segment and recovery options from f.
func (f LogFlags) Apply(o Options) Options {
	o.SegmentSize = int64(f.SegmentSize)
	o.SegmentDaily = f.SegmentDaily
	o.RecoverInterval = f.RecoverInterval
	return o
}
