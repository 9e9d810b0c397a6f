package readmodel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/names"
	"go.opentelemetry.io/otel/metric"
)

// Reserved hash fields; user fields must not start with '_'.
const (
	fieldVersion = "_v"
	fieldDeleted = "_del"
	fieldStale   = "_stale" // a deferred patch's marker, see Model.Patch
	fieldSource  = "_s"     // the entity stream that feeds the entry, see WithSource
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
// a loader racing a projection never overwrites a newer entry, nor fills an
// entry older than a patch the projection deferred meanwhile (Get then
// loads again). With a Loader, patches on missing entries are deferred to
// it (see Model.Patch).
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
	// Deferred counts patches (and Typed.Update steps) not applied because
	// the entry was missing, expired or evicted, with a Loader configured:
	// the next Get rebuilds the entry with the Loader.
	Deferred int64
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
// streamfold.readmodel.writes (by outcome: applied, skipped, deferred). They are read
// from Stats when metrics are collected; create a model once and keep it.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.meter = mp } }

// WithSchemaVersion sets the read model's schema version, part of every key
// (default 1). Bump it when the shape of the entries changes and rebuild.
func WithSchemaVersion(v int) Option { return func(o *options) { o.schema = v } }

// WithTTL expires entries d after their last write (default: never; at
// least a millisecond). It requires WithLoader (New refuses it alone): an
// expired entry is rebuilt by the Loader on the next Get, and the patches
// that arrive while it is missing are deferred to that rebuild (see
// Model.Patch). Keep d well above a load's duration: a deferred patch's
// marker lives for d too, and it is what keeps a load that started before
// the patch from filling the entry without it.
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithTombstoneTTL bounds how long a deleted entry's tombstone is kept
// (default and 0: forever; a tombstone is a few dozen bytes). Past a
// positive TTL the entry is simply missing, with two consequences: a
// redelivery of an event older than the delete can recreate the entry (a
// version 1 patch, or any Set), and the first patch of a re-created entity
// (version = the delete's + 1) meets a missing entry instead of its
// tombstone, so it is deferred to the Loader or refused with
// ErrMissingEntry (see Model.Patch). Keep it longer than any plausible
// redelivery delay and any gap between a delete and a re-creation.
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
	if o.cacheTTL == 0 {
		o.cacheTTL = time.Minute
	}
}

// newOptions applies opts over the defaults and checks them with the
// namespace and the name. It returns every problem at once, joined, each
// matching ErrInvalid and naming its option. A rollup refuses the options
// of a Model's entry lifecycle.
func newOptions(ns, name string, rollup bool, opts []Option) (options, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	o.setDefaults()
	var errs []error
	if err := eventstore.ValidateNamespace(ns); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	if err := ValidateName(name); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, o.validate()...)
	if rollup && (o.ttl != 0 || o.tombstoneTTL != 0 || o.loader != nil) {
		errs = append(errs, invalid("rollup %s: WithTTL, WithTombstoneTTL and WithLoader do not apply: an entry is the fold of many streams' events, "+
			"built by its projection (rebuild it with projection.Rebuild into a new schema version)", name))
	}
	return o, errors.Join(errs...)
}

// validate returns the problems of o, each naming its option.
func (o *options) validate() []error {
	var errs []error
	if o.schema < 1 {
		errs = append(errs, invalid("WithSchemaVersion: schema version %d must be positive", o.schema))
	}
	for _, d := range []struct {
		option string
		ttl    time.Duration
		redis  bool // a key's TTL in Redis, whose resolution is a millisecond
	}{{"WithTTL", o.ttl, true}, {"WithTombstoneTTL", o.tombstoneTTL, true}, {"WithCacheTTL", o.cacheTTL, false}} {
		switch {
		case d.ttl < 0:
			errs = append(errs, invalid("%s: negative TTL %v", d.option, d.ttl))
		case d.redis && d.ttl > 0 && d.ttl < time.Millisecond:
			errs = append(errs, invalid("%s: TTL %v below a millisecond (Redis' resolution)", d.option, d.ttl))
		}
	}
	if o.ttl > 0 && o.loader == nil {
		errs = append(errs, invalid("WithTTL without WithLoader: an expired entry could not be rebuilt, and the patches arriving "+
			"after its expiry would have no state to apply to; add WithLoader (for example a fold of the entity's events) or drop the TTL"))
	}
	return errs
}

// Model is one read model at one schema version: a set of hashes, one per
// entity. It is safe for concurrent use.
type Model struct {
	place

	hits, misses, loads, applied, skipped, deferred atomic.Int64
}

