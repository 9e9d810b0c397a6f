package projection_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// TestMixedSourcesAreLoud: the issue 13 report, item 1. A per-customer
// read model written the obvious way, Patch(customerID, ev.Version, ...),
// from five orders of one customer, gave open=1 with four events skipped by
// the version guard (versions of different streams compared), silently.
// Now the entry remembers the stream that fed it: the other orders' writes
// are refused with ErrMixedSources and dead-lettered with a message that
// says what to do, by the per-event and the batch path alike.
func TestMixedSourcesAreLoud(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		for _, batch := range []bool{false, true} {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ns := tg.Namespace + map[bool]string{false: "-event", true: "-batch"}[batch]
			s := newStore(t, tg.Client, ns, 4)
			m := newModel(t, tg.Client, ns, "customers")
			var h projection.Handler = projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
				_, err := m.Patch(ctx, "cust-1", ev.Version, readmodel.IncrBy("open", 1))
				return err
			})
			if batch {
				h = projection.Writes(func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error {
					return b.Patch(m, "cust-1", ev.Version, readmodel.IncrBy("open", 1))
				})
			}
			r, err := projection.NewRunner(s, projection.Projection{Name: "customers", Categories: []string{category}, Handler: h},
				projection.WithBlock(100*time.Millisecond), quiet())
			if err != nil {
				t.Fatal(err)
			}
			stop := runRunner(t, r)
			var results []eventstore.AppendResult
			for i := 1; i <= 5; i++ {
				res, err := s.Append(ctx, eventstore.Stream(category, "order-"+strconv.Itoa(i)), eventstore.NoStream, eventstore.Event{Data: Deposited{Amount: 1}})
				if err != nil {
					t.Fatal(err)
				}
				results = append(results, res)
			}
			parked := 0
			for _, res := range results {
				if err := r.WaitFor(ctx, res); errors.Is(err, projection.ErrDeadLettered) {
					parked++
				} else if err != nil {
					t.Fatal(err)
				}
			}
			stop()
			var letters []projection.DeadLetter
			for l, err := range r.DeadLetters().List(ctx, category) {
				if err != nil {
					t.Fatal(err)
				}
				letters = append(letters, l)
			}
			e, err := m.GetFresh(ctx, "cust-1")
			if err != nil {
				t.Fatal(err)
			}
			st := m.Stats()
			t.Logf("batch=%v: entry %v, stats %+v, %d dead letters", batch, e.Fields, st, len(letters))
			// Every order is accounted for: one applied, four dead-lettered.
			// (Skipped may be 1 on the batch path: a batch that failed on a
			// refused write is applied again event by event, and the first
			// order's write is then a redelivery of its own stream.)
			if st.Applied != 1 || st.Skipped > 1 {
				t.Errorf("batch=%v: stats %+v, want one order applied and none skipped but its own redelivery", batch, st)
			}
			if e.Fields["open"] != "1" || len(letters) != 4 || parked != 4 {
				t.Fatalf("batch=%v: open=%s with %d dead letters; want the first order applied and the other 4 dead-lettered", batch, e.Fields["open"], len(letters))
			}
			for _, l := range letters {
				if !strings.Contains(l.Err, "Rollup") || !strings.Contains(l.Err, "fed by another stream") {
					t.Errorf("dead letter of %s says %q: want it to say what to do", l.Stream, l.Err)
				}
			}
		}
	})
}

// TestWithSourceRefusesAnotherStream: the check itself, without a runner.
func TestWithSourceRefusesAnotherStream(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	m := newModel(t, tg.Client, tg.Namespace, "guarded")
	a, b := eventstore.Stream(category, "a"), eventstore.Stream(category, "b")
	if ok, err := m.Patch(readmodel.WithSource(ctx, a), "x", 1, readmodel.IncrBy("n", 1)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	_, err := m.Patch(readmodel.WithSource(ctx, b), "x", 2, readmodel.IncrBy("n", 1))
	var mixed *readmodel.MixedSourcesError
	if !errors.Is(err, readmodel.ErrMixedSources) || !errors.As(err, &mixed) || mixed.Source != b.String() || mixed.ID != "x" {
		t.Fatalf("write of another stream: %v", err)
	}
	// A redelivery of b's event, older than the entry, is refused too (not
	// skipped: that skip is what hid the misuse).
	if _, err := m.Patch(readmodel.WithSource(ctx, b), "x", 1, readmodel.IncrBy("n", 1)); !errors.Is(err, readmodel.ErrMixedSources) {
		t.Fatalf("older write of another stream: %v", err)
	}
	// The stream survives a Set, a delete and a write without a source.
	for _, step := range []func() (bool, error){
		func() (bool, error) { return m.Set(readmodel.WithSource(ctx, a), "x", 2, map[string]string{"n": "5"}) },
		func() (bool, error) { return m.Set(ctx, "x", 3, map[string]string{"n": "6"}) },
		func() (bool, error) { return m.Delete(readmodel.WithSource(ctx, a), "x", 4) },
		func() (bool, error) { return m.Patch(readmodel.WithSource(ctx, a), "x", 5, readmodel.IncrBy("n", 1)) },
	} {
		if ok, err := step(); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if _, err := m.Patch(readmodel.WithSource(ctx, b), "x", 99); !errors.Is(err, readmodel.ErrMixedSources) {
			t.Fatalf("after a step: %v", err)
		}
	}
	e, err := m.GetFresh(ctx, "x")
	if err != nil || e.Version != 5 || len(e.Fields) != 1 || e.Fields["n"] != "1" {
		t.Fatalf("entry %+v %v: the recorded stream must not show as a field", e, err)
	}
}
