package readmodel

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Reserved hash fields; user fields must not start with '_'.
const (
	fieldVersion = "_v"
	fieldDeleted = "_del"
)

// Entry is a read-model entry as read: its fields (reserved ones removed)
// and the version of the last event applied to it.
type Entry struct {
	ID      string
	Version uint64
	Fields  map[string]string
}

// Loader fills a missing entry (cache-aside), for example by folding the
// entity's events. It returns ErrNotFound (or a wrapping error) when the
// entity does not exist. The entry is written with its Version as guard, so
// a loader racing a projection never overwrites a newer entry.
type Loader func(ctx context.Context, id string) (Entry, error)

// Stats counts the query side of a model since it was created.
type Stats struct {
	Hits   int64 // Gets served from the client-side cache
	Misses int64 // Gets that went to Redis
	Loads  int64 // misses filled by the Loader
	// Applied and Skipped count writes: skipped ones found a version that
	// was not older (a redelivery).
	Applied int64
	Skipped int64
}

// Option configures a Model.
type Option func(*options)

type options struct {
	schema       int
	ttl          time.Duration
	tombstoneTTL time.Duration
	cacheTTL     time.Duration
	loader       Loader
	meter        metric.MeterProvider
}

// WithMeterProvider sets where the model's counters go as OpenTelemetry
// metrics (default otel.GetMeterProvider(): a no-op until one is
// installed): streamfold.readmodel.cache.hits / .misses / .loads and
// streamfold.readmodel.writes (by outcome: applied, skipped). They are read
// from Stats when metrics are collected; create a model once and keep it.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.meter = mp } }

// WithSchemaVersion sets the read model's schema version, part of every key
// (default 1). Bump it when the shape of the entries changes and rebuild.
func WithSchemaVersion(v int) Option { return func(o *options) { o.schema = v } }

// WithTTL expires entries d after their last write (default: never). Use it
// with a Loader so that expired entries are rebuilt on demand.
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithTombstoneTTL sets how long a deleted entry's tombstone is kept
// (default 24h; 0 keeps it forever). Past it, a redelivery of an event
// older than the delete could recreate the entry; keep it longer than
// any plausible redelivery delay.
func WithTombstoneTTL(d time.Duration) Option { return func(o *options) { o.tombstoneTTL = d } }

// WithCacheTTL bounds how long Get may serve an entry from client-side
// memory (default 1 minute). Invalidation is pushed by Redis on every write;
// the TTL bounds staleness if an invalidation message is lost with its
// connection.
func WithCacheTTL(d time.Duration) Option { return func(o *options) { o.cacheTTL = d } }

// WithLoader sets the cache-aside loader used by Get on a miss.
func WithLoader(l Loader) Option { return func(o *options) { o.loader = l } }

func (o *options) setDefaults() {
	if o.schema == 0 {
		o.schema = 1
	}
	if o.tombstoneTTL == 0 {
		o.tombstoneTTL = 24 * time.Hour
	}
	if o.cacheTTL == 0 {
		o.cacheTTL = time.Minute
	}
}

func (o *options) validate() error {
	if o.schema < 1 {
		return invalid("schema version %d must be positive", o.schema)
	}
	if o.ttl < 0 || o.tombstoneTTL < 0 || o.cacheTTL < 0 {
		return invalid("negative TTL")
	}
	return nil
}

// Model is one read model at one schema version: a set of hashes, one per
// entity. It is safe for concurrent use.
type Model struct {
	client rueidis.Client
	keys   eventstore.Keyspace
	name   string
	opts   options

	hits, misses, loads, applied, skipped atomic.Int64
}

// ValidateName checks a read-model (or projection) name: 1–64 characters of
// [A-Za-z0-9_.-].
func ValidateName(name string) error {
	if name == "" || len(name) > 64 {
		return invalid("name %q: want 1 to 64 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-') {
			return invalid("name %q: character %q not in [A-Za-z0-9_.-]", name, b)
		}
	}
	return nil
}

// New returns the read model name of namespace ns (the event store's
// namespace, see eventstore.WithNamespace) over client.
func New(client rueidis.Client, ns, name string, opts ...Option) (*Model, error) {
	if err := eventstore.ValidateNamespace(ns); err != nil {
		return nil, err
	}
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	m := &Model{client: client, keys: eventstore.NewKeyspace(ns), name: name, opts: o}
	m.observe()
	return m, nil
}

