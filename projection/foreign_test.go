package projection_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// Well-formed entries added to a partition log by hand (valid envelopes of a
// registered type, copied from real entries) are not the events the store
// wrote into the entity streams they name: none may change a read model.
// Each is dead-lettered as foreign, its entity is not parked, and the
// entity's real events (including the ones at the versions the forgeries
// claim) are applied exactly once. A retry of the entity does not apply them.
// The one forgery the reader does not check (the next version of an entity
// it has seen, before the real event) is shown by the real event, which is
// dead-lettered with its entity parked and a message to rebuild.
func TestForgedLogEntriesNeverApplied(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := tg.Client
		s := newStore(t, c, tg.Namespace, 1)
		m := newModel(t, c, tg.Namespace, "forged")
		appendAll(t, ctx, s, "a", 2, 3, 2)
		logKey := s.Keys().Log(category, 0)
		entries, err := c.Do(ctx, c.B().Xrange().Key(logKey).Start("-").End("+").Build()).AsXRangeSlices()
		if err != nil {
			t.Fatal(err)
		}
		envelope := map[string]string{} // "<entity> <v>" -> envelope
		for _, e := range entries {
			f := map[string]string{}
			for _, fv := range e.FieldValues {
				f[fv.Field] = fv.Value
			}
			envelope[f["s"]+" "+f["v"]] = f["e"]
		}
		e := envelope["a0 2-0"]
		if e == "" {
			t.Fatalf("no log entry of a0 v2 among %d", len(entries))
		}
		forge := func(entity, v, env string) {
			t.Helper()
			if err := c.Do(ctx, c.B().Xadd().Key(logKey).Id("*").FieldValue().
				FieldValue("s", entity).FieldValue("v", v).FieldValue("e", env).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
		forge("nobody", "1-0", e)              // an entity that was never written
		forge("a0", "999-0", e)                // far beyond the stream's version
		forge("a1", "4-0", envelope["a1 3-0"]) // the next version, before the real one
		forge("a0", "2-0", e)                  // a copy of a real entry
		forge("a1", "x-y", e)                  // a version Redis cannot parse
		want := 5

		res, err := appendEvents(ctx, s, "a", 2, 3, 3, 2)
		if err != nil {
			t.Fatal(err)
		}
		r, err := projection.NewRunner(s, projection.Projection{Name: "forged", Categories: []string{category}, Handler: counting(m)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		stop := runRunner(t, r)
		defer stop()
		waitAll(t, ctx, r, res)
		if lost, doubled := checkFold(t, ctx, m, "a", 2, 6); lost+doubled != 0 {
			t.Fatalf("lost %d doubled %d", lost, doubled)
		}
		if _, err := m.GetFresh(ctx, "nobody"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("read model entry of the never-written entity: %v, want ErrNotFound", err)
		}
		var letters []projection.DeadLetter
		dl := projection.NewDeadLetters(s, "forged")
		for l, err := range dl.List(ctx, category) {
			if err != nil {
				t.Fatal(err)
			}
			letters = append(letters, l)
		}
		if len(letters) != want {
			t.Fatalf("%d dead letters, want %d: %+v", len(letters), want, letters)
		}
		for _, l := range letters {
			if l.Kind != projection.KindForeign || !strings.Contains(l.Err, "not") {
				t.Errorf("dead letter %s of %s %d: kind %q err %q, want foreign with a reason", l.ID, l.Stream, l.Version, l.Kind, l.Err)
			}
		}
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Parked != 0 {
			t.Errorf("%d entities parked behind foreign entries", st[0].Parked)
		}
		// A retry of a0 does not apply its foreign letters.
		if err := dl.Retry(ctx, eventstore.Stream(category, "a0")); err != nil {
			t.Fatal(err)
		}
		more, err := appendEvents(ctx, s, "a", 2, 6, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		waitAll(t, ctx, r, more)
		await(t, ctx, "the retry request handled", func() bool {
			n, err := c.Do(ctx, c.B().Xlen().Key(s.Keys().PartitionKey(category, 0, "proj:forged:ctl")).Build()).AsInt64()
			return err == nil && n == 0
		})
		if lost, doubled := checkFold(t, ctx, m, "a", 2, 7); lost+doubled != 0 {
			t.Fatalf("after a retry: lost %d doubled %d", lost, doubled)
		}

		// While running, an entity the reader has seen: an entry forged at
		// its next version, before the real event, is taken (it follows
		// the last one seen, so it is not checked); the real event then
		// shows it, and is dead-lettered with its entity parked: loud.
		forge("a0", "100-0", e) // a gap: checked, foreign
		forge("a1", "8-0", e)
		// Two real events: the second follows the first's version, and
		// must not hide (by moving on) that the first met a forgery.
		real, err := s.Append(ctx, eventstore.Stream(category, "a1"), eventstore.Exact(7),
			eventstore.NewEvent(Deposited{Amount: amount("a1", 8)}), eventstore.NewEvent(Deposited{Amount: amount("a1", 9)}))
		if err != nil {
			t.Fatal(err)
		}
		var de *projection.DeadLetteredError
		if err := r.WaitFor(ctx, real); !errors.As(err, &de) {
			t.Fatalf("WaitFor the real event after a forged one at its version: %v, want a DeadLetteredError", err)
		}
		kinds := map[string]int{}
		for l, err := range dl.List(ctx, category) {
			if err != nil {
				t.Fatal(err)
			}
			kinds[l.Kind]++
			if l.Kind == projection.KindFailed && (l.Stream.ID != "a1" || l.Version != 8 || !strings.Contains(l.Err, "rebuild")) {
				t.Errorf("letter %+v, want a1 v8 saying to rebuild", l)
			}
			if l.Kind == projection.KindParked && (l.Stream.ID != "a1" || l.Version != 9) {
				t.Errorf("letter %+v, want a1 v9 parked behind v8", l)
			}
		}
		if kinds[projection.KindForeign] != want+1 || kinds[projection.KindFailed] != 1 || kinds[projection.KindParked] != 1 {
			t.Errorf("dead letters by kind %v, want %d foreign, 1 failed and 1 parked", kinds, want+1)
		}
	})
}
