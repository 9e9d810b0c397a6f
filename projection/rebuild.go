package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/streamfold/streamfold/eventstore"
)

// ErrIncompleteHistory: an entity stream no longer holds its whole history
// (its oldest events were truncated, by package retention behind a
// snapshot), so a projection cannot be rebuilt from it. The error is an
// *IncompleteHistoryError naming the entity.
var ErrIncompleteHistory = errors.New("projection: entity history incomplete")

// IncompleteHistoryError names an entity whose stream cannot be folded from
// the start of its life.
type IncompleteHistoryError struct {
	Projection string
	Stream     eventstore.StreamID
	Start      uint64 // the first version of the entity's current life
	First      uint64 // the first version still stored; 0: none (trimmed to empty)
	Version    uint64 // the stream's version
}

func (e *IncompleteHistoryError) Error() string {
	held := fmt.Sprintf("holds versions %d..%d", e.First, e.Version)
	if e.First == 0 {
		held = fmt.Sprintf("holds no event (version %d)", e.Version)
	}
	return fmt.Sprintf("projection %s: cannot rebuild %s: its stream %s but its history starts at version %d (events were truncated); "+
		"a rebuild needs whole histories: replay the truncated events from the archive, or do not truncate the streams of a category a projection rebuilds from",
		e.Projection, e.Stream, held, e.Start)
}

// Unwrap makes errors.Is(err, ErrIncompleteHistory) true.
func (e *IncompleteHistoryError) Unwrap() error { return ErrIncompleteHistory }

// RebuildStats reports a rebuild.
type RebuildStats struct {
	Entities int64
	Events   int64
}

// Rebuild fills a projection's read model from the entity streams (the
// truth; partition logs are trimmed), for a new read-model version built
// beside the live one (blue/green):
//
//  1. it creates the projection's consumer groups at the current end of
//     every partition log (or keeps them, if they exist): the cut;
//  2. it applies, entity by entity, every stored event at or before its
//     partition's cut;
//  3. run the projection's Runner afterwards: it applies the events after
//     the cut. No event is applied by both, none by neither.
//
// Then switch readers over (readmodel.Versions.Switch) once the runner has
// caught up. concurrency bounds the entities folded at once (0: 16). A
// handler error stops the rebuild; it is safe to run again (writes are
// version-guarded).
func Rebuild(ctx context.Context, store *eventstore.Store, p Projection, concurrency int) (RebuildStats, error) {
	var st RebuildStats
	if err := p.Validate(); err != nil {
		return st, err
	}
	if concurrency <= 0 {
		concurrency = 16
	}
	h := Chain(p.Handler, Recover())
	c := store.Client()
	ks := store.Keys()
	for _, cat := range p.Categories {
		n, err := store.Partitions(ctx, cat)
		if err != nil {
			return st, err
		}
		for part := range n {
			log := ks.Log(cat, part)
			if err := c.Do(ctx, c.B().XgroupCreate().Key(log).Group(p.Name).Id("$").Mkstream().Build()).Error(); err != nil && !isBusyGroup(err) {
				return st, fmt.Errorf("rebuild %s: create group on %s/%d: %w", p.Name, cat, part, err)
			}
			g, err := groupInfo(c.Do(ctx, c.B().XinfoGroups().Key(log).Build()), p.Name)
			if err != nil {
				return st, fmt.Errorf("rebuild %s: %w", p.Name, err)
			}
			cut := g.delivered
			ids, err := entityIDs(ctx, store, cat, part)
			if err != nil {
				return st, err
			}
			if err := rebuildEntities(ctx, store, p.Name, h, cat, ids, cut, concurrency, &st); err != nil {
				return st, fmt.Errorf("rebuild %s: %w", p.Name, err)
			}
		}
	}
	return st, nil
}

// entityIDs lists the entity streams of one partition with SCAN on every
// node (only the node owning the partition's slot has any).
func entityIDs(ctx context.Context, store *eventstore.Store, cat string, part int) ([]string, error) {
	ks := store.Keys()
	pattern := ks.Stream(eventstore.StreamID{Category: cat, ID: "*"}, part)
	seen := map[string]bool{}
	var out []string
	for _, node := range store.Client().Nodes() {
		cursor := uint64(0)
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Type("stream").Build()).AsScanEntry()
			if err != nil {
				return nil, fmt.Errorf("scan %s: %w", pattern, err)
			}
			for _, key := range e.Elements {
				sid, _, err := ks.ParseStreamKey(key)
				if err != nil || seen[sid.ID] {
					continue
				}
				seen[sid.ID] = true
				out = append(out, sid.ID)
			}
			if e.Cursor == 0 {
				break
			}
			cursor = e.Cursor
		}
	}
	return out, nil
}

func rebuildEntities(ctx context.Context, store *eventstore.Store, name string, h Handler, cat string, ids []string, cut eventstore.Position, concurrency int, st *RebuildStats) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(concurrency, len(ids)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				sid := eventstore.StreamID{Category: cat, ID: ids[i]}
				if err := rebuildEntity(ctx, store, name, h, sid, cut, st); err != nil {
					cancel(err)
					return
				}
				atomic.AddInt64(&st.Entities, 1)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// rebuildEntity folds one entity's events up to the cut, after checking
// that its stream starts where its life does: a fold of what a truncated
// stream still holds would be a wrong read model, silently.
func rebuildEntity(ctx context.Context, store *eventstore.Store, name string, h Handler, sid eventstore.StreamID, cut eventstore.Position, st *RebuildStats) error {
	checked := false
	for ev, err := range store.Read(ctx, sid, 0) {
		var unknown *eventstore.UnknownEventTypeError
		if err != nil && !asUnknown(err, &unknown) {
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				return nil // deleted since the scan: the runner applies its deletion marker
			}
			return fmt.Errorf("read %s: %w", sid, err)
		}
		if !checked {
			if err := checkWhole(ctx, store, name, sid, ev.Version); err != nil {
				return err
			}
			checked = true
		}
		if !ev.Position.IsZero() && ev.Position.Compare(cut) > 0 {
			break // after the cut: the runner's
		}
		if err := h.Handle(ctx, ev); err != nil {
			return fmt.Errorf("%s v%d: %w", sid, ev.Version, err)
		}
		atomic.AddInt64(&st.Events, 1)
	}
	if !checked {
		// A stream that exists but holds no event: trimmed to empty.
		return checkWhole(ctx, store, name, sid, 0)
	}
	return nil
}

// checkWhole returns an *IncompleteHistoryError unless the entity's stream
// holds its history from the first version of its current life. first is
// the version of the first event read (0: none).
//
// The first life starts at version 1; this is the common case and costs no
// round trip.
// TODO(eventstore.Store.Info): a stream re-created after Delete starts at
// Info.Start (the deletion marker's version + 1); ask Info when first > 1.
func checkWhole(ctx context.Context, store *eventstore.Store, name string, sid eventstore.StreamID, first uint64) error {
	if first == 1 {
		return nil
	}
	v, err := store.Version(ctx, sid)
	if err != nil {
		return fmt.Errorf("version of %s: %w", sid, err)
	}
	if first == 0 && v == 0 {
		return nil // nothing written: nothing missing
	}
	return &IncompleteHistoryError{Projection: name, Stream: sid, Start: 1, First: first, Version: v}
}
