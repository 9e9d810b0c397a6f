package readmodel_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
	"pgregory.net/rapid"
)

func order(i int) eventstore.StreamID { return eventstore.Stream("order", "o"+strconv.Itoa(i)) }

// TestRollupExactlyOnce: the example as a Rollup. Five orders of
// one customer, each event applied twice (a redelivery): open=5, spent is
// the sum, and the redeliveries are skipped.
func TestRollupExactlyOnce(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		r, err := readmodel.NewRollup(tg.Client, tg.Namespace, "customers")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			for i := 1; i <= 5; i++ {
				if _, err := r.Apply(ctx, "cust-1", order(i), 1, readmodel.IncrBy("open", 1), readmodel.IncrBy("spent", int64(10*i)),
					readmodel.AddMember("orders", order(i).ID), readmodel.KeepLatest("recent", order(i).ID, float64(i), 3)); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Order 2 is shipped (its version 2): open goes down once.
		for range 2 {
			if _, err := r.Apply(ctx, "cust-1", order(2), 2, readmodel.IncrBy("open", -1)); err != nil {
				t.Fatal(err)
			}
		}
		e, err := r.GetFresh(ctx, "cust-1")
		if err != nil {
			t.Fatal(err)
		}
		if e.Fields["open"] != "4" || e.Fields["spent"] != "150" || e.Events != 6 || len(e.Fields) != 2 {
			t.Fatalf("entry %+v, want open=4 spent=150 after 6 events", e)
		}
		if st := r.Stats(); st.Applied != 6 || st.Skipped != 6 {
			t.Fatalf("stats %+v", st)
		}
		ms, err := r.MembersFresh(ctx, "cust-1", "orders")
		if err != nil || !slices.Equal(ms, []string{"o1", "o2", "o3", "o4", "o5"}) {
			t.Fatalf("members %v %v", ms, err)
		}
		latest, err := r.LatestFresh(ctx, "cust-1", "recent")
		if err != nil || len(latest) != 3 || latest[0].Member != "o5" || latest[2].Member != "o3" || latest[0].Score != 5 {
			t.Fatalf("latest %v %v", latest, err)
		}
		if n, err := r.Sources(ctx, "cust-1"); err != nil || n != 5 {
			t.Fatalf("sources %d %v", n, err)
		}
		if v, err := r.Source(ctx, "cust-1", order(2)); err != nil || v != 2 {
			t.Fatalf("source version %d %v", v, err)
		}
		// A key never written is the fold of nothing.
		if e, err := r.Get(ctx, "nobody"); err != nil || e.Events != 0 || len(e.Fields) != 0 {
			t.Fatalf("empty entry %+v %v", e, err)
		}
		// Write-through applies only the source's next event.
		nctx := readmodel.WithNextGuard(ctx)
		if ok, _ := r.Apply(nctx, "cust-1", order(1), 3, readmodel.IncrBy("open", -1)); ok {
			t.Fatal("next guard applied o1 v3 after v1")
		}
		if ok, _ := r.Apply(nctx, "cust-1", order(1), 2, readmodel.IncrBy("open", -1)); !ok {
			t.Fatal("next guard refused o1 v2 after v1")
		}
		if ok, _ := r.Apply(nctx, "cust-1", order(9), 1, readmodel.IncrBy("open", 1)); !ok {
			t.Fatal("next guard refused a new source's v1")
		}
	})
}

