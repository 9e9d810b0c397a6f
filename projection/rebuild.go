package projection

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/streamfold/streamfold/eventstore"
)

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
			if err := rebuildEntities(ctx, store, h, cat, ids, cut, concurrency, &st); err != nil {
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

func rebuildEntities(ctx context.Context, store *eventstore.Store, h Handler, cat string, ids []string, cut eventstore.Position, concurrency int, st *RebuildStats) error {
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
				for ev, err := range store.Read(ctx, sid, 0) {
					var unknown *eventstore.UnknownEventTypeError
					if err != nil && !asUnknown(err, &unknown) {
						cancel(fmt.Errorf("read %s: %w", sid, err))
						return
					}
					if !ev.Position.IsZero() && ev.Position.Compare(cut) > 0 {
						break // after the cut: the runner's
					}
					if err := h.Handle(ctx, ev); err != nil {
						cancel(fmt.Errorf("%s v%d: %w", sid, ev.Version, err))
						return
					}
					atomic.AddInt64(&st.Events, 1)
				}
				atomic.AddInt64(&st.Entities, 1)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}
