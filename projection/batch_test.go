package projection_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// TestBatchFailureFallsBackPerEvent: one batch holds many entities' events
// and a poison one whose write fails inside the batch's script, after
// earlier writes of the same call were applied. The runner applies the
// batch again event by event: the applied writes are skipped by the guard
// (no entity counted twice), the poison event is dead-lettered with its
// entity's later events parked behind it, and a retry after the fix
// completes the entity in order.
func TestBatchFailureFallsBackPerEvent(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 1)
		m := newModel(t, tg.Client, tg.Namespace, "batchpoison")
		var batches, batchEvents atomic.Int64
		inner := countingBatch(m)
		h := batchSpy{BatchHandler: inner, batches: &batches, events: &batchEvents}

		// Everything is appended before the runner starts, so it is read
		// in one batch: ok entities' events 1-2, "bad" 1-3, ok 3-5.
		if _, err := appendEvents(ctx, s, "ok", 20, 0, 2, 4); err != nil {
			t.Fatal(err)
		}
		bad := eventstore.Stream(category, "bad")
		for v := uint64(1); v <= 3; v++ {
			if _, err := s.Append(ctx, bad, eventstore.Exact(v-1), eventstore.Event{Data: Deposited{Amount: amount("bad", v)}}); err != nil {
				t.Fatal(err)
			}
		}
		others, err := appendEvents(ctx, s, "ok", 20, 2, 3, 4)
		if err != nil {
			t.Fatal(err)
		}
		// The poison: bad's entry has a malformed version, so its first
		// write fails in the script (Redis keeps the writes before it).
		c := tg.Client
		if err := c.Do(ctx, c.B().Hset().Key(m.Key("bad")).FieldValue().FieldValue("_v", "x").Build()).Error(); err != nil {
			t.Fatal(err)
		}

		r, err := projection.NewRunner(s, projection.Projection{Name: "batchpoison", Categories: []string{category}, Handler: h},
			projection.WithWorkers(1), projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r)
		waitAll(t, ctx, r, others)
		if lost, doubled := checkFold(t, ctx, m, "ok", 20, 5); lost != 0 || doubled != 0 {
			t.Fatalf("lost %d, doubled %d", lost, doubled)
		}
		if batches.Load() == 0 || batchEvents.Load() < 100 {
			t.Fatalf("batch path not used: %d batches, %d events", batches.Load(), batchEvents.Load())
		}
		dl := r.DeadLetters()
		var kinds []string
		await(t, ctx, "3 dead letters", func() bool {
			kinds = kinds[:0]
			for l, err := range dl.List(ctx, category) {
				if err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, fmt.Sprintf("%s:%d", l.Kind, l.Version))
			}
			return len(kinds) == 3
		})
		if want := []string{"failed:1", "parked:2", "parked:3"}; !slices.Equal(kinds, want) {
			t.Fatalf("letters %v, want %v", kinds, want)
		}

		// The fix, then a retry: bad is applied in order.
		if err := c.Do(ctx, c.B().Del().Key(m.Key("bad")).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if err := dl.Retry(ctx, bad); err != nil {
			t.Fatal(err)
		}
		res, err := s.Append(ctx, bad, eventstore.Exact(3), eventstore.Event{Data: Deposited{Amount: amount("bad", 4)}})
		if err != nil {
			t.Fatal(err)
		}
		await(t, ctx, "retry applied", func() bool { return r.WaitFor(ctx, res) == nil })
		e, err := m.GetFresh(ctx, "bad")
		if err != nil || e.Version != 4 || e.Fields["n"] != "4" || e.Fields["sum"] != fmt.Sprint(expectedSum("bad", 4)) {
			t.Fatalf("bad = %+v, %v", e, err)
		}
	})
}

type batchSpy struct {
	projection.BatchHandler
	batches, events *atomic.Int64
}

func (b batchSpy) HandleBatch(ctx context.Context, evs []eventstore.RecordedEvent) error {
	b.batches.Add(1)
	b.events.Add(int64(len(evs)))
	return b.BatchHandler.HandleBatch(ctx, evs)
}

// TestBatchWrites: a readmodel.Batch applies its writes in order per key,
// version-guarded, across slots on a cluster, and reports each outcome.
func TestBatchWrites(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		m := newModel(t, tg.Client, tg.Namespace, "batchwrites")
		var b readmodel.Batch
		hot := uint64(0)
		for i := range 50 {
			// A hot key interleaved: past 256 writes a call is closed to new
			// keys, never split for a key already in it.
			for range 2 {
				hot++
				if err := b.Patch(m, "hot", hot, readmodel.IncrBy("n", 1)); err != nil {
					t.Fatal(err)
				}
			}
			id := fmt.Sprint("e", i)
			for v := uint64(1); v <= 3; v++ {
				if err := b.Patch(m, id, v, readmodel.IncrBy("n", 1)); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Patch(m, id, 2, readmodel.IncrBy("n", 1)); err != nil { // a redelivery
				t.Fatal(err)
			}
		}
		if err := b.Set(m, "s", 1, map[string]string{"x": "1"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(m, "s", 2); err != nil {
			t.Fatal(err)
		}
		applied, err := b.Exec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) != 302 || b.Len() != 0 {
			t.Fatalf("%d results, %d left", len(applied), b.Len())
		}
		if e, err := m.GetFresh(ctx, "hot"); err != nil || e.Version != 100 || e.Fields["n"] != "100" {
			t.Fatalf("hot = %+v %v", e, err)
		}
		for i := range 50 {
			if got := applied[6*i+2 : 6*i+6]; !slices.Equal(got, []bool{true, true, true, false}) {
				t.Fatalf("entity %d: applied %v", i, got)
			}
			e, err := m.GetFresh(ctx, fmt.Sprint("e", i))
			if err != nil || e.Version != 3 || e.Fields["n"] != "3" {
				t.Fatalf("e%d = %+v %v", i, e, err)
			}
		}
		if _, err := m.GetFresh(ctx, "s"); err == nil {
			t.Fatal("deleted entry found")
		}
		if st := m.Stats(); st.Applied != 252 || st.Skipped != 50 {
			t.Fatalf("stats %+v", st)
		}
	})
}
