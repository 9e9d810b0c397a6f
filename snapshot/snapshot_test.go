package snapshot_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/snapshot"
)

func TestMain(m *testing.M) { redistest.Main(m) }

type Counted struct{ N int }

func newStores(t *testing.T, tg *redistest.Target, opts ...snapshot.Option) (*eventstore.Store, *snapshot.Store) {
	t.Helper()
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Counted](reg, "Counted")
	es, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.New(es, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return es, s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func appendN(t *testing.T, es *eventstore.Store, stream eventstore.StreamID, from, n int) {
	t.Helper()
	evs := make([]eventstore.Event, n)
	for i := range evs {
		evs[i] = eventstore.NewEvent(Counted{N: from + i})
	}
	if _, err := es.Append(ctxT(t), stream, eventstore.Exact(uint64(from-1)), evs...); err != nil {
		t.Fatal(err)
	}
}

// load returns the snapshot restored (0: none) and the versions read after it.
func load(t *testing.T, s *snapshot.Store, stream eventstore.StreamID, schema int) (uint64, []uint64) {
	t.Helper()
	var snap uint64
	var got []uint64
	for ev, err := range s.Load(ctxT(t), stream, schema, func(sn snapshot.Snapshot) error {
		if string(sn.State) == "bad" {
			return errors.New("undecodable")
		}
		snap = sn.Version
		return nil
	}) {
		if errors.Is(err, eventstore.ErrStreamNotFound) && snap == 0 && len(got) == 0 {
			break // as Read: a stream that does not exist
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := snap + uint64(len(got)) + 1; ev.Version != want || ev.Data.(Counted).N != int(want) {
			t.Fatalf("event v%d %+v, want v%d", ev.Version, ev.Data, want)
		}
		got = append(got, ev.Version)
	}
	return snap, got
}

func TestLoadAndSave(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		es, s := newStores(t, tg, snapshot.WithPageSize(8))
		ctx := ctxT(t)
		st := eventstore.Stream("counter", "c1")
		if snap, got := load(t, s, st, 1); snap != 0 || len(got) != 0 {
			t.Fatalf("nothing stored: %d %v", snap, got)
		}
		if _, err := s.Get(ctx, st); !errors.Is(err, snapshot.ErrNotFound) {
			t.Fatalf("get: %v", err)
		}
		appendN(t, es, st, 1, 30)
		if snap, got := load(t, s, st, 1); snap != 0 || len(got) != 30 {
			t.Fatalf("no snapshot: %d, %d events", snap, len(got))
		}
		save := func(v uint64, schema int, state string) bool {
			t.Helper()
			ok, err := s.Save(ctx, st, snapshot.Snapshot{Version: v, SchemaVersion: schema, State: []byte(state)})
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !save(20, 1, "s20") || save(10, 1, "s10") || save(20, 1, "again") {
			t.Fatal("an older or equal snapshot replaced a newer one")
		}
		if snap, got := load(t, s, st, 1); snap != 20 || len(got) != 10 {
			t.Fatalf("snapshot at 20: %d, %d events", snap, len(got))
		}
		// Another schema: ignored on load, and replaced by any version.
		if snap, got := load(t, s, st, 2); snap != 0 || len(got) != 30 {
			t.Fatalf("other schema: %d, %d events", snap, len(got))
		}
		if !save(5, 2, "s5") {
			t.Fatal("a snapshot of a new schema did not replace the old one")
		}
		sn, err := s.Get(ctx, st)
		if err != nil || sn.Version != 5 || sn.SchemaVersion != 2 || string(sn.State) != "s5" || sn.Time.IsZero() {
			t.Fatalf("get: %+v %v", sn, err)
		}
		// A state restore refuses: ignored, counted, loaded from events.
		save(25, 2, "bad")
		if snap, got := load(t, s, st, 2); snap != 0 || len(got) != 30 || s.Stats().Ignored != 1 {
			t.Fatalf("undecodable state: %d, %d events, %+v", snap, len(got), s.Stats())
		}
		// Snapshot at the head: no event after it.
		save(30, 2, "s30")
		if snap, got := load(t, s, st, 2); snap != 30 || len(got) != 0 {
			t.Fatalf("snapshot at head: %d, %v", snap, got)
		}
		// Garbage under the key: ignored.
		p, _, _ := storetest.Locate(ctx, es, st)
		c := tg.Client
		if err := c.Do(ctx, c.B().Set().Key(es.Keys().Snapshot(st, p)).Value("\x94\xcfgarbage").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if snap, got := load(t, s, st, 2); snap != 0 || len(got) != 30 || s.Stats().Ignored != 2 {
			t.Fatalf("garbage: %d, %d events, %+v", snap, len(got), s.Stats())
		}
		if _, err := s.Get(ctx, st); !errors.Is(err, snapshot.ErrCorrupt) {
			t.Fatalf("get garbage: %v", err)
		}
		if !save(1, 2, "") {
			t.Fatal("a corrupt snapshot was not replaced")
		}
		if _, err := s.Save(ctx, st, snapshot.Snapshot{Version: 0}); err == nil {
			t.Fatal("version 0 saved")
		}
	})
}

// A full queue drops (and counts) snapshots without blocking; Close writes
// the queued ones.
func TestOfferDropsWhenFull(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		es, s := newStores(t, tg, snapshot.WithQueueSize(2), snapshot.WithWorkers(1))
		const n = 2000
		appendN(t, es, eventstore.Stream("counter", "c"), 1, n+1)
		start := time.Now()
		accepted := 0
		for i := range n {
			if s.Offer(eventstore.Stream("counter", "c"), snapshot.Snapshot{Version: uint64(i + 1), SchemaVersion: 1, State: []byte("x")}) {
				accepted++
			}
		}
		// Each Offer is a channel send attempt; 2000 of them take well under
		// one Redis round trip each.
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("%d offers took %v", n, d)
		}
		if err := s.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		if st.Dropped == 0 || st.Queued+st.Dropped != n || int(st.Queued) != accepted || st.Written+st.Skipped+st.Failed != st.Queued || st.Failed != 0 {
			t.Fatalf("stats %+v, accepted %d", st, accepted)
		}
		if s.Offer(eventstore.Stream("counter", "c"), snapshot.Snapshot{Version: n + 1, SchemaVersion: 1}) || s.Stats().Dropped != st.Dropped+1 {
			t.Fatal("offer after close accepted")
		}
	})
}

