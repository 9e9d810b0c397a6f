package readmodel_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// ledger is the truth the tests' loaders fold (a stand-in for an entity's
// event stream): each entity's deposits, in version order.
type ledger struct {
	mu    sync.Mutex
	amts  map[string][]int64
	loads atomic.Int64
	// onLoad, when set, runs inside the loader after the fold and before
	// it returns (a projection write racing the load).
	onLoad func(id string)
}

func newLedger() *ledger { return &ledger{amts: map[string][]int64{}} }

// add records a deposit and returns its event version.
func (l *ledger) add(id string, amt int64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.amts[id] = append(l.amts[id], amt)
	return uint64(len(l.amts[id]))
}

func (l *ledger) fold(id string) (account, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var a account
	for _, n := range l.amts[id] {
		a.Balance += n
	}
	return a, uint64(len(l.amts[id]))
}

func (l *ledger) load(_ context.Context, id string) (readmodel.Entry, error) {
	l.loads.Add(1)
	a, v := l.fold(id)
	if v == 0 {
		return readmodel.Entry{}, readmodel.ErrNotFound
	}
	if l.onLoad != nil {
		l.onLoad(id)
	}
	return readmodel.Entry{ID: id, Version: v, Fields: map[string]string{"balance": strconv.FormatInt(a.Balance, 10)}}, nil
}

func (l *ledger) typedLoad(_ context.Context, id string) (account, uint64, error) {
	l.loads.Add(1)
	a, v := l.fold(id)
	if v == 0 {
		return a, 0, readmodel.ErrNotFound
	}
	return a, v, nil
}

// deposit appends a deposit to the ledger and patches the model with it, as
// a projection would.
func deposit(ctx context.Context, m *readmodel.Model, l *ledger, id string, amt int64) (bool, error) {
	return m.Patch(ctx, id, l.add(id, amt), readmodel.IncrBy("balance", amt))
}

// expire removes a key as its TTL running out (or an eviction) would.
func expire(t *testing.T, c rueidis.Client, key string) {
	t.Helper()
	if err := c.Do(context.Background(), c.B().Del().Key(key).Build()).Error(); err != nil {
		t.Fatal(err)
	}
}

