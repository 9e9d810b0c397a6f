package aggregate_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/snapshot"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// env is one test's event store and snapshot store on a fresh namespace.
type env struct {
	tg    *redistest.Target
	store *eventstore.Store
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newEnv(t *testing.T, tg *redistest.Target, opts ...eventstore.Option) *env {
	t.Helper()
	s, err := eventstore.New(tg.Client, append([]eventstore.Option{eventstore.WithNamespace(tg.Namespace)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{tg: tg, store: s, logs: &syncBuffer{}}
}

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// snapshots returns a snapshot store closed (flushed) at the end of the test.
func (e *env) snapshots(t *testing.T, opts ...snapshot.Option) *snapshot.Store {
	t.Helper()
	s, err := snapshot.New(e.store, append([]snapshot.Option{snapshot.WithLogger(e.logger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func repo(t *testing.T, store *eventstore.Store, typ *aggregate.Type[Account], opts ...aggregate.Option) *aggregate.Repository[Account] {
	t.Helper()
	r, err := aggregate.NewRepository(store, typ, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func flush(t *testing.T, s *snapshot.Store) {
	t.Helper()
	if err := s.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// 64 goroutines × 100 Updates of one aggregate, through two repositories
// (two processes: each serialises its own goroutines, and the two compete
// through optimistic concurrency), and once more with the local lock off:
// every successful command is in the state exactly once, and the stream
// holds exactly those events.
func TestConcurrentUpdates(t *testing.T) {
	for _, mode := range []string{"two-processes", "unlocked"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
				t.Parallel()
				testConcurrentUpdates(t, tg, mode)
			})
		})
	}
}

func testConcurrentUpdates(t *testing.T, tg *redistest.Target, mode string) {
	e := newEnv(t, tg)
	// A fixed amount of serialized work on one hot aggregate: its time
	// follows the machine's load (6,400 updates missed 60 s on a cluster at
	// load average 14), so the work is smaller and the deadline generous.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	typ := accountType(t)
	workers, perWorker := 64, 30
	opts := []aggregate.Option{aggregate.WithRetry(aggregate.Retry{Attempts: 30, Base: time.Millisecond, Max: 20 * time.Millisecond})}
	if mode == "unlocked" {
		// All 64 collide on every version: fewer commands keep it quick.
		perWorker = 10
		opts = append(opts, aggregate.WithoutLocalLock())
	}
	if testing.Short() {
		perWorker = 5
	}
	var repos []*aggregate.Repository[Account]
	var snaps []*snapshot.Store
	for range 2 {
		s := e.snapshots(t, snapshot.WithPolicy(snapshot.Every(50)))
		snaps = append(snaps, s)
		repos = append(repos, repo(t, e.store, typ, append(opts, aggregate.WithSnapshots(s))...))
	}
	if _, err := repos[0].Update(ctx, "hot", aggregate.Decide(open, Open{Owner: "ann"})); err != nil {
		t.Fatal(err)
	}
	var ok, conflicts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		r := repos[w%2]
		wg.Go(func() {
			for range perWorker {
				_, err := r.Update(ctx, "hot", aggregate.Decide(deposit, Deposit{Amount: 1}))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, aggregate.ErrConflict) && errors.Is(err, eventstore.ErrWrongVersion):
					conflicts.Add(1)
				default:
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ok.Load()+conflicts.Load() != int64(workers*perWorker) {
		t.Fatalf("%d ok + %d conflicts != %d", ok.Load(), conflicts.Load(), workers*perWorker)
	}
	t.Logf("%s %s: %d successful updates, %d gave up, in %v; snapshots %+v %+v", tg.Name, mode, ok.Load(), conflicts.Load(),
		time.Since(start).Round(time.Millisecond), snaps[0].Stats(), snaps[1].Stats())
	for name, r := range map[string]*aggregate.Repository[Account]{"snapshots": repos[1], "events": repo(t, e.store, typ)} {
		a, err := r.Load(ctx, "hot")
		if err != nil {
			t.Fatal(err)
		}
		if st := a.State(); st.Balance != ok.Load() || int64(st.Deposits) != ok.Load() || a.Version() != uint64(ok.Load())+1 {
			t.Fatalf("from %s: state %+v at version %d, want %d deposits", name, st, a.Version(), ok.Load())
		}
	}
	v, err := e.store.Version(ctx, eventstore.Stream("account", "hot"))
	if err != nil || v != uint64(ok.Load())+1 {
		t.Fatalf("stream version %d (%v), want %d", v, err, ok.Load()+1)
	}
}

// Loading from a snapshot and the events after it gives the same aggregate as
// folding every event; the policy takes exactly the due snapshots.
func TestSnapshotLoadEqualsEventLoad(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		e := newEnv(t, tg)
		ctx := ctxT(t)
		typ := accountType(t)
		// A small page makes loads from snapshots page on with XRANGE too.
		snaps := e.snapshots(t, snapshot.WithPolicy(snapshot.Every(7)), snapshot.WithPageSize(4))
		withSnaps := repo(t, e.store, typ, aggregate.WithSnapshots(snaps))
		plain := repo(t, e.store, typ)
		check := func(id string, wantVersion uint64) {
			t.Helper()
			a1, err := withSnaps.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			a2, err := plain.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if a1.State() != a2.State() || a1.Version() != a2.Version() || a1.Version() != wantVersion {
				t.Fatalf("%s: from snapshot %+v v%d, from events %+v v%d, want v%d", id, a1.State(), a1.Version(), a2.State(), a2.Version(), wantVersion)
			}
		}
		if _, err := withSnaps.Update(ctx, "a", aggregate.Decide(open, Open{Owner: "ann"})); err != nil {
			t.Fatal(err)
		}
		for i := range 60 {
			var cmd func(*aggregate.Aggregate[Account]) error
			if i%3 == 2 {
				cmd = aggregate.Decide(withdraw, Withdraw{Amount: 2})
			} else {
				cmd = aggregate.Decide(deposit, Deposit{Amount: int64(i) + 10})
			}
			if _, err := withSnaps.Update(ctx, "a", cmd); err != nil {
				t.Fatal(err)
			}
			if i%13 == 0 {
				check("a", uint64(i)+2)
			}
		}
		flush(t, snaps)
		check("a", 61)
		st := snaps.Stats()
		if st.Queued != 8 || st.Written+st.Skipped != 8 || st.Dropped != 0 || st.Ignored != 0 {
			t.Fatalf("61 events, Every(7): want 8 snapshots, stats %+v", st)
		}
		sn, err := snaps.Get(ctx, eventstore.Stream("account", "a"))
		if err != nil || sn.Version != 56 || sn.SchemaVersion != 1 {
			t.Fatalf("latest snapshot v%d schema %d (%v), want v56", sn.Version, sn.SchemaVersion, err)
		}
		// An aggregate without a snapshot, longer than a page; and one without events.
		a := typ.New("b")
		a.Raise(Opened{Owner: "bo"})
		for i := range 20 {
			a.Raise(Deposited{Amount: int64(i)})
		}
		if err := plain.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
		check("b", 21)
		check("nobody", 0)
	})
}

// A snapshot of another state version is ignored and replaced; a corrupt one
// is ignored with a warning; either way the aggregate loads from its events.
func TestSnapshotMismatchedAndCorrupt(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		e := newEnv(t, tg)
		ctx := ctxT(t)
		stream := eventstore.Stream("account", "m")
		v1 := e.snapshots(t, snapshot.WithPolicy(snapshot.Every(10)))
		r1 := repo(t, e.store, accountType(t), aggregate.WithSnapshots(v1))
		if _, err := r1.Update(ctx, "m", aggregate.Decide(open, Open{Owner: "mo"})); err != nil {
			t.Fatal(err)
		}
		for range 29 {
			if _, err := r1.Update(ctx, "m", aggregate.Decide(deposit, Deposit{Amount: 2})); err != nil {
				t.Fatal(err)
			}
		}
		flush(t, v1)
		want := Account{Owner: "mo", Balance: 58, Deposits: 29, Open: true}

		// Release 2 changed the state's encoding: StateVersion(2).
		v2 := e.snapshots(t, snapshot.WithPolicy(snapshot.Every(10)))
		r2 := repo(t, e.store, accountType(t, aggregate.StateVersion(2)), aggregate.WithSnapshots(v2))
		a, err := r2.Load(ctx, "m")
		if err != nil || a.State() != want || a.Version() != 30 {
			t.Fatalf("with a v1 snapshot: %+v v%d %v", a.State(), a.Version(), err)
		}
		// The next save finds no usable snapshot: a new one replaces the old.
		if _, err := r2.Update(ctx, "m", aggregate.Decide(deposit, Deposit{Amount: 2})); err != nil {
			t.Fatal(err)
		}
		flush(t, v2)
		want.Balance, want.Deposits = 60, 30
		sn, err := v2.Get(ctx, stream)
		if err != nil || sn.SchemaVersion != 2 || sn.Version != 31 {
			t.Fatalf("after the save: snapshot %+v %v", sn, err)
		}

		partition, _, err := storetest.Locate(ctx, e.store, stream)
		if err != nil {
			t.Fatal(err)
		}
		key := e.store.Keys().Snapshot(stream, partition)
		c := tg.Client
		for name, corrupt := range map[string]func(){
			"bad header": func() {
				if err := c.Do(ctx, c.B().Set().Key(key).Value("not a snapshot at all, really not").Build()).Error(); err != nil {
					t.Fatal(err)
				}
			},
			"bad state": func() {
				// Valid header, schema 2, a state that is not msgpack of Account.
				if err := v2.Delete(ctx, stream); err != nil {
					t.Fatal(err)
				}
				s, err := snapshot.New(e.store)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close(ctx)
				if ok, err := s.Save(ctx, stream, snapshot.Snapshot{Version: 31, SchemaVersion: 2, State: []byte{0xc1, 0xc1}}); !ok || err != nil {
					t.Fatalf("save: %v %v", ok, err)
				}
			},
		} {
			corrupt()
			snaps := e.snapshots(t)
			r := repo(t, e.store, accountType(t, aggregate.StateVersion(2)), aggregate.WithSnapshots(snaps))
			a, err := r.Load(ctx, "m")
			if err != nil || a.State() != want || a.Version() != 31 {
				t.Fatalf("%s: %+v v%d %v", name, a.State(), a.Version(), err)
			}
			if snaps.Stats().Ignored != 1 {
				t.Fatalf("%s: stats %+v", name, snaps.Stats())
			}
		}
		if logs := e.logs.String(); strings.Count(logs, "level=WARN msg=\"snapshot: ignoring unreadable snapshot") != 2 {
			t.Fatalf("want two warnings, logs:\n%s", logs)
		}
	})
}

// Events stored by an older release, with schema version 1, load through the
// current release's upcaster as the current type.
func TestUpcastOnLoad(t *testing.T) {
	type DepositedV1 struct{ Cents int64 } // release 1
	type DepositedV2 struct {              // release 2: amounts in units, with a currency
		Amount   int64
		Currency string
	}
	type Wallet struct {
		Total      int64
		Currencies map[string]bool
	}
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		e := newEnv(t, tg)
		ctx := ctxT(t)
		old := eventstore.NewRegistry()
		eventstore.MustRegister[DepositedV1](old, "Deposited")
		oldStore, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(old))
		if err != nil {
			t.Fatal(err)
		}
		w := eventstore.Stream("wallet", "w1")
		if _, err := oldStore.Append(ctx, w, eventstore.NoStream, eventstore.NewEvent(DepositedV1{Cents: 300}), eventstore.NewEvent(DepositedV1{Cents: 450})); err != nil {
			t.Fatal(err)
		}

		typ := aggregate.NewType("wallet", func(s *Wallet, ev any) {
			if d, ok := ev.(DepositedV2); ok {
				s.Total += d.Amount
				if s.Currencies == nil {
					s.Currencies = map[string]bool{}
				}
				s.Currencies[d.Currency] = true
			}
		})
		aggregate.MustRegisterEvent[DepositedV2](typ, "Deposited", eventstore.SchemaVersion(2))
		if err := aggregate.RegisterUpcast(typ, "Deposited", 1, func(o DepositedV1) (DepositedV2, error) {
			return DepositedV2{Amount: o.Cents / 100, Currency: "EUR"}, nil
		}); err != nil {
			t.Fatal(err)
		}
		r, err := aggregate.NewRepository(e.store, typ, aggregate.WithSnapshots(e.snapshots(t)))
		if err != nil {
			t.Fatal(err)
		}
		a, err := r.Update(ctx, "w1", func(a *aggregate.Aggregate[Wallet]) error {
			a.Raise(DepositedV2{Amount: 5, Currency: "USD"})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		a, err = r.Load(ctx, "w1")
		if err != nil {
			t.Fatal(err)
		}
		if st := a.State(); st.Total != 12 || len(st.Currencies) != 2 || a.Version() != 3 {
			t.Fatalf("state %+v v%d", st, a.Version())
		}
	})
}

func TestRepositoryErrors(t *testing.T) {
	tg := redistest.Standalone(t)
	e := newEnv(t, tg)
	ctx := ctxT(t)
	typ := accountType(t)
	r := repo(t, e.store, typ, aggregate.WithRetry(aggregate.Retry{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}))

	if _, err := r.Load(ctx, "bad{id}"); !errors.Is(err, eventstore.ErrInvalidStreamID) {
		t.Fatalf("bad id: %v", err)
	}
	// A domain error is returned as is, and nothing is written.
	if _, err := r.Update(ctx, "x", aggregate.Decide(deposit, Deposit{Amount: 1})); err != errNotOpen {
		t.Fatalf("domain error: %v", err)
	}
	if v, _ := e.store.Version(ctx, eventstore.Stream("account", "x")); v != 0 {
		t.Fatalf("a refused command wrote: version %d", v)
	}
	// Save of a stale aggregate.
	a, _ := r.Load(ctx, "x")
	b, _ := r.Load(ctx, "x")
	a.Raise(Opened{Owner: "a"})
	b.Raise(Opened{Owner: "b"})
	if err := r.Save(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, a); err != nil { // nothing pending: no write
		t.Fatal(err)
	}
	if err := r.Save(ctx, b); !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("stale save: %v", err)
	}
	// An aggregate of another type.
	other := aggregate.NewType("other", applyAccount)
	aggregate.MustRegisterEvent[Opened](other, "Opened")
	o := other.New("x")
	o.Raise(Opened{})
	if err := r.Save(ctx, o); !errors.Is(err, aggregate.ErrWrongType) {
		t.Fatalf("other type: %v", err)
	}
	// Conflicts every time: gives up after the configured attempts.
	attempts := 0
	_, err := r.Update(ctx, "x", func(a *aggregate.Aggregate[Account]) error {
		attempts++
		if _, err := e.store.Append(ctx, a.Stream(), eventstore.Any, eventstore.NewEvent(Deposited{Amount: 1})); err != nil {
			t.Fatal(err)
		}
		a.Raise(Deposited{Amount: 1})
		return nil
	})
	var ce *aggregate.ConflictError
	if !errors.As(err, &ce) || ce.Attempts != 3 || attempts != 3 || !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("conflicts: %v after %d attempts", err, attempts)
	}
	// A cancelled context ends the retries.
	cctx, cancel := context.WithCancel(ctx)
	_, err = repo(t, e.store, typ, aggregate.WithRetry(aggregate.Retry{Attempts: 100, Base: time.Second, Max: time.Second})).Update(cctx, "x", func(a *aggregate.Aggregate[Account]) error {
		e.store.Append(ctx, a.Stream(), eventstore.Any, eventstore.NewEvent(Deposited{Amount: 1}))
		a.Raise(Deposited{Amount: 1})
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := aggregate.NewRepository(e.store, aggregate.NewType("bad-cat", applyAccount)); !errors.Is(err, eventstore.ErrInvalidStreamID) {
		t.Fatalf("bad category: %v", err)
	}
	// Every problem at once, the option's by its name.
	_, err = aggregate.NewRepository(e.store, aggregate.NewType("bad-cat", applyAccount), aggregate.WithRetry(aggregate.Retry{Attempts: -1, Base: 2 * time.Second, Max: time.Second}))
	if !errors.Is(err, eventstore.ErrInvalidStreamID) || strings.Count(err.Error(), "WithRetry") != 2 {
		t.Fatalf("bad category, attempts and delays: %v", err)
	}
	if _, err := aggregate.NewRepository[Account](e.store, nil); err == nil {
		t.Fatal("nil type accepted")
	}
}

// Issue 13 item 2: the write methods give the caller what waiting for a
// projection needs, without Store.Last and looking up where the stream lives.
func TestLastAppend(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := ctxT(t)
		e := newEnv(t, tg)
		accounts := repo(t, e.store, accountType(t))
		stream := eventstore.Stream("account", "alice")
		check := func(what string, a *aggregate.Aggregate[Account], events int) {
			t.Helper()
			res := a.LastAppend()
			last, err := e.store.Last(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := storetest.Locate(ctx, e.store, stream)
			if err != nil {
				t.Fatal(err)
			}
			if !a.Appended() || res.Stream != stream || res.Partition != p || res.Version != last.Version ||
				res.Version != a.Version() || len(res.Positions) != events || res.LastPosition() != last.Position {
				t.Fatalf("%s: LastAppend() = %+v, Appended %t; want %s partition %d version %d with %d positions ending at %v",
					what, res, a.Appended(), stream, p, last.Version, events, last.Position)
			}
		}

		a, err := accounts.Update(ctx, "alice", aggregate.Decide(open, Open{Owner: "Alice"}))
		if err != nil {
			t.Fatal(err)
		}
		check("Update", a, 1)

		a, err = accounts.Load(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if a.Appended() || len(a.LastAppend().Positions) != 0 {
			t.Fatalf("a loaded aggregate has LastAppend %+v, want zero", a.LastAppend())
		}
		a.Raise(Deposited{Amount: 5}, Deposited{Amount: 7})
		if err := accounts.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
		check("Save", a, 2)

		// A command that raises nothing writes nothing: zero result.
		a, err = accounts.Update(ctx, "alice", func(*aggregate.Aggregate[Account]) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if a.Appended() || a.LastAppend().Version != 0 {
			t.Fatalf("a no-op Update has LastAppend %+v, want zero", a.LastAppend())
		}
	})
}