func TestPolicies(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	info := func(v, snap uint64, age time.Duration) snapshot.Info {
		i := snapshot.Info{Version: v, SnapshotVersion: snap, Now: t0}
		if snap > 0 {
			i.SnapshotTime = t0.Add(-age)
		}
		return i
	}
	cases := []struct {
		name   string
		policy snapshot.Policy
		info   snapshot.Info
		want   bool
	}{
		{"every below", snapshot.Every(100), info(99, 0, 0), false},
		{"every at", snapshot.Every(100), info(100, 0, 0), true},
		{"every since snapshot", snapshot.Every(100), info(150, 100, 0), false},
		{"every after drop", snapshot.Every(100), info(201, 100, 0), true},
		{"age none", snapshot.MaxAge(time.Hour), info(3, 0, 0), true},
		{"age young", snapshot.MaxAge(time.Hour), info(30, 10, time.Minute), false},
		{"age old", snapshot.MaxAge(time.Hour), info(30, 10, 2*time.Hour), true},
		{"age old, nothing new", snapshot.MaxAge(time.Hour), info(10, 10, 2*time.Hour), false},
		{"all", snapshot.AllOf(snapshot.Every(10), snapshot.MaxAge(time.Hour)), info(5, 0, 0), false},
		{"any", snapshot.AnyOf(snapshot.Every(10), snapshot.MaxAge(time.Hour)), info(15, 10, 2*time.Hour), true},
		{"custom", snapshot.PolicyFunc(func(i snapshot.Info) bool { return i.Version%2 == 0 }), info(4, 0, 0), true},
		{"never", snapshot.Never(), info(1000, 0, 0), false},
	}
	for _, c := range cases {
		if got := c.policy.Due(c.info); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

// A snapshot belongs to one life of its stream: one of a stream that does
// not exist, beyond the stream's version, or of a life that ended with a
// Delete is never written, and one planted by older code is never used.
func TestStaleSnapshots(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		es, s := newStores(t, tg)
		ctx := ctxT(t)
		st := eventstore.Stream("counter", "life")
		save := func(v uint64) error {
			_, err := s.Save(ctx, st, snapshot.Snapshot{Version: v, SchemaVersion: 1, State: []byte("x")})
			return err
		}
		if err := save(1); !errors.Is(err, snapshot.ErrStale) {
			t.Fatalf("snapshot of a stream that does not exist: %v", err)
		}
		appendN(t, es, st, 1, 5)
		if err := save(6); !errors.Is(err, snapshot.ErrStale) {
			t.Fatalf("snapshot beyond the stream's version: %v", err)
		}
		if err := save(5); err != nil {
			t.Fatal(err)
		}
		p, _, _ := storetest.Locate(ctx, es, st)
		c := tg.Client
		old, err := c.Do(ctx, c.B().Get().Key(es.Keys().Snapshot(st, p)).Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := es.Delete(ctx, st, eventstore.Exact(5)); err != nil {
			t.Fatal(err)
		}
		if err := save(5); !errors.Is(err, snapshot.ErrStale) {
			t.Fatalf("snapshot after Delete: %v", err)
		}
		// The new life starts at 7 (the marker is 6).
		evs := []eventstore.Event{eventstore.NewEvent(Counted{N: 7}), eventstore.NewEvent(Counted{N: 8})}
		if r, err := es.Append(ctx, st, eventstore.NoStream, evs...); err != nil || r.Version != 8 {
			t.Fatalf("re-create: %+v %v", r, err)
		}
		if err := save(5); !errors.Is(err, snapshot.ErrStale) {
			t.Fatalf("snapshot of the old life after re-creation: %v", err)
		}
		if err := c.Do(ctx, c.B().Set().Key(es.Keys().Snapshot(st, p)).Value(old).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for ev, err := range s.Load(ctx, st, 1, func(snapshot.Snapshot) error { t.Fatal("restored a snapshot of the old life"); return nil }) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.Version)
		}
		if len(got) != 2 || got[0] != 7 {
			t.Fatalf("new life loads versions %v", got)
		}
		if err := save(8); err != nil {
			t.Fatalf("snapshot of the new life: %v", err)
		}
	})
}

