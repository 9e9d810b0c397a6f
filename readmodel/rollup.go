package readmodel

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// Rollup reserved field: the number of source events applied to an entry.
const fieldEvents = "_n"

// Rollup is a read model whose entries are fed by any number of streams:
// "per customer: open orders, total spent", "per day: revenue", "per
// product: the latest 10 reviews". Each write names the event it applies
// (its source stream and version), and an entry applies each source
// event exactly once, whatever the redeliveries, crashes, lease moves and
// rebuilds (see the package doc, Rollups, for how and what it costs).
//
// An entry holds integer and float counters and plain fields (IncrBy,
// IncrByFloat, SetField, DelField), sets (AddMember, RemoveMember) and
// "latest N" lists (KeepLatest). A Rollup has no Loader and no TTL: an
// entry is the fold of its sources' events, so it is built by the
// projection (projection.Rebuild for a new schema version), never from one
// stream on demand. It is safe for concurrent use.
type Rollup struct {
	place

	hits, misses, applied, skipped atomic.Int64
}

// NewRollup returns the rollup read model name of namespace ns over
// client. Of the Options it takes WithSchemaVersion, WithCacheTTL and
// WithMeterProvider; WithTTL, WithTombstoneTTL and WithLoader are refused
// (ErrInvalid): an entry fed by many streams cannot be loaded from one,
// and an expired entry would lose its sources' events. Like New, it returns
// every problem of its arguments at once.
func NewRollup(client rueidis.Client, ns, name string, opts ...Option) (*Rollup, error) {
	pl, err := newPlace(client, ns, name, true, opts)
	if err != nil {
		return nil, err
	}
	r := &Rollup{place: pl}
	observe(pl.opts.meter, name, false, r.Stats)
	return r, nil
}

// Name returns the rollup's name.
func (r *Rollup) Name() string { return r.name }

// SchemaVersion returns the rollup's schema version.
func (r *Rollup) SchemaVersion() int { return r.opts.schema }

// Key returns the Redis key of entry id's hash. Its other keys (the
// sources' versions, sets, latest lists) start with it and share its hash
// tag, {id}, so one script call writes them all on a cluster.
func (r *Rollup) Key(id string) string { return r.prefix() + "{" + id + "}" }

// Stats returns the rollup's counters: Hits and Misses of its reads,
// Applied and Skipped (a source event already in the entry) of its writes.
func (r *Rollup) Stats() Stats {
	return Stats{Hits: r.hits.Load(), Misses: r.misses.Load(), Applied: r.applied.Load(), Skipped: r.skipped.Load()}
}

// AddMember adds member to the set named set (Rollup only).
func AddMember(set, member string) Op { return Op{kind: kindAddMember, field: set, value: member} }

// RemoveMember removes member from the set named set (Rollup only). Adds
// and removes of one member by different source streams apply in the
// order the projection handles them, which is no order across streams:
// keep a member's adds and removes to one stream, or use counters.
func RemoveMember(set, member string) Op {
	return Op{kind: kindRemoveMember, field: set, value: member}
}

// KeepLatest puts member with score into the list named list and keeps
// the n members of highest score (ties: the greater member); a member
// added again keeps its highest score (Rollup only). Use the event's time
// or a business timestamp as score: the list is then the latest n, and it
// does not depend on the order in which the sources' events are applied.
func KeepLatest(list, member string, score float64, n int) Op {
	return Op{kind: kindKeepLatest, field: list, value: member, extra: strconv.FormatFloat(score, 'g', -1, 64), keep: n}
}

