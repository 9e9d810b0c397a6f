package aggregate_test

import (
	"errors"
	"testing"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/snapshot"
)

// Delete, then re-create: the new life loads as itself, whatever snapshot
// of the old life arrives late (Offer writes in the background) or is left
// behind by older code.
func TestDeleteAndRecreate(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		e := newEnv(t, tg)
		ctx := ctxT(t)
		typ := accountType(t)
		snaps := e.snapshots(t, snapshot.WithPolicy(snapshot.Every(1000)))
		withSnaps := repo(t, e.store, typ, aggregate.WithSnapshots(snaps))
		plain := repo(t, e.store, typ)
		stream := eventstore.Stream("account", "d")
		if _, err := withSnaps.Update(ctx, "d", aggregate.Decide(open, Open{Owner: "old"})); err != nil {
			t.Fatal(err)
		}
		var old *aggregate.Aggregate[Account]
		for range 9 {
			var err error
			if old, err = withSnaps.Update(ctx, "d", aggregate.Decide(deposit, Deposit{Amount: 10})); err != nil {
				t.Fatal(err)
			}
		}
		st := old.State()
		oldState, err := eventstore.Msgpack{}.Marshal(&st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Save(ctx, stream, snapshot.Snapshot{Version: 10, SchemaVersion: 1, State: oldState}); err != nil {
			t.Fatal(err)
		}
		p, _, err := storetest.Locate(ctx, e.store, stream)
		if err != nil {
			t.Fatal(err)
		}
		snapKey := e.store.Keys().Snapshot(stream, p)
		c := tg.Client
		oldBytes, err := c.Do(ctx, c.B().Get().Key(snapKey).Build()).AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Delete(ctx, stream, eventstore.Exact(10)); err != nil {
			t.Fatal(err)
		}
		// A snapshot of the old life arriving after the Delete is refused.
		if _, err := snaps.Save(ctx, stream, snapshot.Snapshot{Version: 10, SchemaVersion: 1, State: oldState}); !errors.Is(err, snapshot.ErrStale) {
			t.Fatalf("snapshot after Delete: %v", err)
		}
		for _, r := range []*aggregate.Repository[Account]{withSnaps, plain} {
			a, err := r.Load(ctx, "d")
			if err != nil || !a.IsNew() || a.State() != (Account{}) {
				t.Fatalf("load of a deleted aggregate: %+v v%d %v", a.State(), a.Version(), err)
			}
		}
		// The new life continues after the deletion marker (version 11).
		a, err := withSnaps.Update(ctx, "d", aggregate.Decide(open, Open{Owner: "new"}))
		if err != nil || a.Version() != 12 {
			t.Fatalf("re-create: v%d %v", a.Version(), err)
		}
		// ... and the late snapshot of the old life is refused again.
		if !snaps.Offer(stream, snapshot.Snapshot{Version: 10, SchemaVersion: 1, State: oldState}) {
			t.Fatal("offer refused")
		}
		// One left behind by older code (planted as it was) is not used.
		if err := c.Do(ctx, c.B().Set().Key(snapKey).Value(string(oldBytes)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		want := Account{Owner: "new", Open: true}
		for i, r := range []*aggregate.Repository[Account]{withSnaps, plain} {
			if _, err := r.Update(ctx, "d", aggregate.Decide(deposit, Deposit{Amount: 5})); err != nil {
				t.Fatal(err)
			}
			want.Balance += 5
			want.Deposits++
			a, err := r.Load(ctx, "d")
			if err != nil || a.Version() != 13+uint64(i) || a.State() != want {
				t.Fatalf("load of the new life: %+v v%d %v, want %+v", a.State(), a.Version(), err, want)
			}
		}
		flush(t, snaps)
		if st := snaps.Stats(); st.Stale != 1 || st.Failed != 0 {
			t.Fatalf("snapshot stats %+v: want the late one counted stale", st)
		}
	})
}

// A stream truncated behind a snapshot the loading code cannot use (another
// schema, corrupt) loads as a typed error, never as a shorter fold.
func TestLoadTruncatedBehindUnusableSnapshot(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		e := newEnv(t, tg)
		ctx := ctxT(t)
		snaps := e.snapshots(t, snapshot.WithPolicy(snapshot.Every(5)))
		r1 := repo(t, e.store, accountType(t), aggregate.WithSnapshots(snaps))
		c := tg.Client
		for _, id := range []string{"empty", "part"} {
			if _, err := r1.Update(ctx, id, aggregate.Decide(open, Open{Owner: id})); err != nil {
				t.Fatal(err)
			}
			for range 4 {
				if _, err := r1.Update(ctx, id, aggregate.Decide(deposit, Deposit{Amount: 100})); err != nil {
					t.Fatal(err)
				}
			}
		}
		flush(t, snaps)
		trim := func(id string, minid string) {
			_, key, err := storetest.Locate(ctx, e.store, eventstore.Stream("account", id))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Do(ctx, c.B().Xtrim().Key(key).Minid().Threshold(minid).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
		trim("empty", "6-0") // all five events, behind the v5 snapshot
		trim("part", "3-0")  // events 1 and 2
		// Release 2's state encoding cannot use the v1 snapshot.
		snaps2 := e.snapshots(t)
		for name, r := range map[string]*aggregate.Repository[Account]{
			"schema 2":       repo(t, e.store, accountType(t, aggregate.StateVersion(2)), aggregate.WithSnapshots(snaps2)),
			"no snapshots":   repo(t, e.store, accountType(t)),
			"schema 2 plain": repo(t, e.store, accountType(t, aggregate.StateVersion(2))),
		} {
			for _, id := range []string{"empty", "part"} {
				a, err := r.Load(ctx, id)
				if !errors.Is(err, aggregate.ErrHistoryGap) {
					var st any
					if a != nil {
						st = a.State()
					}
					t.Errorf("%s: load of %q: %v %v, want ErrHistoryGap", name, id, st, err)
				}
			}
		}
		// With the snapshot it loads whole.
		a, err := r1.Load(ctx, "empty")
		if err != nil || a.Version() != 5 || a.State().Balance != 400 {
			t.Fatalf("load with the snapshot: %+v v%d %v", a.State(), a.Version(), err)
		}
	})
}

// An operator removed the last event by hand (XDEL): Update reports the
// damaged stream at once instead of conflicting until it gives up.
func TestUpdateAfterTailRemoved(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		e := newEnv(t, tg)
		ctx := ctxT(t)
		r := repo(t, e.store, accountType(t))
		if _, err := r.Update(ctx, "x", aggregate.Decide(open, Open{Owner: "x"})); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := r.Update(ctx, "x", aggregate.Decide(deposit, Deposit{Amount: 1})); err != nil {
				t.Fatal(err)
			}
		}
		_, key, _ := storetest.Locate(ctx, e.store, eventstore.Stream("account", "x"))
		c := tg.Client
		if err := c.Do(ctx, c.B().Xdel().Key(key).Id("3-0").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		_, err := r.Update(ctx, "x", aggregate.Decide(deposit, Deposit{Amount: 1}))
		var ce *aggregate.ConflictError
		if !errors.Is(err, eventstore.ErrStreamDamaged) || errors.As(err, &ce) {
			t.Fatalf("update after the tail was removed: %v", err)
		}
	})
}
