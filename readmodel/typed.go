package readmodel

import (
	"context"
	"fmt"
	"strconv"

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
	return t.m.exec(ctx, id, version, t.m.opts.ttl, opSet, []string{fieldDoc, string(b)})
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
	if err := validID(id); err != nil {
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

// maxUpdateAttempts bounds Update's reads when the entry keeps changing
// between its read and its write.
const maxUpdateAttempts = 5

// Update reads entry id, applies fn and stores the result as of event
// version: a fold step. A redelivered event is skipped by the version guard,
// so the fold sees every event once. fn gets the zero T only when that is
// the entity's true earlier state, as for Model.Patch: the entry is missing
// and version is 1, or it is a tombstone at version-1. On any other missing
// entry (expired, evicted, deleted by hand) fn is not called and the step is
// deferred to the Loader (false, counted in Stats.Deferred) or, without a
// Loader, refused with an error matching ErrMissingEntry.
//
// The read bypasses the client-side cache and never calls the Loader; the
// write applies only if the entry is still in the state fn's value was
// computed from, else Update reads again (fn may then run more than once;
// it must not have side effects).
func (t *Typed[T]) Update(ctx context.Context, id string, version uint64, fn func(*T) error) (bool, error) {
	m := t.m
	if err := m.check(id, version); err != nil {
		return false, err
	}
	guard, source := guardOf(ctx), sourceOf(ctx)
	for range maxUpdateAttempts {
		e, st, err := m.read(ctx, id, true)
		if err != nil {
			return false, err
		}
		if st != stateMissing && e.Version >= version {
			m.skipped.Add(1)
			return false, nil
		}
		var cur T
		var args []string
		switch {
		case st == stateLive:
			if err := msgpack.Unmarshal([]byte(e.Fields[fieldDoc]), &cur); err != nil {
				return false, fmt.Errorf("readmodel %s: %q: %w: %w", m.name, id, ErrCorrupt, err)
			}
			args = []string{strconv.FormatUint(e.Version, 10)}
		case st == stateMissing && version == 1 || st == stateDeleted && e.Version == version-1:
			args = []string{codeArg(expectFresh)} // a fresh start: the zero T is the truth
		default:
			args = []string{codeArg(expectNone)} // no earlier state: deferred or refused
		}
		if args[0] != codeArg(expectNone) {
			if err := fn(&cur); err != nil {
				return false, err
			}
			b, err := msgpack.Marshal(cur)
			if err != nil {
				return false, fmt.Errorf("readmodel %s: encode %q: %w", m.name, id, err)
			}
			args = append(args, fieldDoc, string(b))
		}
		o, err := m.write(ctx, guard, source, id, version, m.opts.ttl, opUpdate, args)
		if err != nil {
			return false, err
		}
		if o != outConflict {
			return m.count(id, version, source, o)
		}
	}
	return false, fmt.Errorf("readmodel %s: update %q at version %d: the entry changed between read and write %d times", m.name, id, version, maxUpdateAttempts)
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