// ValidateName checks a read-model (or projection) name: 1–64 characters of
// [A-Za-z0-9_.-].
func ValidateName(name string) error {
	switch f, b := names.Check(name, maxNameLen, names.Plain); f {
	case names.OK:
		return nil
	case names.BadByte:
		return invalid("name %q: character %q not in [A-Za-z0-9_.-]", name, b)
	default:
		return invalid("name %q: want 1 to %d bytes", name, maxNameLen)
	}
}

// maxNameLen bounds a read-model, projection or collection name.
const maxNameLen = 64

// New returns the read model name of namespace ns (the event store's
// namespace, see eventstore.WithNamespace) over client.
//
// New checks the namespace, the name and the options, and returns all
// their problems at once (joined; each matches ErrInvalid).
func New(client rueidis.Client, ns, name string, opts ...Option) (*Model, error) {
	pl, err := newPlace(client, ns, name, false, opts)
	if err != nil {
		return nil, err
	}
	m := &Model{place: pl}
	observe(pl.opts.meter, name, true, m.Stats)
	return m, nil
}

// place is where a Model or a Rollup lives, and its options.
type place struct {
	client rueidis.Client
	keys   eventstore.Keyspace
	name   string
	opts   options
}

// newPlace checks its arguments (see newOptions) and returns the place.
func newPlace(client rueidis.Client, ns, name string, rollup bool, opts []Option) (place, error) {
	o, err := newOptions(ns, name, rollup, opts)
	if err != nil {
		return place{}, err
	}
	return place{client: client, keys: eventstore.NewKeyspace(ns), name: name, opts: o}, nil
}

// prefix is the start of every key of the read model: its name and schema
// version, in the namespace.
func (p *place) prefix() string {
	return p.keys.Key("rm:" + p.name + ":v" + strconv.Itoa(p.opts.schema) + ":")
}

// Name returns the model's name.
func (m *Model) Name() string { return m.name }

// SchemaVersion returns the model's schema version.
func (m *Model) SchemaVersion() int { return m.opts.schema }

// Key returns the Redis key of entry id.
func (m *Model) Key(id string) string { return m.prefix() + id }