func exists(t *testing.T, c rueidis.Client, key string) bool {
	t.Helper()
	n, err := c.Do(context.Background(), c.B().Exists().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func pttl(t *testing.T, c rueidis.Client, key string) int64 {
	t.Helper()
	ms, err := c.Do(context.Background(), c.B().Pttl().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func wantEntry(t *testing.T, what string, e readmodel.Entry, err error, version uint64, balance string) {
	t.Helper()
	if err != nil || e.Version != version || e.Fields["balance"] != balance {
		t.Fatalf("%s: %+v %v; want balance %s at v%d", what, e, err, balance, version)
	}
}

// TestTTL: an entry expires after the model's TTL; a patch that arrives
// after the expiry is not applied to an empty entry (that would be balance
// 100 at v4) but deferred, and the next Get rebuilds the entry with the
// Loader's full fold (400 at v4).
func TestTTL(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const ttl = 500 * time.Millisecond
		l := newLedger()
		m := newModel(t, tg.Client, tg.Namespace, readmodel.WithTTL(ttl), readmodel.WithLoader(l.load))
		for range 3 {
			if ok, err := deposit(ctx, m, l, "a", 100); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		if ms := pttl(t, tg.Client, m.Key("a")); ms <= 0 || ms > ttl.Milliseconds() {
			t.Fatalf("pttl %d", ms)
		}
		// Await the expiry (EXISTS expires a due key at once).
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for exists(t, tg.Client, m.Key("a")) {
			select {
			case <-ctx.Done():
				t.Fatal("entry never expired")
			case <-tick.C:
			}
		}
		ok, err := deposit(ctx, m, l, "a", 100)
		if ok || err != nil {
			t.Fatalf("patch v4 on an expired entry: applied %v, err %v; want deferred", ok, err)
		}
		if st := m.Stats(); st.Deferred != 1 || st.Applied != 3 {
			t.Fatalf("stats %+v; want 1 deferred, 3 applied", st)
		}
		e, err := m.GetFresh(ctx, "a")
		wantEntry(t, "get after expiry", e, err, 4, "400")
		if l.loads.Load() != 1 {
			t.Fatalf("%d loads, want 1", l.loads.Load())
		}
		if ms := pttl(t, tg.Client, m.Key("a")); ms <= 0 || ms > ttl.Milliseconds() {
			t.Fatalf("pttl after the load %d", ms)
		}
	})
}

// TestPatchOnMissingEntry: which missing entries a patch may start from
// empty (the event is the entity's first, or the first after a tombstone),
// and what it does otherwise, with and without a Loader.
func TestPatchOnMissingEntry(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		l := newLedger()
		withLoader, err := readmodel.New(tg.Client, tg.Namespace, "loaded", readmodel.WithLoader(l.load))
		if err != nil {
			t.Fatal(err)
		}
		plain := newModel(t, tg.Client, tg.Namespace)
		for _, m := range []*readmodel.Model{withLoader, plain} {
			// Version 1 on a missing entry: the empty state is the truth.
			if ok, err := m.Patch(ctx, "new", 1, readmodel.IncrBy("balance", 5)); !ok || err != nil {
				t.Fatalf("%s: v1 on missing: %v %v", m.Name(), ok, err)
			}
			// A tombstone at v-1: the first event of a new life.
			if _, err := m.Delete(ctx, "new", 2); err != nil {
				t.Fatal(err)
			}
			if ok, err := m.Patch(ctx, "new", 3, readmodel.IncrBy("balance", 7)); !ok || err != nil {
				t.Fatalf("%s: v3 on tombstone v2: %v %v", m.Name(), ok, err)
			}
			e, err := m.GetFresh(ctx, "new")
			wantEntry(t, m.Name()+": recreated", e, err, 3, "7")
			// A tombstone older than v-1: events in between are missing.
			if _, err := m.Delete(ctx, "gap", 2); err != nil {
				t.Fatal(err)
			}
			ok, err := m.Patch(ctx, "gap", 4, readmodel.IncrBy("balance", 7))
			if ok {
				t.Fatalf("%s: v4 applied on tombstone v2", m.Name())
			}
			if m == plain && !errors.Is(err, readmodel.ErrMissingEntry) || m == withLoader && err != nil {
				t.Fatalf("%s: v4 on tombstone v2: %v", m.Name(), err)
			}
		}
		// Without a Loader: a typed error that says what to do, nothing written.
		for v := uint64(1); v <= 2; v++ {
			if ok, err := plain.Patch(ctx, "a", v, readmodel.IncrBy("balance", 100)); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		expire(t, tg.Client, plain.Key("a"))
		ok, err := plain.Patch(ctx, "a", 3, readmodel.IncrBy("balance", 100))
		var me *readmodel.MissingEntryError
		if ok || !errors.As(err, &me) || me.Model != "accounts" || me.ID != "a" || me.Version != 3 ||
			!strings.Contains(err.Error(), "WithLoader") || !strings.Contains(err.Error(), "rebuild") {
			t.Fatalf("patch v3 on an evicted entry without a loader: applied %v, err %v", ok, err)
		}
		if exists(t, tg.Client, plain.Key("a")) {
			t.Fatal("a refused patch wrote the entry")
		}
		// With a Loader: deferred, and Get rebuilds the entry.
		for range 3 {
			if ok, err := deposit(ctx, withLoader, l, "b", 100); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		expire(t, tg.Client, withLoader.Key("b"))
		if ok, err := deposit(ctx, withLoader, l, "b", 100); ok || err != nil {
			t.Fatalf("patch v4 on an evicted entry: applied %v, err %v; want deferred", ok, err)
		}
		if st := withLoader.Stats(); st.Deferred != 2 {
			t.Fatalf("stats %+v; want 2 deferred", st)
		}
		e, err := withLoader.Get(ctx, "b")
		wantEntry(t, "get after deferral", e, err, 4, "400")
		// Later patches apply on the rebuilt entry.
		if ok, err := deposit(ctx, withLoader, l, "b", 100); !ok || err != nil {
			t.Fatal(ok, err)
		}
		e, err = withLoader.GetFresh(ctx, "b")
		wantEntry(t, "patch after the load", e, err, 5, "500")
	})
}

// TestDeferredMarker: a deferred patch leaves a marker at its version: Get
// treats it as a miss, a Set (a loader's fill) older than it is skipped, a
// Set at its version or later replaces it, later patches on it are deferred
// too, and Version reports it.
func TestDeferredMarker(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		l := newLedger()
		m := newModel(t, tg.Client, tg.Namespace, readmodel.WithLoader(l.load))
		for range 3 {
			if _, err := deposit(ctx, m, l, "a", 100); err != nil {
				t.Fatal(err)
			}
		}
		expire(t, tg.Client, m.Key("a"))
		for range 2 { // v4, v5: both deferred
			if ok, err := deposit(ctx, m, l, "a", 100); ok || err != nil {
				t.Fatalf("deferred patch: %v %v", ok, err)
			}
		}
		if v, err := m.Version(ctx, "a"); v != 5 || err != nil {
			t.Fatalf("version %d %v, want 5", v, err)
		}
		if ok, err := m.Set(ctx, "a", 4, map[string]string{"balance": "400"}); ok || err != nil {
			t.Fatalf("set v4 over a marker at v5: %v %v", ok, err)
		}
		if ok, err := m.Patch(ctx, "a", 5, readmodel.IncrBy("balance", 100)); ok || err != nil {
			t.Fatalf("redelivered v5 on its marker: %v %v", ok, err)
		}
		if st := m.Stats(); st.Deferred != 2 || st.Skipped != 2 {
			t.Fatalf("stats %+v", st)
		}
		if ok, err := m.Set(ctx, "a", 5, map[string]string{"balance": "500"}); !ok || err != nil {
			t.Fatalf("set v5 over a marker at v5: %v %v", ok, err)
		}
		e, err := m.GetFresh(ctx, "a")
		wantEntry(t, "filled", e, err, 5, "500")
		if l.loads.Load() != 0 {
			t.Fatalf("%d loads", l.loads.Load())
		}
		// A marker reads as a miss: Get loads.
		expire(t, tg.Client, m.Key("a"))
		if ok, err := deposit(ctx, m, l, "a", 100); ok || err != nil {
			t.Fatal(ok, err)
		}
		e, err = m.Get(ctx, "a")
		wantEntry(t, "marker read", e, err, 6, "600")
		if l.loads.Load() != 1 {
			t.Fatalf("%d loads", l.loads.Load())
		}
		// A delete replaces a marker with a tombstone.
		expire(t, tg.Client, m.Key("a"))
		if ok, err := deposit(ctx, m, l, "a", 100); ok || err != nil {
			t.Fatal(ok, err)
		}
		if ok, err := m.Delete(ctx, "a", 8); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if _, err := m.GetFresh(ctx, "a"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
	})
}

// TestLoaderRacesDeferredPatch: a loader folds the entity at v3 while the
// projection defers the patch of v4 (the entry is missing). The loader's
// fill must not produce an entry without v4: Get loads again and returns
// the fold at v4.
func TestLoaderRacesDeferredPatch(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		l := newLedger()
		m := newModel(t, tg.Client, tg.Namespace, readmodel.WithLoader(l.load))
		for range 3 {
			if _, err := deposit(ctx, m, l, "a", 100); err != nil {
				t.Fatal(err)
			}
		}
		expire(t, tg.Client, m.Key("a"))
		var once sync.Once
		l.onLoad = func(id string) {
			once.Do(func() {
				// The projection's v4 lands while the load of v3 is in flight.
				if _, err := deposit(ctx, m, l, id, 100); err != nil {
					t.Error(err)
				}
			})
		}
		e, err := m.Get(ctx, "a")
		wantEntry(t, "get racing a deferred patch", e, err, 4, "400")
		e, err = m.GetFresh(ctx, "a")
		wantEntry(t, "stored", e, err, 4, "400")
		if n := l.loads.Load(); n != 2 {
			t.Fatalf("%d loads, want 2", n)
		}
	})
}

