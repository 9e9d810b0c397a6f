package readmodel

import (
	"context"
	"fmt"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/vmihailenco/msgpack/v5"
)

// fieldDoc holds a Typed entry's msgpack value.
const fieldDoc = "d"

// Typed stores one msgpack-encoded value of type T per entry, in the same
// version-guarded hashes as Model (field "d").
type Typed[T any] struct{ m *Model }

// NewTyped returns a typed view of m.
func NewTyped[T any](m *Model) *Typed[T] { return &Typed[T]{m: m} }

// Model returns the underlying model.
func (t *Typed[T]) Model() *Model { return t.m }

// Set stores v as entry id at event version (see Model.Set).
func (t *Typed[T]) Set(ctx context.Context, id string, version uint64, v T) (bool, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("readmodel %s: encode %q: %w", t.m.name, id, err)
	}
	if err := t.m.check(id, version); err != nil {
		return false, err
	}
	return t.m.exec(ctx, id, version, t.m.opts.ttl, "set", []string{fieldDoc, string(b)})
}

// Get returns entry id and its version (see Model.Get).
func (t *Typed[T]) Get(ctx context.Context, id string) (T, uint64, error) {
	return t.get(ctx, id, false)
}

// GetFresh is Get bypassing the client-side cache (see Model.GetFresh).
func (t *Typed[T]) GetFresh(ctx context.Context, id string) (T, uint64, error) {
	return t.get(ctx, id, true)
}

func (t *Typed[T]) get(ctx context.Context, id string, fresh bool) (T, uint64, error) {
	var v T
	if err := eventstore.ValidateEntityID(id); err != nil {
		return v, 0, err
	}
	e, err := t.m.get(ctx, id, fresh)
	if err != nil {
		return v, 0, err
	}
	if err := msgpack.Unmarshal([]byte(e.Fields[fieldDoc]), &v); err != nil {
		return v, 0, fmt.Errorf("readmodel %s: %q: %w: %w", t.m.name, id, ErrCorrupt, err)
	}
	return v, e.Version, nil
}

// Update reads entry id (the zero T when missing), applies fn and stores the
// result as of event version: a fold step. A redelivered event is skipped by
// the version guard, so the fold sees every event once.
func (t *Typed[T]) Update(ctx context.Context, id string, version uint64, fn func(*T) error) (bool, error) {
	if err := t.m.check(id, version); err != nil {
		return false, err
	}
	// Fresh: a fold step on a cached, not yet invalidated value would lose
	// the previous step.
	cur, v, err := t.GetFresh(ctx, id)
	if err != nil && !isNotFound(err) {
		return false, err
	}
	if v >= version {
		t.m.skipped.Add(1)
		return false, nil
	}
	if err := fn(&cur); err != nil {
		return false, err
	}
	return t.Set(ctx, id, version, cur)
}

// TypedLoader adapts a loader of typed values to a Model's Loader.
func TypedLoader[T any](load func(ctx context.Context, id string) (T, uint64, error)) Loader {
	return func(ctx context.Context, id string) (Entry, error) {
		v, ver, err := load(ctx, id)
		if err != nil {
			return Entry{}, err
		}
		b, err := msgpack.Marshal(v)
		if err != nil {
			return Entry{}, err
		}
		return Entry{ID: id, Version: ver, Fields: map[string]string{fieldDoc: string(b)}}, nil
	}
}
