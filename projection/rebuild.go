package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/clusterscan"
	"github.com/streamfold/streamfold/internal/rediserr"
	"github.com/streamfold/streamfold/readmodel"
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
	// Missing is the first version missing inside the stored history (an
	// event removed by hand, XDEL); 0 when the history was truncated.
	Missing uint64
}

func (e *IncompleteHistoryError) Error() string {
	if e.Missing > 0 {
		return fmt.Sprintf("projection %s: cannot rebuild %s: version %d is missing from its stream (removed by hand, XDEL), so no fold of it is whole; "+
			"loads refuse it too (aggregate.ErrHistoryGap): delete the stream and start it again, from an archive or with compensating events",
			e.Projection, e.Stream, e.Missing)
	}
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
//
// A rebuild needs whole histories. An entity whose stream no longer holds
// the first events of its life (truncated behind a snapshot by package
// retention) stops the rebuild with an *IncompleteHistoryError naming it
// (errors.Is ErrIncompleteHistory) before any of its events is handled:
// replay its archived events instead, or do not truncate the categories a
// projection is rebuilt from. An entity deleted and re-created is whole
// from its new life's start (eventstore.StreamInfo.Start): the handler gets
// its deletion marker first (Type eventstore.DeletedType, version Start-1,
// no position or time), as the runner got it from the log, then the new
// life's events. RebuildStats.Events counts the stored events handled.
func Rebuild(ctx context.Context, store *eventstore.Store, p Projection, concurrency int) (RebuildStats, error) {
	var st RebuildStats
	if err := p.Validate(); err != nil {
		return st, err
	}
	if concurrency <= 0 {
		concurrency = 16
	}
	b := rebuilder{store: store, name: p.Name, h: Chain(p.Handler, Recover()), unknownTypes: p.UnknownTypes, st: &st}
	c := store.Client()
	ks := store.Keys()
	for _, cat := range p.Categories {
		n, err := store.Partitions(ctx, cat)
		if err != nil {
			return st, err
		}
		for part := range n {
			log := ks.Log(cat, part)
			if err := c.Do(ctx, c.B().XgroupCreate().Key(log).Group(p.Name).Id("$").Mkstream().Build()).Error(); err != nil && !rediserr.IsBusyGroup(err) {
				return st, fmt.Errorf("rebuild %s: create group on %s/%d: %w", p.Name, cat, part, err)
			}
			g, err := findGroup(c.Do(ctx, c.B().XinfoGroups().Key(log).Build()), p.Name)
			if err != nil {
				return st, fmt.Errorf("rebuild %s: %w", p.Name, err)
			}
			cut := g.delivered
			ids, err := entityIDs(ctx, store, cat, part)
			if err != nil {
				return st, err
			}
			if err := b.entities(ctx, cat, ids, cut, concurrency); err != nil {
				return st, fmt.Errorf("rebuild %s: %w", p.Name, err)
			}
		}
	}
	return st, nil
}

// entityIDs lists the entity streams of one partition with SCAN on every
// node (only the node owning the partition's slot has any; replicas and
// nodes that own no slot are skipped).
func entityIDs(ctx context.Context, store *eventstore.Store, cat string, part int) ([]string, error) {
	ks := store.Keys()
	pattern := ks.Stream(eventstore.StreamID{Category: cat, ID: "*"}, part)
	seen := map[string]bool{}
	var out []string
	err := clusterscan.Keys(ctx, store.Client(), clusterscan.Options{Match: pattern, Type: "stream"}, func(_ rueidis.Client, keys []string) error {
		for _, key := range keys {
			sid, _, err := ks.ParseStreamKey(key)
			if err != nil || seen[sid.ID] {
				continue
			}
			seen[sid.ID] = true
			out = append(out, sid.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", pattern, err)
	}
	return out, nil
}

// rebuilder folds entities into a projection's handler (Rebuild).
type rebuilder struct {
	store        *eventstore.Store
	name         string // the projection's
	h            Handler
	unknownTypes UnknownTypes
	st           *RebuildStats
}

// entities folds the entities ids of cat up to the cut, concurrency at
// a time; the first error stops them.
func (b rebuilder) entities(ctx context.Context, cat string, ids []string, cut eventstore.Position, concurrency int) error {
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
				if err := b.entity(ctx, sid, cut); err != nil {
					cancel(err)
					return
				}
				atomic.AddInt64(&b.st.Entities, 1)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// rebuildEntity folds one entity's events up to the cut, after checking
// that its stream starts where its life does: a fold of what a truncated
// stream still holds would be a wrong read model, silently.
func (b rebuilder) entity(ctx context.Context, sid eventstore.StreamID, cut eventstore.Position) error {
	checked := false
	var prev uint64
	for ev, err := range b.store.Read(ctx, sid, 0) {
		var unknown *eventstore.UnknownEventTypeError
		if err != nil && !asUnknown(err, &unknown) {
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				return nil // deleted since the scan: the runner applies its deletion marker
			}
			return fmt.Errorf("read %s: %w", sid, err)
		}
		if unknown != nil && b.unknownTypes == UnknownDeadLetter {
			return fmt.Errorf("projection %s: %s v%d: %w; register the type in this process's eventstore.Registry, or set Projection.UnknownTypes (UnknownSkip, UnknownDeliver)", b.name, sid, ev.Version, err)
		}
		after := !ev.Position.IsZero() && ev.Position.Compare(cut) > 0
		if !checked {
			start, err := checkWhole(ctx, b.store, b.name, sid, ev.Version)
			if err != nil {
				return err
			}
			if start > 1 && !after {
				// A new life after a Delete. The runner got the deletion
				// marker from the log before the cut; a handler given the
				// new life without it would find no tombstone at start-1
				// and, rightly, refuse to build the entry from nothing.
				marker := eventstore.RecordedEvent{Stream: sid, Version: start - 1, Type: eventstore.DeletedType, Data: eventstore.Deleted{}}
				if err := b.h.Handle(readmodel.WithSource(ctx, sid), marker); err != nil {
					return fmt.Errorf("%s deletion marker v%d: %w", sid, marker.Version, err)
				}
			}
			checked, prev = true, ev.Version-1
		}
		if ev.Version != prev+1 {
			return &IncompleteHistoryError{Projection: b.name, Stream: sid, First: prev + 1, Missing: prev + 1}
		}
		prev = ev.Version
		if after {
			break // the runner's (with the deletion marker before it, if any)
		}
		if unknown != nil && b.unknownTypes == UnknownSkip {
			continue
		}
		if err := b.h.Handle(readmodel.WithSource(ctx, sid), ev); err != nil {
			return fmt.Errorf("%s v%d: %w", sid, ev.Version, err)
		}
		atomic.AddInt64(&b.st.Events, 1)
	}
	if !checked {
		// A stream that exists but holds no event: trimmed to empty.
		_, err := checkWhole(ctx, b.store, b.name, sid, 0)
		return err
	}
	return nil
}

// checkWhole returns the first version of the entity's current life, or an
// *IncompleteHistoryError unless its stream holds its history from there.
// first is the version of the first event read (0: none). A first life
// starts at version 1, the common case, which costs no round trip; a life
// after a Delete starts after the deletion marker (StreamInfo.Start).
func checkWhole(ctx context.Context, store *eventstore.Store, name string, sid eventstore.StreamID, first uint64) (uint64, error) {
	if first == 1 {
		return 1, nil
	}
	info, err := store.Info(ctx, sid)
	if err != nil {
		return 0, fmt.Errorf("info of %s: %w", sid, err)
	}
	if info.Version == 0 {
		return info.Start, nil // deleted since the read: nothing to fold
	}
	if info.Truncated() || first != 0 && first != info.Start {
		if first == 0 {
			first = info.First
		}
		return 0, &IncompleteHistoryError{Projection: name, Stream: sid, Start: info.Start, First: first, Version: info.Version}
	}
	return info.Start, nil
}
