package retention

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/snapshot"
)

//go:embed lua/compact.lua
var compactLua string

//go:embed lua/trimlog.lua
var trimLogLua string

// Policy is the retention of one category.
type Policy struct {
	Category string

	// Partition logs. LogMaxLen keeps about the newest N entries of each
	// partition log; LogMaxAge drops entries older than this. Either bound
	// stops at the oldest entry a consumer group still needs unless
	// ForceLogTrim is set. Zero values disable each bound.
	LogMaxLen    int64
	LogMaxAge    time.Duration
	ForceLogTrim bool

	// Entity streams idle longer than CompactIdle are rewritten compactly.
	// Zero disables compaction. CompactMaxEntries skips longer streams
	// (default 100).
	CompactIdle       time.Duration
	CompactMaxEntries int

	// Entity streams: with Truncate, events more than TruncateKeep before
	// the stream's snapshot are handed to the Retainer's Archiver (if any)
	// and, once it succeeds, trimmed. Only a snapshot of SnapshotSchema
	// counts (0: any), since loads ignore snapshots of another schema.
	Truncate       bool
	TruncateKeep   int
	SnapshotSchema int
}

// Validate reports a policy that cannot be applied (errors.Is
// ErrInvalidPolicy; a bad category is also eventstore.ErrInvalidStreamID).
func (p Policy) Validate() error {
	if err := eventstore.ValidateCategory(p.Category); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	if p.LogMaxLen < 0 || p.LogMaxAge < 0 || p.CompactIdle < 0 || p.CompactMaxEntries < 0 || p.TruncateKeep < 0 {
		return fmt.Errorf("%w: negative bound in policy for %s", ErrInvalidPolicy, p.Category)
	}
	return nil
}

// ErrInvalidPolicy: a policy that cannot be applied.
var ErrInvalidPolicy = errors.New("retention: invalid policy")

// Retainer applies retention policies to a store's categories.
type Retainer struct {
	store    *eventstore.Store
	policies []Policy
	opts     options
	compact  *rueidis.Lua
	trimmer  *rueidis.Lua
}

type options struct {
	snapshots *snapshot.Store
	archiver  Archiver
	logger    *slog.Logger
	clock     func() time.Time
	trimLimit int64
	scanCount int64
}

// Option configures a Retainer.
type Option func(*options)

// WithSnapshots sets the snapshot store that truncation reads; New refuses
// a policy with Truncate without it.
func WithSnapshots(s *snapshot.Store) Option { return func(o *options) { o.snapshots = s } }

// WithArchiver sets the archiver that keeps truncated events (default:
// none, truncated events are gone).
func WithArchiver(a Archiver) Option { return func(o *options) { o.archiver = a } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock used for age bounds (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithTrimLimit bounds the entries one XTRIM may evict (default 10000; 0
// means the default), so a large trim never blocks Redis for long; later
// runs continue it.
func WithTrimLimit(n int64) Option { return func(o *options) { o.trimLimit = n } }

// setDefaults fills what no option set.
func (o *options) setDefaults() {
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if o.trimLimit == 0 {
		o.trimLimit = 10000
	}
	if o.scanCount == 0 {
		o.scanCount = 1000
	}
}

// validate reports every option that cannot be applied, joined.
func (o *options) validate() error {
	if o.trimLimit < 0 {
		return fmt.Errorf("retention: WithTrimLimit(%d): the limit must be positive", o.trimLimit)
	}
	return nil
}

// New returns a Retainer for the given policies. It keeps a copy of
// policies: the caller's slice is neither changed nor read afterwards. Every
// problem of the options and policies is reported, joined.
func New(store *eventstore.Store, policies []Policy, opts ...Option) (*Retainer, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	o.setDefaults()
	policies = slices.Clone(policies)
	if err := errors.Join(o.validate(), validatePolicies(policies), needSnapshots(policies, o)); err != nil {
		return nil, err
	}
	for i := range policies {
		if policies[i].CompactMaxEntries == 0 {
			policies[i].CompactMaxEntries = 100
		}
	}
	compact, trimmer := newScripts()
	return &Retainer{store: store, policies: policies, opts: o, compact: compact, trimmer: trimmer}, nil
}

// needSnapshots reports every policy that truncates while the Retainer has
// no snapshot store to find what to truncate behind.
func needSnapshots(policies []Policy, o options) error {
	if o.snapshots != nil {
		return nil
	}
	var errs []error
	for _, p := range policies {
		if p.Truncate {
			errs = append(errs, fmt.Errorf("%w: category %s truncates behind snapshots but the Retainer has no snapshot store (WithSnapshots)", ErrInvalidPolicy, p.Category))
		}
	}
	return errors.Join(errs...)
}

// validatePolicies reports every policy that cannot be applied, and every
// category with two policies, joined.
func validatePolicies(policies []Policy) error {
	var errs []error
	seen := map[string]bool{}
	for _, p := range policies {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[p.Category] {
			errs = append(errs, fmt.Errorf("%w: two policies for %s", ErrInvalidPolicy, p.Category))
		}
		seen[p.Category] = true
	}
	return errors.Join(errs...)
}

// Report says what one pass did (or, on a dry run, would do).
type Report struct {
	DryRun    bool
	Logs      []LogReport
	Compacted []CompactReport
	Truncated []TruncateReport
	// Skipped counts entity streams looked at but left alone, by reason.
	Skipped map[string]int
}

// BytesFreed sums the memory freed (or that would be freed) by the pass.
func (r Report) BytesFreed() int64 {
	var n int64
	for _, l := range r.Logs {
		n += l.BytesFreed
	}
	for _, c := range r.Compacted {
		n += c.Before - c.After
	}
	return n
}

// Apply runs every policy once. With dryRun nothing is changed and the
// report tells what would be.
func (r *Retainer) Apply(ctx context.Context, dryRun bool) (Report, error) {
	rep := Report{DryRun: dryRun, Skipped: map[string]int{}}
	for _, p := range r.policies {
		if p.LogMaxLen > 0 || p.LogMaxAge > 0 {
			logs, err := r.trimLogs(ctx, p, dryRun)
			rep.Logs = append(rep.Logs, logs...)
			if err != nil {
				return rep, err
			}
		}
		if p.Truncate {
			if err := r.truncateCategory(ctx, p, dryRun, &rep); err != nil {
				return rep, err
			}
		}
		if p.CompactIdle > 0 {
			if err := r.compactCategory(ctx, p, dryRun, &rep); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// Run applies the policies every interval until ctx ends, logging each
// pass. Errors are logged and the next pass goes on; Run returns ctx's error.
func (r *Retainer) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rep, err := r.Apply(ctx, false)
		if err != nil && ctx.Err() == nil {
			r.opts.logger.Error("retention pass failed", "err", err)
		} else if err == nil {
			r.opts.logger.Info("retention pass", "logs", len(rep.Logs), "compacted", len(rep.Compacted), "bytes_freed", rep.BytesFreed())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
