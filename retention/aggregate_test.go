package retention_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
	"github.com/streamfold/streamfold/snapshot"
)

type tally struct {
	N       int
	History []int
}

type added struct{ By int }

// TestTruncatedAggregateLoadsAsBefore: an aggregate truncated behind its
// snapshot, then compacted, loads to exactly the state and version it had.
func TestTruncatedAggregateLoadsAsBefore(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		es, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace))
		if err != nil {
			t.Fatal(err)
		}
		typ := aggregate.NewType("tally", func(s *tally, e any) {
			if a, ok := e.(added); ok {
				s.N += a.By
				s.History = append(s.History, a.By)
			}
		}, aggregate.StateVersion(2))
		aggregate.MustRegisterEvent[added](typ, "added")
		snaps, err := snapshot.New(es, snapshot.WithPolicy(snapshot.Every(10)))
		if err != nil {
			t.Fatal(err)
		}
		repo, err := aggregate.NewRepository(es, typ, aggregate.WithSnapshots(snaps))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 37 {
			if _, err := repo.Update(ctx, "t1", func(a *aggregate.Aggregate[tally]) error {
				a.Raise(added{By: i})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := snaps.Close(ctx); err != nil { // flush the background writer
			t.Fatal(err)
		}
		before, err := repo.Load(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		sn, err := snaps.Get(ctx, before.Stream())
		if err != nil || sn.Version < 30 {
			t.Fatalf("snapshot: %+v %v", sn, err)
		}
		r, err := retention.New(es, []retention.Policy{{Category: "tally", Truncate: true, TruncateKeep: 0, SnapshotSchema: 2, CompactIdle: 1}},
			retention.WithSnapshots(snaps))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Apply(ctx, false)
		if err != nil || len(rep.Truncated) != 1 || rep.Truncated[0].Trimmed != int64(sn.Version) || len(rep.Compacted) != 1 {
			t.Fatalf("retention: %+v %v", rep, err)
		}
		after, err := repo.Load(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if after.Version() != before.Version() || !reflect.DeepEqual(after.State(), before.State()) {
			t.Fatalf("after truncation: version %d state %+v; before: version %d state %+v", after.Version(), after.State(), before.Version(), before.State())
		}
		// And it takes commands as before.
		a, err := repo.Update(ctx, "t1", func(a *aggregate.Aggregate[tally]) error { a.Raise(added{By: 100}); return nil })
		if err != nil || a.Version() != 38 || a.State().N != before.State().N+100 {
			t.Fatalf("update after truncation: %v", err)
		}
		t.Logf("aggregate of 37 events, snapshot at %d: trimmed %d events, loads identical", sn.Version, rep.Truncated[0].Trimmed)
	})
}