// TestRollupRefusals: what cannot be right is refused before Redis.
func TestRollupRefusals(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	for _, opt := range []readmodel.Option{readmodel.WithTTL(time.Minute), readmodel.WithTombstoneTTL(time.Minute),
		readmodel.WithLoader(func(context.Context, string) (readmodel.Entry, error) { return readmodel.Entry{}, nil })} {
		if _, err := readmodel.NewRollup(tg.Client, tg.Namespace, "r", opt, readmodel.WithLoader(func(context.Context, string) (readmodel.Entry, error) {
			return readmodel.Entry{}, nil
		})); !errors.Is(err, readmodel.ErrInvalid) {
			t.Fatalf("option accepted: %v", err)
		}
	}
	r, err := readmodel.NewRollup(tg.Client, tg.Namespace, "r")
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(t, tg.Client, tg.Namespace)
	var b readmodel.Batch
	for name, err := range map[string]error{
		"version 0":      func() error { _, err := r.Apply(ctx, "c", order(1), 0); return err }(),
		"bad source":     func() error { _, err := r.Apply(ctx, "c", eventstore.Stream("order", "a{b}"), 1); return err }(),
		"bad id":         func() error { _, err := r.Apply(ctx, "c}", order(1), 1); return err }(),
		"reserved field": func() error { _, err := r.Apply(ctx, "c", order(1), 1, readmodel.IncrBy("_n", 1)); return err }(),
		"keep 0": func() error {
			_, err := r.Apply(ctx, "c", order(1), 1, readmodel.KeepLatest("l", "x", 1, 0))
			return err
		}(),
		"bad set name": func() error { _, err := r.Apply(ctx, "c", order(1), 1, readmodel.AddMember("a:b", "x")); return err }(),
		"set op on a Model": func() error {
			_, err := m.Patch(ctx, "a", 1, readmodel.AddMember("s", "x"))
			return err
		}(),
		"twice in a batch": func() error {
			if err := b.Apply(r, "c", order(1), 1, readmodel.IncrBy("n", 1)); err != nil {
				return nil
			}
			return b.Apply(r, "c", order(1), 1, readmodel.IncrBy("m", 1))
		}(),
	} {
		if !errors.Is(err, readmodel.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// rollupEvent is one event of a source stream in the model test: the
// entry it feeds and what it does there.
type rollupEvent struct {
	entry  string
	amount int64
	member string
	score  float64
}

const rollupKeep = 3

func (e rollupEvent) ops() []readmodel.Op {
	return []readmodel.Op{readmodel.IncrBy("n", 1), readmodel.IncrBy("sum", e.amount),
		readmodel.AddMember("members", e.member), readmodel.KeepLatest("top", e.member, e.score, rollupKeep)}
}

// rollupFold is an entry as the fold of its events: the truth.
type rollupFold struct {
	n, sum  int64
	members map[string]bool
	top     map[string]float64 // member -> highest score
}

func foldRollup(evs []rollupEvent) map[string]*rollupFold {
	out := map[string]*rollupFold{}
	for _, e := range evs {
		f := out[e.entry]
		if f == nil {
			f = &rollupFold{members: map[string]bool{}, top: map[string]float64{}}
			out[e.entry] = f
		}
		f.n++
		f.sum += e.amount
		f.members[e.member] = true
		if s, ok := f.top[e.member]; !ok || e.score > s {
			f.top[e.member] = e.score
		}
	}
	return out
}

// topN is the fold's latest list: the rollupKeep highest (score, member).
func (f *rollupFold) topN() []readmodel.Scored {
	var all []readmodel.Scored
	for m, s := range f.top {
		all = append(all, readmodel.Scored{Member: m, Score: s})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Score != all[j].Score {
			return all[i].Score > all[j].Score
		}
		return all[i].Member > all[j].Member
	})
	return all[:min(len(all), rollupKeep)]
}

// checkRollup compares every entry with the fold of evs.
func checkRollup(t interface{ Fatalf(string, ...any) }, ctx context.Context, r *readmodel.Rollup, entries []string, evs []rollupEvent) {
	want := foldRollup(evs)
	for _, id := range entries {
		f := want[id]
		if f == nil {
			f = &rollupFold{}
		}
		e, err := r.GetFresh(ctx, id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if e.Fields["n"] != strconv.FormatInt(f.n, 10) && !(f.n == 0 && e.Fields["n"] == "") || e.Events != uint64(f.n) ||
			f.n > 0 && e.Fields["sum"] != strconv.FormatInt(f.sum, 10) {
			t.Fatalf("%s: %+v, want n=%d sum=%d", id, e, f.n, f.sum)
		}
		ms, err := r.MembersFresh(ctx, id, "members")
		if err != nil || !slices.Equal(ms, slices.Sorted(maps.Keys(f.members))) && !(len(ms) == 0 && len(f.members) == 0) {
			t.Fatalf("%s: members %v, want %v (%v)", id, ms, slices.Sorted(maps.Keys(f.members)), err)
		}
		top, err := r.LatestFresh(ctx, id, "top")
		if err != nil || !slices.Equal(top, f.topN()) && !(len(top) == 0 && len(f.topN()) == 0) {
			t.Fatalf("%s: latest %v, want %v (%v)", id, top, f.topN(), err)
		}
	}
}

// TestRollupModel drives a Rollup as a projection would, with the
// redeliveries at-least-once delivery allows: each source stream's events
// are applied in version order, and at any point a source may go back to
// an earlier version and apply its events again from there (a crash before
// the ack, a lease move, a rebuild over a live model); writes go one by
// one or in Batches mixing sources and entries. After every step each
// entry must equal the fold of the events applied at least once: no event
// lost, none counted twice.
func TestRollupModel(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		r, err := readmodel.NewRollup(tg.Client, tg.Namespace, "model"+strconv.Itoa(run))
		if err != nil {
			rt.Fatalf("%v", err)
		}
		entries := []string{"e0", "e1", "e2"}
		nsrc := rapid.IntRange(1, 6).Draw(rt, "sources")
		streams := make([][]rollupEvent, nsrc)
		for s := range streams {
			streams[s] = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) rollupEvent {
				return rollupEvent{
					entry:  rapid.SampledFrom(entries).Draw(t, "entry"),
					amount: rapid.Int64Range(-50, 100).Draw(t, "amount"),
					member: rapid.SampledFrom([]string{"a", "b", "c", "d", "e"}).Draw(t, "member"),
					score:  float64(rapid.IntRange(0, 6).Draw(t, "score")),
				}
			}), 1, 8).Draw(rt, "events")
		}
		next := make([]int, nsrc) // next event index to apply, per source
		high := make([]int, nsrc) // events applied at least once, per source
		applied := func() []rollupEvent {
			var out []rollupEvent
			for s, evs := range streams {
				out = append(out, evs[:high[s]]...)
			}
			return out
		}
		step := func(s int, b *readmodel.Batch) {
			ev := streams[s][next[s]]
			v := uint64(next[s] + 1)
			if b != nil {
				if err := b.Apply(r, ev.entry, order(s), v, ev.ops()...); err != nil {
					rt.Fatalf("queue: %v", err)
				}
			} else if _, err := r.Apply(ctx, ev.entry, order(s), v, ev.ops()...); err != nil {
				rt.Fatalf("apply: %v", err)
			}
			next[s]++
		}
		for i := range rapid.IntRange(1, 40).Draw(rt, "steps") {
			s := rapid.IntRange(0, nsrc-1).Draw(rt, "source")
			switch rapid.IntRange(0, 3).Draw(rt, "action") {
			case 0, 1: // apply the source's next event
				if next[s] < len(streams[s]) {
					step(s, nil)
				}
			case 2: // a batch: a few next events of several sources
				var b readmodel.Batch
				queued := map[string]bool{}
				for range rapid.IntRange(1, 6).Draw(rt, "batch") {
					s := rapid.IntRange(0, nsrc-1).Draw(rt, "bsource")
					if next[s] >= len(streams[s]) {
						continue
					}
					k := fmt.Sprint(s, next[s])
					if queued[k] {
						continue
					}
					queued[k] = true
					step(s, &b)
				}
				if _, err := b.Exec(ctx); err != nil {
					rt.Fatalf("exec: %v", err)
				}
			case 3: // redelivery: go back to an earlier version of the source
				next[s] = rapid.IntRange(0, next[s]).Draw(rt, "back")
			}
			for s := range next {
				high[s] = max(high[s], next[s])
			}
			_ = i
			checkRollup(rt, ctx, r, entries, applied())
		}
		// Then everything, as a final catch-up does.
		for s := range streams {
			for next[s] < len(streams[s]) {
				step(s, nil)
			}
			high[s] = len(streams[s])
		}
		checkRollup(rt, ctx, r, entries, applied())
	})
}