// TestTypedUpdateOnMissingEntry: Typed.Update's read-modify-write follows
// the patch rules: on an expired entry it is deferred (with a Loader) or
// refused with ErrMissingEntry (without).
func TestTypedUpdateOnMissingEntry(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		ll, pl := newLedger(), newLedger()
		lm := newModel(t, tg.Client, tg.Namespace, readmodel.WithTTL(time.Minute), readmodel.WithLoader(readmodel.TypedLoader(ll.typedLoad)))
		pm, err := readmodel.New(tg.Client, tg.Namespace, "plain")
		if err != nil {
			t.Fatal(err)
		}
		add := func(a *account) error { a.Balance += 100; return nil }
		for _, c := range []struct {
			m *readmodel.Model
			l *ledger
		}{{lm, ll}, {pm, pl}} {
			m, typed := c.m, readmodel.NewTyped[account](c.m)
			for range 3 {
				if ok, err := typed.Update(ctx, "a", c.l.add("a", 100), add); !ok || err != nil {
					t.Fatalf("%s: %v %v", m.Name(), ok, err)
				}
			}
			expire(t, tg.Client, m.Key("a"))
			ok, err := typed.Update(ctx, "a", c.l.add("a", 100), add)
			if m == lm && (ok || err != nil) || m == pm && (ok || !errors.Is(err, readmodel.ErrMissingEntry)) {
				t.Fatalf("%s: update v4 on an expired entry: applied %v, err %v", m.Name(), ok, err)
			}
		}
		if st := lm.Stats(); st.Deferred != 1 || ll.loads.Load() != 0 {
			t.Fatalf("stats %+v, %d loads; want 1 deferred and no load", st, ll.loads.Load())
		}
		if exists(t, tg.Client, pm.Key("a")) {
			t.Fatal("a refused update wrote the entry")
		}
		a, v, err := readmodel.NewTyped[account](lm).Get(ctx, "a")
		if err != nil || v != 4 || a.Balance != 400 {
			t.Fatalf("get after the deferred update: %+v v%d %v", a, v, err)
		}
	})
}