// observe registers the model's counters with the meter provider.
func (m *Model) observe() {
	mp := m.opts.meter
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter("github.com/streamfold/streamfold/readmodel")
	hits, _ := meter.Int64ObservableCounter("streamfold.readmodel.cache.hits", metric.WithDescription("Gets served from the client-side cache"))
	misses, _ := meter.Int64ObservableCounter("streamfold.readmodel.cache.misses", metric.WithDescription("Gets that went to Redis"))
	loads, _ := meter.Int64ObservableCounter("streamfold.readmodel.cache.loads", metric.WithDescription("misses filled by the loader"))
	writes, _ := meter.Int64ObservableCounter("streamfold.readmodel.writes", metric.WithDescription("version-guarded writes, applied or skipped as not newer"))
	model := attribute.String("streamfold.readmodel", m.name)
	// Registration fails only on instruments of another provider; the
	// counters stay readable through Stats either way.
	_, _ = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := m.Stats()
		o.ObserveInt64(hits, st.Hits, metric.WithAttributes(model))
		o.ObserveInt64(misses, st.Misses, metric.WithAttributes(model))
		o.ObserveInt64(loads, st.Loads, metric.WithAttributes(model))
		o.ObserveInt64(writes, st.Applied, metric.WithAttributes(model, attribute.String("outcome", "applied")))
		o.ObserveInt64(writes, st.Skipped, metric.WithAttributes(model, attribute.String("outcome", "skipped")))
		return nil
	}, hits, misses, loads, writes)
}

// Name returns the model's name.
func (m *Model) Name() string { return m.name }

// SchemaVersion returns the model's schema version.
func (m *Model) SchemaVersion() int { return m.opts.schema }

// Key returns the Redis key of entry id.
func (m *Model) Key(id string) string {
	return m.keys.Key("rm:" + m.name + ":v" + strconv.Itoa(m.opts.schema) + ":" + id)
}

// Stats returns the model's counters.
func (m *Model) Stats() Stats {
	return Stats{Hits: m.hits.Load(), Misses: m.misses.Load(), Loads: m.loads.Load(), Applied: m.applied.Load(), Skipped: m.skipped.Load()}
}

type guardKey struct{}

// WithNextGuard returns a context under which writes apply only when the
// stored version is exactly the event's version minus one (instead of any
// older version). Write-through (projection.Inline) uses it: an inline write
// must never jump over events that the asynchronous runner has not applied
// yet, since the runner's write of those would then be skipped as old.
func WithNextGuard(ctx context.Context) context.Context {
	return context.WithValue(ctx, guardKey{}, true)
}

func guardOf(ctx context.Context) string {
	if next, _ := ctx.Value(guardKey{}).(bool); next {
		return "next"
	}
	return "newer"
}

// Op is one field change of a Patch.
type Op struct {
	kind  byte
	field string
	value string
}

// SetField sets field to value.
func SetField(field, value string) Op { return Op{kind: 's', field: field, value: value} }

// IncrBy adds n to an integer field (missing: 0).
func IncrBy(field string, n int64) Op {
	return Op{kind: 'i', field: field, value: strconv.FormatInt(n, 10)}
}

// IncrByFloat adds f to a float field (missing: 0).
func IncrByFloat(field string, f float64) Op {
	return Op{kind: 'f', field: field, value: strconv.FormatFloat(f, 'g', -1, 64)}
}

// DelField removes field.
func DelField(field string) Op { return Op{kind: 'd', field: field} }

func (m *Model) check(id string, version uint64) error {
	if err := eventstore.ValidateEntityID(id); err != nil {
		return err
	}
	if version == 0 {
		return invalid("%s %q: version 0 (event versions start at 1)", m.name, id)
	}
	return nil
}

func checkField(f string) error {
	if f == "" || strings.HasPrefix(f, "_") {
		return invalid("field %q: empty or reserved (starts with '_')", f)
	}
	return nil
}

func (m *Model) exec(ctx context.Context, id string, version uint64, ttl time.Duration, op string, args []string) (bool, error) {
	argv := make([]string, 0, 5+len(args))
	argv = append(argv, strconv.FormatUint(version, 10), guardOf(ctx), strconv.FormatInt(ttl.Milliseconds(), 10), op, strconv.Itoa(len(args)))
	argv = append(argv, args...)
	arr, err := writesScript.Exec(ctx, m.client, []string{m.Key(id)}, argv).ToArray()
	if err == nil && len(arr) != 1 {
		err = fmt.Errorf("%d results for one write", len(arr))
	}
	if err != nil {
		return false, fmt.Errorf("readmodel %s: %s %q at version %d: %w", m.name, op, id, version, err)
	}
	if n, _ := arr[0].AsInt64(); n == 1 {
		m.applied.Add(1)
		return true, nil
	}
	m.skipped.Add(1)
	return false, nil
}

// Set replaces entry id with fields, as of event version. It returns false
// (and writes nothing) when the entry already reflects version or a later one.
func (m *Model) Set(ctx context.Context, id string, version uint64, fields map[string]string) (bool, error) {
	if err := m.check(id, version); err != nil {
		return false, err
	}
	args := make([]string, 0, 2*len(fields))
	for f, v := range fields {
		if err := checkField(f); err != nil {
			return false, err
		}
		args = append(args, f, v)
	}
	return m.exec(ctx, id, version, m.opts.ttl, "set", args)
}

