package projection_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// Renamed is a type the projecting process has not registered (a newer
// writer added it).
type Renamed struct{ Name string }

// An event whose type the projecting process has not registered is, by
// default, dead-lettered as KindUnknownType with its entity parked (WaitFor
// reports it instead of success, a retry keeps it parked while the type is
// still unknown, and a process that registers it applies it on retry);
// UnknownSkip acks it unhandled, UnknownDeliver hands it over with Data nil;
// Rebuild refuses it by default and skips it with UnknownSkip.
func TestUnregisteredTypes(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := tg.Client
		reader := newStore(t, c, tg.Namespace, 2) // knows Deposited only
		wreg := newRegistry()
		eventstore.MustRegister[Renamed](wreg, "renamed")
		writer, err := eventstore.New(c, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(wreg), eventstore.WithPartitions(2))
		if err != nil {
			t.Fatal(err)
		}
		u1, u2 := eventstore.Stream(category, "u1"), eventstore.Stream(category, "u2")
		if _, err := writer.Append(ctx, u1, eventstore.NoStream, eventstore.NewEvent(Deposited{Amount: 1}), eventstore.NewEvent(Renamed{Name: "x"})); err != nil {
			t.Fatal(err)
		}
		last, err := writer.Append(ctx, u1, eventstore.Exact(2), eventstore.NewEvent(Deposited{Amount: 2}))
		if err != nil {
			t.Fatal(err)
		}
		other, err := writer.Append(ctx, u2, eventstore.NoStream, eventstore.NewEvent(Deposited{Amount: 5}))
		if err != nil {
			t.Fatal(err)
		}
		// handler counts every event it gets, and the ones without Data.
		var nilData atomic.Int64
		handler := func(m *readmodel.Model) projection.HandlerFunc {
			return func(ctx context.Context, ev eventstore.RecordedEvent) error {
				amt := int64(0)
				switch d := ev.Data.(type) {
				case Deposited:
					amt = d.Amount
				case nil:
					nilData.Add(1)
				}
				_, err := m.Patch(ctx, ev.Stream.ID, ev.Version, readmodel.IncrBy("n", 1), readmodel.IncrBy("sum", amt))
				return err
			}
		}
		run := func(s *eventstore.Store, name string, policy projection.UnknownTypes) (*projection.Runner, *readmodel.Model, func()) {
			m := newModel(t, c, tg.Namespace, name)
			r, err := projection.NewRunner(s, projection.Projection{Name: name, Categories: []string{category}, Handler: handler(m), UnknownTypes: policy},
				projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
			if err != nil {
				t.Fatal(err)
			}
			return r, m, runRunner(t, r)
		}
		entry := func(m *readmodel.Model, id string) readmodel.Entry {
			t.Helper()
			e, err := m.GetFresh(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}

		// Default: dead-lettered, parked, reported.
		r, m, stop := run(reader, "strict", projection.UnknownDeadLetter)
		if err := r.WaitFor(ctx, other); err != nil {
			t.Fatal(err)
		}
		var de *projection.DeadLetteredError
		if err := r.WaitFor(ctx, last); !errors.As(err, &de) {
			t.Fatalf("WaitFor past an unregistered type: %v, want a DeadLetteredError", err)
		}
		kinds := map[string]int{}
		for l, err := range r.DeadLetters().List(ctx, category) {
			if err != nil {
				t.Fatal(err)
			}
			kinds[l.Kind]++
			if l.Kind == projection.KindUnknownType && (l.Version != 2 || l.Event.Type != "renamed") {
				t.Errorf("letter %+v, want u1 v2 of type renamed", l)
			}
		}
		if kinds[projection.KindUnknownType] != 1 || kinds[projection.KindParked] != 1 || len(kinds) != 2 {
			t.Fatalf("dead letters by kind %v, want 1 unknown-type and 1 parked", kinds)
		}
		if e := entry(m, "u1"); e.Version != 1 || e.Fields["n"] != "1" {
			t.Fatalf("u1 with v2 unregistered: %+v, want only v1 applied", e)
		}
		// A retry while the type is still unknown keeps it parked.
		if err := r.DeadLetters().Retry(ctx, u1); err != nil {
			t.Fatal(err)
		}
		await(t, ctx, "the retry handled", func() bool {
			n, err := c.Do(ctx, c.B().Xlen().Key(reader.Keys().PartitionKey(category, last.Partition, "proj:strict:ctl")).Build()).AsInt64()
			return err == nil && n == 0
		})
		if err := r.WaitFor(ctx, last); !errors.As(err, &de) {
			t.Fatalf("after a retry with the type still unknown: %v, want still parked", err)
		}
		stop()
		// A process that registers the type applies it on retry.
		r, m, stop = run(writer, "strict", projection.UnknownDeadLetter)
		if err := r.DeadLetters().Retry(ctx, u1); err != nil {
			t.Fatal(err)
		}
		await(t, ctx, "u1 applied after registering the type", func() bool { return r.WaitFor(ctx, last) == nil })
		if e := entry(m, "u1"); e.Version != 3 || e.Fields["n"] != "3" || e.Fields["sum"] != "3" {
			t.Fatalf("u1 after the retry: %+v, want v3, n 3, sum 3", e)
		}
		stop()

		// UnknownSkip: acked unhandled.
		r, m, stop = run(reader, "skip", projection.UnknownSkip)
		if err := r.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
		if e := entry(m, "u1"); e.Version != 3 || e.Fields["n"] != "2" || e.Fields["sum"] != "3" {
			t.Fatalf("u1 with UnknownSkip: %+v, want v3, n 2, sum 3", e)
		}
		stop()
		// UnknownDeliver: handed over with Data nil.
		r, m, stop = run(reader, "deliver", projection.UnknownDeliver)
		if err := r.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
		if e := entry(m, "u1"); e.Fields["n"] != "3" || nilData.Load() != 1 {
			t.Fatalf("u1 with UnknownDeliver: %+v, %d events without Data, want n 3 and 1", e, nilData.Load())
		}
		stop()

		// Rebuild: refused by default, skipped with UnknownSkip.
		rm := newModel(t, c, tg.Namespace, "rebuilt")
		_, err = projection.Rebuild(ctx, reader, projection.Projection{Name: "rebuilt", Categories: []string{category}, Handler: handler(rm)}, 2)
		var ue *eventstore.UnknownEventTypeError
		if !errors.As(err, &ue) {
			t.Fatalf("Rebuild past an unregistered type: %v, want an UnknownEventTypeError", err)
		}
		if _, err := projection.Rebuild(ctx, reader, projection.Projection{Name: "rebuilt", Categories: []string{category}, Handler: handler(rm), UnknownTypes: projection.UnknownSkip}, 2); err != nil {
			t.Fatal(err)
		}
		if e := entry(rm, "u1"); e.Fields["n"] != "2" {
			t.Fatalf("u1 rebuilt with UnknownSkip: %+v, want n 2", e)
		}
	})
}