// Stats returns the model's counters.
func (m *Model) Stats() Stats {
	return Stats{Hits: m.hits.Load(), Misses: m.misses.Load(), Loads: m.loads.Load(), Applied: m.applied.Load(), Skipped: m.skipped.Load(), Deferred: m.deferred.Load()}
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

type sourceKey struct{}

// WithSource returns a context saying that the writes made under it apply
// an event of stream. The projection runner, Rebuild and Inline call
// handlers under it, so handlers need not. A Model entry remembers the
// stream that fed it, and a write from another stream is refused with a
// *MixedSourcesError (errors.Is ErrMixedSources) before the version guard
// runs, since the guard compares versions of one stream: an entry fed by
// several streams (per customer, per day) needs a Rollup. Writes without a
// source (direct calls, a Loader's fill) are not checked and keep the
// recorded stream.
func WithSource(ctx context.Context, stream eventstore.StreamID) context.Context {
	return context.WithValue(ctx, sourceKey{}, stream)
}

func sourceOf(ctx context.Context) string {
	if s, ok := ctx.Value(sourceKey{}).(eventstore.StreamID); ok && s.ID != "" {
		return s.String()
	}
	return ""
}

func guardOf(ctx context.Context) guardMode {
	if next, _ := ctx.Value(guardKey{}).(bool); next {
		return guardNext
	}
	return guardNewer
}

// Op is one change of a Patch (field ops) or of a Rollup.Apply (field
// ops and the collection ops AddMember, RemoveMember, KeepLatest).
type Op struct {
	kind  opKind
	field string // a field, or a collection's name
	value string
	extra string // KeepLatest: the score
	keep  int    // KeepLatest: how many to keep
}

// fieldOp reports whether op changes a hash field (the ops a Model has).
func (op Op) fieldOp() bool {
	return op.kind == kindSetField || op.kind == kindIncrBy || op.kind == kindIncrByFloat || op.kind == kindDelField
}

// checkPatchOp checks one op of a Model patch.
func checkPatchOp(op Op) error {
	if !op.fieldOp() {
		return invalid("op on collection %q: AddMember, RemoveMember and KeepLatest are Rollup ops; a Model patch changes fields", op.field)
	}
	return checkField(op.field)
}

// SetField sets field to value.
func SetField(field, value string) Op { return Op{kind: kindSetField, field: field, value: value} }

// IncrBy adds n to an integer field (missing: 0).
func IncrBy(field string, n int64) Op {
	return Op{kind: kindIncrBy, field: field, value: strconv.FormatInt(n, 10)}
}

// IncrByFloat adds f to a float field (missing: 0).
func IncrByFloat(field string, f float64) Op {
	return Op{kind: kindIncrByFloat, field: field, value: strconv.FormatFloat(f, 'g', -1, 64)}
}

// DelField removes field.
func DelField(field string) Op { return Op{kind: kindDelField, field: field} }

func (m *Model) check(id string, version uint64) error {
	if err := validID(id); err != nil {
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

// onMissing tells writes.lua what a patch on a missing entry does.
func (m *Model) onMissing() missingPolicy {
	if m.opts.loader != nil {
		return missingDefer
	}
	return missingFail
}

// count records a write's outcome and turns a refusal into its error.
// source is the write's source stream ("" when none was given).
func (m *Model) count(id string, version uint64, source string, o outcome) (bool, error) {
	switch o {
	case outApplied:
		m.applied.Add(1)
		return true, nil
	case outSkipped:
		m.skipped.Add(1)
	case outDeferred:
		m.deferred.Add(1)
	case outRefused:
		return false, &MissingEntryError{Model: m.name, ID: id, Version: version}
	case outMixed:
		return false, &MixedSourcesError{Model: m.name, ID: id, Version: version, Source: source}
	}
	return false, nil
}

// write runs one write under guard and returns its outcome (uncounted).
func (m *Model) write(ctx context.Context, guard guardMode, source, id string, version uint64, ttl time.Duration, op writeOp, args []string) (outcome, error) {
	c := writeCall{args: make([]string, 0, 7+len(args))}
	c.add(version, source, writeSettings{guard: guard, ttl: ttl.Milliseconds(), op: op, policy: m.onMissing()}, args)
	o, err := execOne(ctx, m.client, writesScript, m.Key(id), c.args)
	if err != nil {
		return 0, fmt.Errorf("readmodel %s: %s %q at version %d: %w", m.name, op, id, version, err)
	}
	return o, nil
}

// execOne runs script (writes.lua or rollup.lua) for one write of key and
// returns its outcome.
func execOne(ctx context.Context, c rueidis.Client, script *rueidis.Lua, key string, argv []string) (outcome, error) {
	arr, err := script.Exec(ctx, c, []string{key}, argv).ToArray()
	if err == nil && len(arr) != 1 {
		err = fmt.Errorf("%d results for one write", len(arr))
	}
	var n int64
	if err == nil {
		n, err = arr[0].AsInt64()
	}
	return outcome(n), err
}

func (m *Model) exec(ctx context.Context, id string, version uint64, ttl time.Duration, op writeOp, args []string) (bool, error) {
	source := sourceOf(ctx)
	o, err := m.write(ctx, guardOf(ctx), source, id, version, ttl, op, args)
	if err != nil {
		return false, err
	}
	return m.count(id, version, source, o)
}

// Set replaces entry id with fields, as of event version. It returns false
// (and writes nothing) when the entry already reflects version or a later
// one. A Set is a whole state, so it also fills a missing entry, and it
// replaces the marker of a deferred patch at version or an earlier one.
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
	return m.exec(ctx, id, version, m.opts.ttl, opSet, args)
}

// Patch changes some fields of entry id as of event version; it is skipped
// (false) when the entry already reflects version or a later one. The ops
// apply atomically.
//
// A patch needs the entry's earlier state, so it starts from an empty entry
// only when that is the truth: the entry is missing and version is 1 (the
// entity's first event), or the entry is a tombstone at version-1 (the
// first event after a delete: a re-created entity). A handler that patches
// should therefore write for the entity's first event too (a Patch with no
// ops will do). On any other missing entry (expired by WithTTL, evicted,
// deleted by hand, tombstone expired) the patch is not applied:
//
//   - with a Loader it is deferred: Patch returns false, Stats.Deferred
//     counts it, and the key becomes a marker of the version ({_v, _stale},
//     with the model's TTL). Get treats the marker as a miss and rebuilds
//     the whole entry with the Loader; a Loader fill older than the marker
//     is skipped and Get loads again, so a load racing the deferred patch
//     never leaves an entry without it; later patches on the marker are
//     deferred too (raising it).
//   - without a Loader it returns an error matching ErrMissingEntry (a
//     *MissingEntryError) and writes nothing: rebuild the read model
//     (projection.Rebuild), or configure a Loader.
func (m *Model) Patch(ctx context.Context, id string, version uint64, ops ...Op) (bool, error) {
	if err := m.check(id, version); err != nil {
		return false, err
	}
	args := make([]string, 0, 3*len(ops))
	for _, op := range ops {
		if err := checkPatchOp(op); err != nil {
			return false, err
		}
		args = append(args, codeArg(op.kind), op.field, op.value)
	}
	return m.exec(ctx, id, version, m.opts.ttl, opPatch, args)
}

// Delete deletes entry id as of event version, leaving a tombstone.
func (m *Model) Delete(ctx context.Context, id string, version uint64) (bool, error) {
	if err := m.check(id, version); err != nil {
		return false, err
	}
	return m.exec(ctx, id, version, m.opts.tombstoneTTL, opDel, nil)
}

// Get returns entry id through the client-side cache. On a miss (no entry,
// a tombstone, or the marker of a deferred patch) it calls the Loader if
// there is one and stores its result (see Set); otherwise it returns a
// *NotFoundError. When the fill is skipped because a projection deferred a
// newer event meanwhile, Get loads again (up to 3 loads), then returns the
// last load unstored. A cached miss can be served until Redis' invalidation
// for the filling write arrives (well under a millisecond), so concurrent
// or back-to-back Gets may load twice; the version guard makes the second
// fill a no-op.
func (m *Model) Get(ctx context.Context, id string) (Entry, error) {
	if err := validID(id); err != nil {
		return Entry{}, err
	}
	return m.get(ctx, id, false)
}

// GetFresh is Get without the client-side cache: for read-your-writes right
// after a write (Redis sends the invalidation of a key to the writing
// connection after the write's reply, so a cached Get issued at once may
// still see the old value for a moment), and for read-modify-write.
func (m *Model) GetFresh(ctx context.Context, id string) (Entry, error) {
	if err := validID(id); err != nil {
		return Entry{}, err
	}
	return m.get(ctx, id, true)
}

// maxLoads bounds the loads of one Get that keep losing the race with
// deferred patches.
const maxLoads = 3

func (m *Model) get(ctx context.Context, id string, fresh bool) (Entry, error) {
	e, st, err := m.read(ctx, id, fresh)
	if err != nil || st == stateLive {
		return e, err
	}
	if m.opts.loader == nil {
		return Entry{}, &NotFoundError{Model: m.name, ID: id}
	}
	for i := 1; ; i++ {
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
		args := make([]string, 0, 2*len(le.Fields))
		for f, v := range le.Fields {
			if err := checkField(f); err != nil {
				return Entry{}, fmt.Errorf("readmodel %s: load %q: %w", m.name, id, err)
			}
			args = append(args, f, v)
		}
		// Guard newer whatever the caller's context: a fill is a whole
		// state, never write-through.
		// No source: a fill is not an event of one stream; the entry
		// keeps the stream recorded by the projection's writes.
		o, err := m.write(ctx, guardNewer, "", id, le.Version, m.opts.ttl, opSet, args)
		if err != nil {
			return Entry{}, err
		}
		if _, err := m.count(id, le.Version, "", o); err != nil {
			return Entry{}, err
		}
		// Read back: a projection may have written a newer version meanwhile.
		e, st, err = m.read(ctx, id, true)
		if err != nil {
			return Entry{}, err
		}
		switch {
		case st == stateLive:
			return e, nil
		case st == stateDeleted:
			// Deleted by a newer event between the load and the read.
			return Entry{}, &NotFoundError{Model: m.name, ID: id}
		case i == maxLoads:
			// Still behind a deferred patch (or expired at once): the
			// load is a true state of the entity, if not the newest.
			le.ID = id
			return le, nil
		}
		// A marker newer than the load (a patch deferred while it ran),
		// or missing again: load again.
	}
}

// state is what a read-model key holds.
type state int

const (
	stateMissing state = iota
	stateLive
	stateDeleted // a tombstone
	stateStale   // the marker of a deferred patch
)

// read fetches an entry and its state; Fields are set for a live entry
// only, Version for every state but missing.
func (m *Model) read(ctx context.Context, id string, fresh bool) (Entry, state, error) {
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
		return Entry{}, stateMissing, fmt.Errorf("readmodel %s: get %q: %w", m.name, id, err)
	}
	return decodeEntry(m.name, id, kv)
}

func decodeEntry(model, id string, kv map[string]string) (Entry, state, error) {
	if len(kv) == 0 {
		return Entry{}, stateMissing, nil
	}
	vs, ok := kv[fieldVersion]
	v, err := strconv.ParseUint(vs, 10, 64)
	if !ok || err != nil {
		return Entry{}, stateMissing, fmt.Errorf("readmodel %s: %q: %w: bad _v %q", model, id, ErrCorrupt, vs)
	}
	if _, del := kv[fieldDeleted]; del {
		return Entry{ID: id, Version: v}, stateDeleted, nil
	}
	if _, stale := kv[fieldStale]; stale {
		return Entry{ID: id, Version: v}, stateStale, nil
	}
	delete(kv, fieldVersion)
	delete(kv, fieldSource)
	return Entry{ID: id, Version: v, Fields: kv}, stateLive, nil
}

// Version returns the version of the last event written to entry id (0:
// never written), tombstones and deferred patches' markers included,
// bypassing the client-side cache.
func (m *Model) Version(ctx context.Context, id string) (uint64, error) {
	if err := validID(id); err != nil {
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