// TestBatchPatchOnMissingEntry: a Batch's patches follow the same rules;
// without a Loader the refused entry's later writes in the batch are not
// applied (a prefix of each key's writes applies), other keys' are.
func TestBatchPatchOnMissingEntry(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		ll := newLedger()
		lm := newModel(t, tg.Client, tg.Namespace, readmodel.WithLoader(ll.load))
		pm, err := readmodel.New(tg.Client, tg.Namespace, "plain")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []*readmodel.Model{lm, pm} {
			l := ll
			if m == pm {
				l = newLedger()
			}
			for _, id := range []string{"a", "b"} {
				for range 2 {
					if _, err := deposit(ctx, m, l, id, 100); err != nil {
						t.Fatal(err)
					}
				}
			}
			expire(t, tg.Client, m.Key("b"))
			var b readmodel.Batch
			for _, id := range []string{"a", "b", "b"} {
				if err := b.Patch(m, id, l.add(id, 100), readmodel.IncrBy("balance", 100)); err != nil {
					t.Fatal(err)
				}
			}
			applied, err := b.Exec(ctx)
			if !slices.Equal(applied, []bool{true, false, false}) {
				t.Fatalf("%s: applied %v (%v)", m.Name(), applied, err)
			}
			var me *readmodel.MissingEntryError
			if m == lm && err != nil || m == pm && (!errors.As(err, &me) || me.ID != "b" || me.Version != 3) {
				t.Fatalf("%s: %v", m.Name(), err)
			}
			e, err := m.GetFresh(ctx, "a")
			wantEntry(t, m.Name()+" a", e, err, 3, "300")
		}
		if st := lm.Stats(); st.Deferred != 2 {
			t.Fatalf("stats %+v", st)
		}
		if exists(t, tg.Client, pm.Key("b")) {
			t.Fatal("a refused patch wrote the entry")
		}
	})
}

