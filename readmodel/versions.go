package readmodel

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// Versions serves the active schema version of a read model (blue/green):
// Get follows a pointer key (<ns>:rm:<name>:active) that Switch flips. The
// pointer is read through the client-side cache, so following it costs no
// round trip while it does not change, and every process sees a Switch as
// soon as Redis' invalidation of the cached pointer reaches it (well under a
// millisecond; at most the cache TTL if the invalidation is lost with its
// connection); the switching process sees its own Switch at once.
type Versions struct {
	client rueidis.Client
	keys   eventstore.Keyspace
	name   string
	opts   []Option
	defVer int

	mu     sync.Mutex
	models map[int]*Model

	cacheTTL time.Duration

	hits, misses atomic.Int64 // reads of the pointer
	// switched is the version of this process's last Switch until a
	// cached read of the pointer shows it (0: none pending).
	switched atomic.Int64
}

// NewVersions returns the versioned read model name. opts apply to every
// version (WithSchemaVersion is ignored); def is the version served while no
// Switch has happened.
func NewVersions(client rueidis.Client, ns, name string, def int, opts ...Option) (*Versions, error) {
	m, err := New(client, ns, name, withSchema(opts, def)...)
	if err != nil {
		return nil, err
	}
	return &Versions{client: client, keys: eventstore.NewKeyspace(ns), name: name, opts: opts, defVer: def, models: map[int]*Model{},
		cacheTTL: m.opts.cacheTTL}, nil
}

// Model returns schema version v of the read model.
func (vs *Versions) Model(v int) (*Model, error) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if m, ok := vs.models[v]; ok {
		return m, nil
	}
	m, err := New(vs.client, vs.keys.Namespace(), vs.name, withSchema(vs.opts, v)...)
	if err != nil {
		return nil, err
	}
	vs.models[v] = m
	return m, nil
}

// withSchema returns opts followed by WithSchemaVersion(v), in a new
// slice: appending to opts could write into the caller's array.
func withSchema(opts []Option, v int) []Option {
	return append(slices.Clip(opts), WithSchemaVersion(v))
}

func (vs *Versions) pointer() string { return vs.keys.Key("rm:" + vs.name + ":active") }

// Active returns the schema version Get serves. The pointer is read
// through the client-side cache (with the models' cache TTL, WithCacheTTL):
// no round trip while it does not change. Redis invalidates the cached
// pointer when any process switches; the switching process sees its own
// Switch at once (until the invalidation arrives, Active reads the pointer
// from Redis after a local Switch).
func (vs *Versions) Active(ctx context.Context) (int, error) {
	c := vs.client
	res := c.DoCache(ctx, c.B().Get().Key(vs.pointer()).Cache(), vs.cacheTTL)
	if res.IsCacheHit() {
		vs.hits.Add(1)
	} else {
		vs.misses.Add(1)
	}
	v, err := vs.parse(res)
	if err != nil {
		return 0, err
	}
	if sw := int(vs.switched.Load()); sw != 0 {
		if v == sw {
			// The cache has caught up with this process's Switch.
			vs.switched.CompareAndSwap(int64(sw), 0)
			return v, nil
		}
		// The cached pointer may predate this process's own Switch:
		// Redis sends the invalidation after the SET's reply.
		vs.misses.Add(1)
		fresh, err := vs.parse(c.Do(ctx, c.B().Get().Key(vs.pointer()).Build()))
		if err != nil {
			return 0, err
		}
		if fresh != sw {
			vs.switched.CompareAndSwap(int64(sw), 0) // another process switched since
		}
		return fresh, nil
	}
	return v, nil
}

func (vs *Versions) parse(res rueidis.RedisResult) (int, error) {
	s, err := res.ToString()
	if rueidis.IsRedisNil(err) {
		return vs.defVer, nil
	}
	if err != nil {
		return 0, fmt.Errorf("readmodel %s: active version: %w", vs.name, err)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("readmodel %s: %w: active version %q", vs.name, ErrCorrupt, s)
	}
	return v, nil
}

// Switch makes schema version v the one Get serves. Build v first (see
// projection.Rebuild) and wait until its projection has caught up.
func (vs *Versions) Switch(ctx context.Context, v int) error {
	if v < 1 {
		return invalid("schema version %d", v)
	}
	c := vs.client
	if err := c.Do(ctx, c.B().Set().Key(vs.pointer()).Value(strconv.Itoa(v)).Build()).Error(); err != nil {
		return fmt.Errorf("readmodel %s: switch to v%d: %w", vs.name, v, err)
	}
	vs.switched.Store(int64(v))
	return nil
}

// Get reads entry id from the active version.
func (vs *Versions) Get(ctx context.Context, id string) (Entry, error) {
	v, err := vs.Active(ctx)
	if err != nil {
		return Entry{}, err
	}
	m, err := vs.Model(v)
	if err != nil {
		return Entry{}, err
	}
	return m.Get(ctx, id)
}

// Stats counts the reads of the active-version pointer (Active, and the
// first step of every Get): Hits were served from the client-side cache,
// Misses went to Redis. The other fields are zero; each version's Model
// has its own Stats.
func (vs *Versions) Stats() Stats {
	return Stats{Hits: vs.hits.Load(), Misses: vs.misses.Load()}
}