// rollupArgs checks ops and returns them as rollup.lua's arguments.
func rollupArgs(ops []Op) ([]string, error) {
	args := make([]string, 0, 4*len(ops))
	for _, op := range ops {
		if op.fieldOp() {
			if err := checkField(op.field); err != nil {
				return nil, err
			}
		} else if err := ValidateName(op.field); err != nil {
			return nil, fmt.Errorf("collection: %w", err)
		}
		extra := ""
		if op.kind == kindKeepLatest {
			if op.keep < 1 {
				return nil, invalid("KeepLatest %q: keep %d, want at least 1", op.field, op.keep)
			}
			if f, _ := strconv.ParseFloat(op.extra, 64); math.IsNaN(f) {
				return nil, invalid("KeepLatest %q: score NaN", op.field)
			}
			extra = op.extra + " " + strconv.Itoa(op.keep)
		}
		args = append(args, codeArg(op.kind), op.field, op.value, extra)
	}
	return args, nil
}

func (r *Rollup) check(id string, source eventstore.StreamID, version uint64) error {
	if err := validID(id); err != nil {
		return err
	}
	if err := source.Validate(); err != nil {
		return fmt.Errorf("%w: source: %w", ErrInvalid, err)
	}
	if version == 0 {
		return invalid("%s %q: source %s version 0 (event versions start at 1)", r.name, id, source)
	}
	return nil
}

// Apply applies ops to entry id as the effect of event version of stream
// source, once: it returns false (and writes nothing) when that event, or
// a later one of source, is already in the entry (a redelivery). A
// projection's handler passes its event: r.Apply(ctx, customer, ev.Stream,
// ev.Version, readmodel.IncrBy("open", 1)).
//
// Give all of one event's ops for one entry in one Apply: a second Apply
// of the same event to the same entry is a redelivery to the guard, and is
// skipped. One event may feed several entries (a call each).
//
// Under WithNextGuard (write-through, projection.Inline) the ops apply
// only when the entry holds source's events up to version-1, so the
// inline step never jumps ahead of the runner; otherwise it is skipped and
// the runner applies it.
func (r *Rollup) Apply(ctx context.Context, id string, source eventstore.StreamID, version uint64, ops ...Op) (bool, error) {
	if err := r.check(id, source, version); err != nil {
		return false, err
	}
	args, err := rollupArgs(ops)
	if err != nil {
		return false, err
	}
	argv := make([]string, 0, 4+len(args))
	argv = append(argv, source.String(), strconv.FormatUint(version, 10), codeArg(guardOf(ctx)), strconv.Itoa(len(args)))
	argv = append(argv, args...)
	o, err := execOne(ctx, r.client, rollupScript, r.Key(id), argv)
	if err != nil {
		return false, fmt.Errorf("readmodel %s: apply %s v%d to %q: %w", r.name, source, version, id, err)
	}
	return r.count(o), nil
}

func (r *Rollup) count(o outcome) bool {
	if o == outApplied {
		r.applied.Add(1)
		return true
	}
	r.skipped.Add(1)
	return false
}

// RollupEntry is a Rollup entry as read: its fields and the number of
// source events applied to it.
type RollupEntry struct {
	ID     string
	Events uint64
	Fields map[string]string
}

// Get returns entry id's fields through the client-side cache (see
// Model.Get). An entry no event has reached is empty (Events 0, no
// fields), not an error: it is the fold of no events.
func (r *Rollup) Get(ctx context.Context, id string) (RollupEntry, error) {
	return r.get(ctx, id, false)
}

// GetFresh is Get without the client-side cache (see Model.GetFresh).
func (r *Rollup) GetFresh(ctx context.Context, id string) (RollupEntry, error) {
	return r.get(ctx, id, true)
}

func (r *Rollup) do(ctx context.Context, fresh bool, cmd rueidis.Cacheable) rueidis.RedisResult {
	var res rueidis.RedisResult
	if fresh {
		res = r.client.Do(ctx, rueidis.Completed(cmd))
	} else {
		res = r.client.DoCache(ctx, cmd, r.opts.cacheTTL)
	}
	if res.IsCacheHit() {
		r.hits.Add(1)
	} else {
		r.misses.Add(1)
	}
	return res
}