// TestOptionsLifecycle: WithTTL needs a Loader; tombstones are kept
// forever by default and with WithTombstoneTTL(0); a positive tombstone TTL
// bounds them.
func TestOptionsLifecycle(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	_, err := readmodel.New(tg.Client, tg.Namespace, "ttl", readmodel.WithTTL(time.Minute))
	if !errors.Is(err, readmodel.ErrInvalid) || !strings.Contains(err.Error(), "WithLoader") {
		t.Fatalf("WithTTL without a loader: %v", err)
	}
	if _, err := readmodel.NewVersions(tg.Client, tg.Namespace, "ttl", 1, readmodel.WithTTL(time.Minute)); !errors.Is(err, readmodel.ErrInvalid) {
		t.Fatalf("NewVersions, WithTTL without a loader: %v", err)
	}
	for _, tc := range []struct {
		name     string
		opts     []readmodel.Option
		min, max int64
	}{
		{"default", nil, -1, -1},
		{"zero", []readmodel.Option{readmodel.WithTombstoneTTL(0)}, -1, -1},
		{"hour", []readmodel.Option{readmodel.WithTombstoneTTL(time.Hour)}, 1, time.Hour.Milliseconds()},
	} {
		m, err := readmodel.New(tg.Client, tg.Namespace, "tomb-"+tc.name, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := m.Delete(ctx, "a", 1); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ms := pttl(t, tg.Client, m.Key("a")); ms < tc.min || ms > tc.max {
			t.Fatalf("%s: tombstone pttl %d, want [%d, %d]", tc.name, ms, tc.min, tc.max)
		}
	}
}

// TestTypedUpdateConflict: when the entry leaves the state Update read it
// in before Update writes (here: evicted), nothing is written from the
// stale read; Update reads again and follows the new state.
func TestTypedUpdateConflict(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		l := newLedger()
		m := newModel(t, tg.Client, tg.Namespace, readmodel.WithLoader(readmodel.TypedLoader(l.typedLoad)))
		typed := readmodel.NewTyped[account](m)
		add := func(a *account) error { a.Balance += 100; return nil }
		for range 3 {
			if ok, err := typed.Update(ctx, "a", l.add("a", 100), add); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		calls := 0
		ok, err := typed.Update(ctx, "a", l.add("a", 100), func(a *account) error {
			calls++
			expire(t, tg.Client, m.Key("a")) // between the read and the write
			return add(a)
		})
		if ok || err != nil || calls != 1 {
			t.Fatalf("update across an eviction: applied %v, err %v, fn called %d times", ok, err, calls)
		}
		if st := m.Stats(); st.Deferred != 1 {
			t.Fatalf("stats %+v", st)
		}
		a, v, err := typed.Get(ctx, "a")
		if err != nil || v != 4 || a.Balance != 400 {
			t.Fatalf("get: %+v v%d %v", a, v, err)
		}
	})
}

// TestNextGuardOnMissingEntry: write-through (WithNextGuard) on a missing
// entry past version 1 is skipped, as for any entry not at version-1 (the
// runner's write decides); on a deferred patch's marker at version-1 it is
// deferred too.
func TestNextGuardOnMissingEntry(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		nctx := readmodel.WithNextGuard(ctx)
		l := newLedger()
		lm := newModel(t, tg.Client, tg.Namespace, readmodel.WithLoader(l.load))
		pm, err := readmodel.New(tg.Client, tg.Namespace, "plain")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []*readmodel.Model{lm, pm} {
			if ok, err := m.Patch(nctx, "a", 3, readmodel.IncrBy("balance", 1)); ok || err != nil {
				t.Fatalf("%s: next guard, v3 on missing: %v %v", m.Name(), ok, err)
			}
			if exists(t, tg.Client, m.Key("a")) {
				t.Fatalf("%s: skipped write left a key", m.Name())
			}
		}
		if ok, err := lm.Patch(ctx, "a", 3, readmodel.IncrBy("balance", 1)); ok || err != nil {
			t.Fatal(ok, err)
		}
		if ok, err := lm.Patch(nctx, "a", 4, readmodel.IncrBy("balance", 1)); ok || err != nil {
			t.Fatal(ok, err)
		}
		if v, _ := lm.Version(ctx, "a"); v != 4 {
			t.Fatalf("marker version %d, want 4", v)
		}
		if st := lm.Stats(); st.Deferred != 2 || st.Skipped != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}