// TestInvalidStreamIsAnError: Get, Delete and Load of an invalid stream id
// return the store's typed error; they used to index the nil key list
// keysOf returned with it and panic.
func TestInvalidStreamIsAnError(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		_, s := newStores(t, tg)
		bad := eventstore.StreamID{Category: "account", ID: "a{b}"}
		if _, err := s.Get(ctxT(t), bad); err == nil || errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("Get: %v, want an invalid-stream error", err)
		}
		if err := s.Delete(ctxT(t), bad); err == nil {
			t.Error("Delete: no error")
		}
		for _, err := range s.Load(ctxT(t), bad, 1, func(snapshot.Snapshot) error { return nil }) {
			if err == nil {
				t.Error("Load: no error")
			}
		}
	})
}

// TestInvalidOptions: New reports every option it cannot apply, each by
// name, at once; zero values mean the defaults.
func TestInvalidOptions(t *testing.T) {
	tg := redistest.Standalone(t)
	es, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace))
	if err != nil {
		t.Fatal(err)
	}
	_, err = snapshot.New(es, snapshot.WithQueueSize(-1), snapshot.WithWorkers(-2), snapshot.WithPageSize(-3), snapshot.WithWriteTimeout(-time.Second))
	for _, want := range []string{"WithQueueSize(-1)", "WithWorkers(-2)", "WithPageSize(-3)", "WithWriteTimeout(-1s)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	s, err := snapshot.New(es, snapshot.WithQueueSize(0), snapshot.WithWorkers(0), snapshot.WithPageSize(0), snapshot.WithPolicy(nil))
	if err != nil {
		t.Fatalf("zero options: %v", err)
	}
	s.Close(context.Background())
}

// A load whose snapshot is the one the stream's last load found reads it and
// the events after it in one MULTI, without the script converting entries;
// every other load runs the script. Loads stay right as the snapshot moves,
// is invalidated, and the stream is deleted; on a server of its own the
// one-step path is seen to run (MULTI calls).
func TestLoadInOneStepFollowsTheSnapshot(t *testing.T) {
	check := func(t *testing.T, tg *redistest.Target) {
		es, s := newStores(t, tg, snapshot.WithPageSize(8))
		ctx := ctxT(t)
		st := eventstore.Stream("counter", "one-step")
		want := func(step string, wantSnap uint64, wantEvents int) {
			t.Helper()
			for range 2 { // the script's load, then the one-step load
				if snap, got := load(t, s, st, 1); snap != wantSnap || len(got) != wantEvents {
					t.Fatalf("%s: snapshot %d and %d events, want %d and %d", step, snap, len(got), wantSnap, wantEvents)
				}
			}
		}
		save := func(v uint64) {
			t.Helper()
			if ok, err := s.Save(ctx, st, snapshot.Snapshot{Version: v, SchemaVersion: 1, State: []byte("s")}); !ok || err != nil {
				t.Fatalf("save %d: %t %v", v, ok, err)
			}
		}
		appendN(t, es, st, 1, 30)
		want("no snapshot", 0, 30)
		save(20)
		want("snapshot at 20", 20, 10)
		appendN(t, es, st, 31, 5)
		want("more events", 20, 15)
		save(30)
		want("a newer snapshot", 30, 5)
		save(35)
		want("snapshot at the head", 35, 0)
		if err := snapshot.Invalidate(ctx, es, st); err != nil {
			t.Fatal(err)
		}
		want("invalidated", 0, 35)
		if _, err := es.Delete(ctx, st, eventstore.Any); err != nil {
			t.Fatal(err)
		}
		want("deleted", 0, 0)
	}
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		check(t, tg)
	})
	t.Run("one step runs", func(t *testing.T) {
		srv := redistest.NewServer(t)
		c := srv.NewClient(t)
		tg := &redistest.Target{Name: "own", Namespace: "onestep", Client: c}
		check(t, tg)
		info, err := c.Do(ctxT(t), c.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		var multi int
		for line := range strings.SplitSeq(info, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_multi:calls="); ok {
				multi, _ = strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			}
		}
		// Every want's second load at least, and the first after an
		// unchanged snapshot: 7 wants.
		if multi < 7 {
			t.Fatalf("%d MULTI calls: the one-step load did not run\n%s", multi, info)
		}
	})
}
