package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// Delete, then re-create: the deletion marker leaves a read-model tombstone,
// and the new life's events (whose versions continue after the marker) are
// applied over it, by the runner and by the cache-aside loader alike.
func TestDeleteAndRecreateReachesReadModels(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 2)
		// The loader folds the entity's events, as a cache-aside read does.
		fold := func(ctx context.Context, id string) (readmodel.Entry, error) {
			var n, sum int64
			var v uint64
			for ev, err := range s.Read(ctx, eventstore.Stream(category, id), 0) {
				if err != nil {
					return readmodel.Entry{}, err
				}
				n, sum, v = n+1, sum+ev.Data.(Deposited).Amount, ev.Version
			}
			return readmodel.Entry{ID: id, Version: v, Fields: map[string]string{"n": strconv.FormatInt(n, 10), "sum": strconv.FormatInt(sum, 10)}}, nil
		}
		m := newModel(t, tg.Client, tg.Namespace, "balances")
		cached := newModel(t, tg.Client, tg.Namespace, "cached", readmodel.WithLoader(fold))
		h := projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			if ev.Type == eventstore.DeletedType {
				if _, err := m.Delete(ctx, ev.Stream.ID, ev.Version); err != nil {
					return err
				}
				_, err := cached.Delete(ctx, ev.Stream.ID, ev.Version)
				return err
			}
			return counting(m)(ctx, ev)
		})
		r, err := projection.NewRunner(s, projection.Projection{Name: "balances", Categories: []string{category}, Handler: h},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(200*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		stop := runRunner(t, r)
		defer stop()
		id := eventstore.Stream(category, "phoenix")
		deposit := func(exp eventstore.ExpectedVersion, amounts ...int64) eventstore.AppendResult {
			t.Helper()
			evs := make([]eventstore.Event, len(amounts))
			for i, a := range amounts {
				evs[i] = eventstore.NewEvent(Deposited{Amount: a})
			}
			res, err := s.Append(ctx, id, exp, evs...)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.WaitFor(ctx, res); err != nil {
				t.Fatal(err)
			}
			return res
		}
		check := func(model *readmodel.Model, wantV uint64, wantN, wantSum int64) {
			t.Helper()
			e, err := model.GetFresh(ctx, id.ID)
			if err != nil {
				t.Fatalf("%s: %v", model.Name(), err)
			}
			if e.Version != wantV || e.Fields["n"] != fmt.Sprint(wantN) || e.Fields["sum"] != fmt.Sprint(wantSum) {
				t.Fatalf("%s: %+v, want v%d n=%d sum=%d", model.Name(), e, wantV, wantN, wantSum)
			}
		}
		deposit(eventstore.NoStream, 100, 100, 100, 100, 100)
		check(m, 5, 5, 500)
		check(cached, 5, 5, 500) // loaded
		del, err := s.Delete(ctx, id, eventstore.Exact(5))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.WaitFor(ctx, del); err != nil {
			t.Fatal(err)
		}
		for _, model := range []*readmodel.Model{m, cached} {
			if _, err := model.GetFresh(ctx, id.ID); !errors.Is(err, readmodel.ErrNotFound) {
				t.Fatalf("%s after Delete: %v", model.Name(), err)
			}
		}
		// A new life: versions 7 and 8, after the marker (6).
		res := deposit(eventstore.NoStream, 7, 8)
		if res.Version != 8 {
			t.Fatalf("new life at version %d, want 8", res.Version)
		}
		check(m, 8, 2, 15)
		// The loader's fill of the new life is not shadowed by the tombstone.
		check(cached, 8, 2, 15)
	})
}

// WithMaxInFlight(1): a restarted instance drains every entry of its own
// pending list, one at a time, before reading new ones (issue 12 item 4: the
// read count came out as 0, the empty reply was taken as "drained", and 9
// of 10 pending entries stayed pending).
func TestMaxInFlightOneDrainsOwnPending(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 1)
		m := newModel(t, tg.Client, tg.Namespace, "one")
		appendAll(t, ctx, s, "p", 2, 5, 1)
		// A previous life of this instance read all 10 and crashed unacked.
		const me = "me"
		c := tg.Client
		log := s.Keys().Log(category, 0)
		readUnacked(t, ctx, c, log, "one", me, 10)
		r, err := projection.NewRunner(s, projection.Projection{Name: "one", Categories: []string{category}, Handler: counting(m)},
			projection.WithInstanceID(me), projection.WithMaxInFlight(1),
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		defer runRunner(t, r)()
		last := appendAll(t, ctx, s, "q", 3, 2, 1)
		waitAll(t, ctx, r, last)
		if lost, doubled := checkFold(t, ctx, m, "p", 2, 5); lost+doubled != 0 {
			t.Fatalf("pending entries: lost %d doubled %d", lost, doubled)
		}
		checkFold(t, ctx, m, "q", 3, 2)
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st {
			if p.Pending != 0 {
				t.Errorf("still pending: %+v", p)
			}
		}
	})
}