func (r *Rollup) get(ctx context.Context, id string, fresh bool) (RollupEntry, error) {
	if err := validID(id); err != nil {
		return RollupEntry{}, err
	}
	kv, err := r.do(ctx, fresh, r.client.B().Hgetall().Key(r.Key(id)).Cache()).AsStrMap()
	if err != nil {
		return RollupEntry{}, fmt.Errorf("readmodel %s: get %q: %w", r.name, id, err)
	}
	e := RollupEntry{ID: id, Fields: kv}
	if ns, ok := kv[fieldEvents]; ok {
		if e.Events, err = strconv.ParseUint(ns, 10, 64); err != nil {
			return RollupEntry{}, fmt.Errorf("readmodel %s: %q: %w: bad %s %q", r.name, id, ErrCorrupt, fieldEvents, ns)
		}
		delete(kv, fieldEvents)
	}
	return e, nil
}

// Members returns the members of entry id's set, sorted, through the
// client-side cache.
func (r *Rollup) Members(ctx context.Context, id, set string) ([]string, error) {
	return r.members(ctx, id, set, false)
}

// MembersFresh is Members without the client-side cache.
func (r *Rollup) MembersFresh(ctx context.Context, id, set string) ([]string, error) {
	return r.members(ctx, id, set, true)
}

func (r *Rollup) members(ctx context.Context, id, set string, fresh bool) ([]string, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if err := ValidateName(set); err != nil {
		return nil, err
	}
	ms, err := r.do(ctx, fresh, r.client.B().Smembers().Key(r.Key(id)+":set:"+set).Cache()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("readmodel %s: members of %q %s: %w", r.name, id, set, err)
	}
	slices.Sort(ms)
	return ms, nil
}

// Scored is a member of a KeepLatest list with its score.
type Scored struct {
	Member string
	Score  float64
}

// Latest returns entry id's list (see KeepLatest), highest score first,
// through the client-side cache.
func (r *Rollup) Latest(ctx context.Context, id, list string) ([]Scored, error) {
	return r.latest(ctx, id, list, false)
}

// LatestFresh is Latest without the client-side cache.
func (r *Rollup) LatestFresh(ctx context.Context, id, list string) ([]Scored, error) {
	return r.latest(ctx, id, list, true)
}

func (r *Rollup) latest(ctx context.Context, id, list string, fresh bool) ([]Scored, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if err := ValidateName(list); err != nil {
		return nil, err
	}
	zs, err := r.do(ctx, fresh, r.client.B().Zrange().Key(r.Key(id)+":top:"+list).Min("+inf").Max("-inf").Byscore().Rev().Withscores().Cache()).AsZScores()
	if err != nil {
		return nil, fmt.Errorf("readmodel %s: latest of %q %s: %w", r.name, id, list, err)
	}
	out := make([]Scored, len(zs))
	for i, z := range zs {
		out[i] = Scored{Member: z.Member, Score: z.Score}
	}
	return out, nil
}

// Sources returns how many source streams entry id remembers a version
// of: what its exactly-once guard costs in Redis memory (one hash field
// each, see the package doc).
func (r *Rollup) Sources(ctx context.Context, id string) (int64, error) {
	if err := validID(id); err != nil {
		return 0, err
	}
	n, err := r.client.Do(ctx, r.client.B().Hlen().Key(r.Key(id)+":src").Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("readmodel %s: sources of %q: %w", r.name, id, err)
	}
	return n, nil
}

// Source returns the version of source's last event applied to entry id
// (0: none), bypassing the client-side cache.
func (r *Rollup) Source(ctx context.Context, id string, source eventstore.StreamID) (uint64, error) {
	if err := validID(id); err != nil {
		return 0, err
	}
	s, err := r.client.Do(ctx, r.client.B().Hget().Key(r.Key(id)+":src").Field(source.String()).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("readmodel %s: source %s of %q: %w", r.name, source, id, err)
	}
	return strconv.ParseUint(s, 10, 64)
}