// Patch changes some fields of entry id (creating it when missing), as of
// event version; see Set for when it is skipped. The ops apply atomically.
func (m *Model) Patch(ctx context.Context, id string, version uint64, ops ...Op) (bool, error) {
	if err := m.check(id, version); err != nil {
		return false, err
	}
	args := make([]string, 0, 3*len(ops))
	for _, op := range ops {
		if err := checkField(op.field); err != nil {
			return false, err
		}
		args = append(args, string(op.kind), op.field, op.value)
	}
	return m.exec(ctx, id, version, m.opts.ttl, "patch", args)
}

// Delete deletes entry id as of event version, leaving a tombstone.
func (m *Model) Delete(ctx context.Context, id string, version uint64) (bool, error) {
	if err := m.check(id, version); err != nil {
		return false, err
	}
	return m.exec(ctx, id, version, m.opts.tombstoneTTL, "del", nil)
}

// Get returns entry id through the client-side cache. On a miss (no entry,
// or a tombstone) it calls the Loader if there is one and stores its result;
// otherwise it returns a *NotFoundError. A cached miss can be served until
// Redis' invalidation for the filling write arrives (well under a
// millisecond), so concurrent or back-to-back Gets may load twice; the
// version guard makes the second fill a no-op.
func (m *Model) Get(ctx context.Context, id string) (Entry, error) {
	if err := eventstore.ValidateEntityID(id); err != nil {
		return Entry{}, err
	}
	return m.get(ctx, id, false)
}

// GetFresh is Get without the client-side cache: for read-your-writes right
// after a write (Redis sends the invalidation of a key to the writing
// connection after the write's reply, so a cached Get issued at once may
// still see the old value for a moment), and for read-modify-write.
func (m *Model) GetFresh(ctx context.Context, id string) (Entry, error) {
	if err := eventstore.ValidateEntityID(id); err != nil {
		return Entry{}, err
	}
	return m.get(ctx, id, true)
}

func (m *Model) get(ctx context.Context, id string, fresh bool) (Entry, error) {
	e, found, err := m.read(ctx, id, fresh)
	if err != nil || found {
		return e, err
	}
	if m.opts.loader == nil {
		return Entry{}, &NotFoundError{Model: m.name, ID: id}
	}
	m.loads.Add(1)
	le, err := m.opts.loader(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, eventstore.ErrStreamNotFound) {
			return Entry{}, &NotFoundError{Model: m.name, ID: id}
		}
		return Entry{}, fmt.Errorf("readmodel %s: load %q: %w", m.name, id, err)
	}
	if le.Version == 0 {
		return Entry{}, fmt.Errorf("readmodel %s: load %q: %w: loader returned version 0", m.name, id, ErrInvalid)
	}
	if _, err := m.Set(ctx, id, le.Version, le.Fields); err != nil {
		return Entry{}, err
	}
	// Read back: a projection may have written a newer version meanwhile.
	e, found, err = m.read(ctx, id, true)
	if err != nil {
		return Entry{}, err
	}
	if !found {
		// Deleted by a newer event between the load and the read.
		return Entry{}, &NotFoundError{Model: m.name, ID: id}
	}
	return e, nil
}

// read fetches an entry; found is false for a missing entry or a tombstone.
func (m *Model) read(ctx context.Context, id string, fresh bool) (Entry, bool, error) {
	c := m.client
	var res rueidis.RedisResult
	if fresh {
		res = c.Do(ctx, c.B().Hgetall().Key(m.Key(id)).Build())
	} else {
		res = c.DoCache(ctx, c.B().Hgetall().Key(m.Key(id)).Cache(), m.opts.cacheTTL)
	}
	if res.IsCacheHit() {
		m.hits.Add(1)
	} else {
		m.misses.Add(1)
	}
	kv, err := res.AsStrMap()
	if err != nil {
		return Entry{}, false, fmt.Errorf("readmodel %s: get %q: %w", m.name, id, err)
	}
	return decodeEntry(m.name, id, kv)
}

func decodeEntry(model, id string, kv map[string]string) (Entry, bool, error) {
	if len(kv) == 0 {
		return Entry{}, false, nil
	}
	vs, ok := kv[fieldVersion]
	v, err := strconv.ParseUint(vs, 10, 64)
	if !ok || err != nil {
		return Entry{}, false, fmt.Errorf("readmodel %s: %q: %w: bad _v %q", model, id, ErrCorrupt, vs)
	}
	if _, del := kv[fieldDeleted]; del {
		return Entry{ID: id, Version: v}, false, nil
	}
	delete(kv, fieldVersion)
	return Entry{ID: id, Version: v, Fields: kv}, true, nil
}

// Version returns the version applied to entry id (0: never written),
// tombstones included, bypassing the client-side cache.
func (m *Model) Version(ctx context.Context, id string) (uint64, error) {
	if err := eventstore.ValidateEntityID(id); err != nil {
		return 0, err
	}
	s, err := m.client.Do(ctx, m.client.B().Hget().Key(m.Key(id)).Field(fieldVersion).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("readmodel %s: version of %q: %w", m.name, id, err)
	}
	return strconv.ParseUint(s, 10, 64)
}
