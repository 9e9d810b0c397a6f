package eventstore

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// The Store's configuration: functional options over defaults (setDefaults),
// checked together by New (validate). The rule: an option per concept; a
// concept with several settings takes one struct whose zero fields mean the
// default (Durability).

type options struct {
	namespace     string
	partitions    int
	partitionsSet bool // WithPartitions was given (not only the default)
	catPartitions map[string]int
	codec         Codec
	registry      *Registry
	maxEventSize  int
	clock         func() time.Time
	logger        *slog.Logger
	maxBatch      int
	maxBatchBytes int
	inflight      int
	readPageSize  int
	durability    Durability

	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
}

// Option configures a Store.
type Option func(*options)

// WithNamespace sets the key prefix (default "sf"). Stores with different
// namespaces share nothing; an ACL user can be limited to "~<ns>:*".
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithPartitions sets the number of partitions of categories first used by
// this store (default 16). A category's partition count is stored in Redis
// when the category is first used and never changes; the stored count wins
// over this option (with a WARN when they differ; a store left at the
// default, such as a tool's, uses the stored count quietly).
func WithPartitions(n int) Option {
	return func(o *options) { o.partitions, o.partitionsSet = n, true }
}

// WithCategoryPartitions sets the partition count of one category (see WithPartitions).
func WithCategoryPartitions(category string, n int) Option {
	return func(o *options) {
		if o.catPartitions == nil {
			o.catPartitions = map[string]int{}
		}
		o.catPartitions[category] = n
	}
}

// WithCodec sets the payload codec (default Msgpack).
func WithCodec(c Codec) Option { return func(o *options) { o.codec = c } }

// WithRegistry sets the event type registry (default: a new, empty one, see Store.Registry).
func WithRegistry(r *Registry) Option { return func(o *options) { o.registry = r } }

// WithMaxEventSize bounds an event's encoded size, payload and metadata
// (default 1 MiB). Larger events are refused with ErrEventTooLarge.
func WithMaxEventSize(bytes int) Option { return func(o *options) { o.maxEventSize = bytes } }

// WithClock sets the clock that timestamps appended events (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// GroupCommit is how appends are grouped into script calls
// (WithGroupCommit). Appends wait in a queue while its calls are in flight
// and go out together in the next one: on a cluster one queue per partition
// (a script's keys share a slot), on a standalone server one queue for the
// store, whose calls carry appends of every partition. A zero field means
// its default.
type GroupCommit struct {
	// MaxBatch is the most appends per script call (default 64). 1 turns
	// grouping off: every append is its own script call, sent at once and
	// pipelined with the others by rueidis (InFlight does not apply).
	MaxBatch int
	// InFlight is the most script calls of a queue at once (default 1 per
	// partition on a cluster, 4 for a standalone server's one queue).
	InFlight int
}

// WithGroupCommit sets how appends are grouped (default
// GroupCommit{MaxBatch: 64}, InFlight as GroupCommit says).
func WithGroupCommit(g GroupCommit) Option {
	return func(o *options) { o.maxBatch, o.inflight = g.MaxBatch, g.InFlight }
}

func (o *options) setDefaults() {
	if o.namespace == "" {
		o.namespace = "sf"
	}
	if o.partitions == 0 {
		o.partitions = 16
	}
	if o.codec == nil {
		o.codec = Msgpack{}
	}
	if o.registry == nil {
		o.registry = NewRegistry()
	}
	if o.maxEventSize == 0 {
		o.maxEventSize = 1 << 20
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.maxBatch == 0 {
		o.maxBatch = 64
	}
	if o.maxBatchBytes == 0 {
		o.maxBatchBytes = 4 << 20
	}
	if o.readPageSize == 0 {
		o.readPageSize = 256
	}
	if o.durability.Timeout == 0 {
		o.durability.Timeout = time.Second
	}
}

// validate returns every problem of o at once, joined, each naming its
// option.
func (o *options) validate() error {
	var errs []error
	fail := func(option, format string, args ...any) {
		errs = append(errs, fmt.Errorf("eventstore: "+option+": "+format, args...))
	}
	if err := ValidateNamespace(o.namespace); err != nil {
		errs = append(errs, fmt.Errorf("WithNamespace: %w", err))
	}
	if o.partitions < 1 || o.partitions > MaxPartitions {
		fail("WithPartitions", "partitions %d out of range 1..%d", o.partitions, MaxPartitions)
	}
	for _, c := range slices.Sorted(maps.Keys(o.catPartitions)) {
		if err := ValidateCategory(c); err != nil {
			errs = append(errs, fmt.Errorf("WithCategoryPartitions: %w", err))
		}
		if n := o.catPartitions[c]; n < 1 || n > MaxPartitions {
			fail("WithCategoryPartitions", "partitions %d of category %s out of range 1..%d", n, c, MaxPartitions)
		}
	}
	if o.maxEventSize < 1 {
		fail("WithMaxEventSize", "max event size %d must be positive", o.maxEventSize)
	}
	if o.maxBatch < 1 || o.inflight < 0 {
		fail("WithGroupCommit", "MaxBatch %d and InFlight %d must not be negative", o.maxBatch, o.inflight)
	}
	if d := o.durability; d.Replicas < 0 || d.Timeout < 0 {
		fail("WithDurability", "replicas %d and timeout %v must not be negative", d.Replicas, d.Timeout)
	} else if d.Timeout < time.Millisecond {
		// WAIT counts in milliseconds, and WAIT 0 waits forever.
		fail("WithDurability", "timeout %v below a millisecond (WAIT's resolution)", d.Timeout)
	}
	return errors.Join(errs...)
}
