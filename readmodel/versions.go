package readmodel

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// Versions serves the active schema version of a read model (blue/green):
// Get follows a pointer key (<ns>:rm:<name>:active) that Switch flips. The
// pointer is read through the client-side cache, so following it costs no
// round trip while it does not change, and every process sees a Switch at
// once (Redis invalidates the cached pointer).
type Versions struct {
	client rueidis.Client
	keys   eventstore.Keyspace
	name   string
	opts   []Option
	defVer int

	mu     sync.Mutex
	models map[int]*Model
}

// NewVersions returns the versioned read model name. opts apply to every
// version (WithSchemaVersion is ignored); def is the version served while no
// Switch has happened.
func NewVersions(client rueidis.Client, ns, name string, def int, opts ...Option) (*Versions, error) {
	if _, err := New(client, ns, name, append(opts, WithSchemaVersion(def))...); err != nil {
		return nil, err
	}
	return &Versions{client: client, keys: eventstore.NewKeyspace(ns), name: name, opts: opts, defVer: def, models: map[int]*Model{}}, nil
}

// Model returns schema version v of the read model.
func (vs *Versions) Model(v int) (*Model, error) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if m, ok := vs.models[v]; ok {
		return m, nil
	}
	m, err := New(vs.client, vs.keys.Namespace(), vs.name, append(vs.opts, WithSchemaVersion(v))...)
	if err != nil {
		return nil, err
	}
	vs.models[v] = m
	return m, nil
}

func (vs *Versions) pointer() string { return vs.keys.Key("rm:" + vs.name + ":active") }

// Active returns the schema version Get serves.
func (vs *Versions) Active(ctx context.Context) (int, error) {
	c := vs.client
	s, err := c.DoCache(ctx, c.B().Get().Key(vs.pointer()).Cache(), 0).ToString()
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
