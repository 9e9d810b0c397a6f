package projection_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// await polls cond (a Redis-side condition of another goroutine or process)
// until it holds or ctx ends.
func await(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// recorder wraps a handler and records which positions it handled.
type recorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (rc *recorder) wrap(h projection.Handler) projection.Handler {
	return projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
		err := h.Handle(ctx, ev)
		if err == nil {
			rc.mu.Lock()
			rc.seen[fmt.Sprintf("%s@%d", ev.Stream, ev.Version)]++
			rc.mu.Unlock()
		}
		return err
	})
}

func TestTwoRunnersShareAndTakeOver(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 8)
		m := newModel(t, tg.Client, tg.Namespace, "shared")
		recs := []*recorder{{seen: map[string]int{}}, {seen: map[string]int{}}}
		// A connects as its own ACL user, so that the test can cut it off
		// for good (see below).
		userA := newACLUser(t, ctx, tg, "a", "~*", "+@all")
		clientA := userA.client(t)
		sa := newStore(t, clientA, tg.Namespace, 8)
		logs := newLogRecorder(t)
		mk := func(st *eventstore.Store, mm *readmodel.Model, i int) *projection.Runner {
			r, err := projection.NewRunner(st, projection.Projection{Name: "shared", Categories: []string{category}, Handler: recs[i].wrap(counting(mm))},
				projection.WithInstanceID(fmt.Sprintf("inst-%d", i)), projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), projection.WithLogger(slog.New(logs)))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		ma := newModel(t, clientA, tg.Namespace, "shared")
		a, b := mk(sa, ma, 0), mk(s, m, 1)
		stopA := runRunner(t, a)
		runRunner(t, b)
		await(t, ctx, "partitions shared", func() bool { return len(a.Held()) == 4 && len(b.Held()) == 4 })

		last := appendAll(t, ctx, s, "x", 100, 20, 16)
		waitAll(t, ctx, b, last)
		// Delivery is at least once: an event handled by one instance and
		// not yet acknowledged when its partition changes hands (a lease
		// renewal that a loaded machine delays past the TTL) is handled by
		// the other too, and the version guard makes it count once (checked
		// below). Without a handover, an event handled by both instances
		// means both read one partition.
		distinct := len(recs[0].seen)
		for pos := range recs[1].seen {
			if recs[0].seen[pos] == 0 {
				distinct++
			} else if !logs.logged("partition lost", "handing back partition") {
				t.Fatalf("event %s handled by both instances, and no partition changed hands", pos)
			}
		}
		if len(recs[0].seen) == 0 || len(recs[1].seen) == 0 || distinct != 2000 {
			t.Fatalf("handled %d + %d (%d distinct), want 2000 split over both", len(recs[0].seen), len(recs[1].seen), distinct)
		}

		// A dies abruptly: its connections go away, it can neither renew
		// nor release. B takes its partitions when the leases expire.
		// Closing A's client alone did not always do it: on a loaded
		// machine a closed cluster client's lease and heartbeat scripts
		// were seen still succeeding a minute later while its blocking
		// reads failed, so A kept its leases (load average 20+, 3 of 6
		// runs). Deleting A's ACL user disconnects it on every node and
		// refuses it from then on, whatever the client does.
		if err := userA.delete(ctx); err != nil {
			t.Fatal(err)
		}
		clientA.Close()
		await(t, ctx, "takeover", func() bool { return len(b.Held()) == 8 })
		stopA()
		last = appendAll(t, ctx, s, "y", 50, 10, 8)
		waitAll(t, ctx, b, last)
		if lost, doubled := checkFold(t, ctx, m, "x", 100, 20); lost+doubled != 0 {
			t.Fatalf("lost %d doubled %d", lost, doubled)
		}
		checkFold(t, ctx, m, "y", 50, 10)
	})
}

func TestPoisonEventIsSequencedInTheDLQ(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 4)
		m := newModel(t, tg.Client, tg.Namespace, "poison")
		var broken atomic.Bool
		broken.Store(true)
		var calls atomic.Int64
		var mu sync.Mutex
		var order []uint64 // versions of "bad" applied, in order
		h := projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			if ev.Stream.ID == "bad" {
				if ev.Version == 3 && broken.Load() {
					calls.Add(1)
					return errors.New("poison")
				}
				mu.Lock()
				order = append(order, ev.Version)
				mu.Unlock()
			}
			return counting(m)(ctx, ev)
		})
		var counters projection.Counters
		r, err := projection.NewRunner(s, projection.Projection{Name: "poison", Categories: []string{category}, Handler: h},
			projection.WithMiddleware(projection.Metrics(&counters), projection.Retry(projection.RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond})),
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r)
		bad := eventstore.Stream(category, "bad")
		var badLast eventstore.AppendResult
		for v := uint64(1); v <= 5; v++ {
			if badLast, err = s.Append(ctx, bad, eventstore.Exact(v-1), eventstore.Event{Data: Deposited{Amount: amount("bad", v)}}); err != nil {
				t.Fatal(err)
			}
		}
		others := appendAll(t, ctx, s, "ok", 20, 5, 4)
		waitAll(t, ctx, r, others) // other entities go on
		checkFold(t, ctx, m, "ok", 20, 5)
		if err := r.WaitFor(ctx, badLast); !errors.Is(err, projection.ErrDeadLettered) {
			t.Fatalf("WaitFor(bad) = %v, want ErrDeadLettered", err)
		}
		if calls.Load() != 3 {
			t.Fatalf("poison handled %d times, want 3 (retries)", calls.Load())
		}
		// A later event of the parked entity waits too.
		badLast, err = s.Append(ctx, bad, eventstore.Exact(5), eventstore.Event{Data: Deposited{Amount: amount("bad", 6)}})
		if err != nil {
			t.Fatal(err)
		}
		dl := r.DeadLetters()
		var letters []projection.DeadLetter
		await(t, ctx, "6 dead letters", func() bool {
			letters = letters[:0]
			for l, err := range dl.List(ctx, category) {
				if err != nil {
					t.Fatal(err)
				}
				letters = append(letters, l)
			}
			return len(letters) == 4
		})
		kinds := []string{}
		for _, l := range letters {
			kinds = append(kinds, fmt.Sprintf("%s:%d", l.Kind, l.Version))
		}
		if want := []string{"failed:3", "parked:4", "parked:5", "parked:6"}; !slices.Equal(kinds, want) {
			t.Fatalf("letters %v, want %v", kinds, want)
		}
		if letters[0].Attempts != 3 || letters[0].Err == "" || letters[0].Event.Data == nil {
			t.Fatalf("letter %+v", letters[0])
		}
		if e, _ := m.Get(ctx, "bad"); e.Version != 2 {
			t.Fatalf("bad at version %d, want 2", e.Version)
		}

		broken.Store(false) // the fix
		if err := dl.Retry(ctx, bad); err != nil {
			t.Fatal(err)
		}
		await(t, ctx, "retry applied", func() bool { return r.WaitFor(ctx, badLast) == nil })
		mu.Lock()
		if want := []uint64{1, 2, 3, 4, 5, 6}; !slices.Equal(order, want) {
			t.Fatalf("bad applied in order %v, want %v", order, want)
		}
		mu.Unlock()
		if e, _ := m.Get(ctx, "bad"); e.Version != 6 || e.Fields["sum"] != strconv.FormatInt(expectedSum("bad", 6), 10) {
			t.Fatalf("bad = %+v", e)
		}
		for l := range dl.List(ctx, category) {
			t.Fatalf("letter left: %+v", l)
		}
		// After the retry the entity flows normally again.
		res, err := s.Append(ctx, bad, eventstore.Exact(6), eventstore.Event{Data: Deposited{Amount: amount("bad", 7)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.WaitFor(ctx, res); err != nil {
			t.Fatal(err)
		}
		if counters.Failed.Load() != 1 {
			t.Fatalf("metrics: %d failures, want 1", counters.Failed.Load())
		}
	})
}

func TestSkipDeadLetter(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 2)
		m := newModel(t, tg.Client, tg.Namespace, "skip")
		h := projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			if ev.Version == 2 {
				return projection.Permanent(errors.New("malformed"))
			}
			return counting(m)(ctx, ev)
		})
		r, err := projection.NewRunner(s, projection.Projection{Name: "skip", Categories: []string{category}, Handler: h},
			projection.WithMiddleware(projection.Retry(projection.RetryPolicy{Attempts: 5, Initial: time.Millisecond})),
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r)
		st := eventstore.Stream(category, "s1")
		var res eventstore.AppendResult
		for v := uint64(1); v <= 3; v++ {
			if res, err = s.Append(ctx, st, eventstore.Exact(v-1), eventstore.Event{Data: Deposited{Amount: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.WaitFor(ctx, res); !errors.Is(err, projection.ErrDeadLettered) {
			t.Fatalf("WaitFor = %v", err)
		}
		dl := r.DeadLetters()
		for l := range dl.List(ctx, category) {
			if l.Kind == projection.KindFailed {
				if l.Attempts != 1 {
					t.Fatalf("permanent error retried: %d attempts", l.Attempts)
				}
				if err := dl.Skip(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := dl.Retry(ctx, st); err != nil {
			t.Fatal(err)
		}
		await(t, ctx, "skip and retry", func() bool { return r.WaitFor(ctx, res) == nil })
		if e, _ := m.Get(ctx, "s1"); e.Version != 3 || e.Fields["n"] != "2" {
			t.Fatalf("s1 = %+v, want v3 with 2 events applied", e)
		}
	})
}

func TestTrimmedWhilePendingIsDeadLettered(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 1)
		m := newModel(t, tg.Client, tg.Namespace, "trim")
		appendAll(t, ctx, s, "t", 10, 1, 1)
		// Another consumer that died with 10 entries pending, then the log
		// is trimmed under it (retention gone wrong). The runner's start
		// claims them with XAUTOCLAIM, which returns them as deleted:
		// claim.lua dead-letters them. (Entries trimmed in the runner's own
		// pending list are the next test's.)
		c := tg.Client
		log := s.Keys().Log(category, 0)
		must := func(r rueidis.RedisResult) {
			t.Helper()
			if err := r.Error(); err != nil {
				t.Fatal(err)
			}
		}
		must(c.Do(ctx, c.B().XgroupCreate().Key(log).Group("trim").Id("0").Build()))
		must(c.Do(ctx, c.B().Xreadgroup().Group("trim", "ghost").Count(10).Streams().Key(log).Id(">").Build()))
		// One of them delivered twice: still the ghost's.
		must(c.Do(ctx, c.B().Xreadgroup().Group("trim", "ghost").Count(1).Streams().Key(log).Id("0").Build()))
		must(c.Do(ctx, c.B().Xtrim().Key(log).Maxlen().Threshold("0").Build()))
		last := appendAll(t, ctx, s, "u", 5, 1, 1)

		r, err := projection.NewRunner(s, projection.Projection{Name: "trim", Categories: []string{category}, Handler: counting(m)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r)
		waitAll(t, ctx, r, last)
		n := 0
		for l, err := range r.DeadLetters().List(ctx, category) {
			if err != nil {
				t.Fatal(err)
			}
			if l.Kind != projection.KindTrimmed || l.Position.IsZero() {
				t.Fatalf("letter %+v", l)
			}
			n++
		}
		if n != 10 {
			t.Fatalf("%d trimmed letters, want 10", n)
		}
		checkFold(t, ctx, m, "u", 5, 1)
		// The ghost consumer, now without pending entries, is pruned only
		// once idle long enough; its entries were never dropped with it.
		st, _ := r.Status(ctx)
		if st[0].Pending != 0 {
			t.Fatalf("pending %d", st[0].Pending)
		}
	})
}

// TestTrimmedInOwnPendingIsDeadLettered: entries in the runner's own
// pending list whose log entries are trimmed while it drains that list
// (XREADGROUP from its own cursor, not ">") come back without fields;
// read.lua dead-letters them as trimmed and acks them, and the runner goes
// on with new entries.
func TestTrimmedInOwnPendingIsDeadLettered(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 1)
		m := newModel(t, tg.Client, tg.Namespace, "owntrim")
		// One entity: its events are applied one at a time, in order.
		appendAll(t, ctx, s, "t", 1, 10, 1)
		var pos []eventstore.Position
		for ev, err := range s.ReadLog(ctx, category, 0, eventstore.Position{}) {
			if err != nil {
				t.Fatal(err)
			}
			pos = append(pos, ev.Position)
		}
		if len(pos) != 10 {
			t.Fatalf("log holds %d entries, want 10", len(pos))
		}
		// A previous life of this very instance read all 10 and crashed
		// before acking: they are pending under its consumer name.
		const me = "me"
		c := tg.Client
		log := s.Keys().Log(category, 0)
		readUnacked(t, ctx, c, log, "owntrim", me, 10)
		// The restarted instance drains its pending list two entries at a
		// time (WithBatch(2), WithMaxInFlight(2)); the handler holds the
		// first event, so the reader waits for room with the other eight
		// still unread in its pending list. They are trimmed meanwhile.
		got, release := make(chan struct{}), make(chan struct{})
		h := counting(m)
		held := projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			if ev.Stream.ID == "t0" && ev.Version == 1 {
				close(got)
				<-release
			}
			return h(ctx, ev)
		})
		r, err := projection.NewRunner(s, projection.Projection{Name: "owntrim", Categories: []string{category}, Handler: held},
			projection.WithInstanceID(me), projection.WithBatch(2), projection.WithMaxInFlight(2),
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r)
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatal("the runner never handled its first pending entry")
		}
		if err := c.Do(ctx, c.B().Xtrim().Key(log).Maxlen().Threshold("0").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		last := appendAll(t, ctx, s, "u", 5, 1, 1)
		close(release)
		waitAll(t, ctx, r, last)
		var dead []eventstore.Position
		for l, err := range r.DeadLetters().List(ctx, category) {
			if err != nil {
				t.Fatal(err)
			}
			if l.Kind != projection.KindTrimmed {
				t.Fatalf("letter %+v, want kind %s", l, projection.KindTrimmed)
			}
			dead = append(dead, l.Position)
		}
		if !slices.Equal(dead, pos[2:]) {
			t.Fatalf("trimmed letters at %v, want the 8 entries read after the trim %v", dead, pos[2:])
		}
		// The two read before the trim were applied; the new entities are.
		if e, err := m.Get(ctx, "t0"); err != nil || e.Version != 2 || e.Fields["n"] != "2" {
			t.Fatalf("t0 = %+v %v, want its first 2 events applied", e, err)
		}
		checkFold(t, ctx, m, "u", 5, 1)
		st, err := r.Status(ctx)
		if err != nil || st[0].Pending != 0 {
			t.Fatalf("status %+v %v: want nothing pending", st, err)
		}
	})
}

func TestRebuildIntoNewVersionEqualsLive(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 4)
		vs, err := readmodel.NewVersions(tg.Client, tg.Namespace, "acct", 1)
		if err != nil {
			t.Fatal(err)
		}
		v1, _ := vs.Model(1)
		v2, _ := vs.Model(2)
		clients.Store(v1, tg.Client)
		clients.Store(v2, tg.Client)
		live, err := projection.NewRunner(s, projection.Projection{Name: "acct-v1", Categories: []string{category}, Handler: counting(v1)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, live)
		appendAll(t, ctx, s, "r", 100, 10, 8)

		// Rebuild v2 while appends go on; v1 keeps serving.
		more := make(chan map[int]eventstore.AppendResult, 1)
		moreErr := make(chan error, 1)
		go func() {
			last, err := appendEvents(ctx, s, "r", 100, 10, 10, 8)
			moreErr <- err
			more <- last
		}()
		p2 := projection.Projection{Name: "acct-v2", Categories: []string{category}, Handler: counting(v2)}
		stats, err := projection.Rebuild(ctx, s, p2, 8)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Entities != 100 || stats.Events < 1000 {
			t.Fatalf("rebuild stats %+v", stats)
		}
		if e, err := vs.Get(ctx, "r1"); err != nil || e.Version < 10 {
			t.Fatalf("v1 serving during rebuild: %+v %v", e, err)
		}
		r2, err := projection.NewRunner(s, p2, projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r2)
		if err := <-moreErr; err != nil {
			t.Fatal(err)
		}
		last := <-more
		waitAll(t, ctx, live, last)
		waitAll(t, ctx, r2, last)
		for i := range 100 {
			id := "r" + strconv.Itoa(i)
			a, err1 := v1.Get(ctx, id)
			b, err2 := v2.Get(ctx, id)
			if err1 != nil || err2 != nil || a.Version != 20 || a.Version != b.Version || a.Fields["n"] != b.Fields["n"] || a.Fields["sum"] != b.Fields["sum"] {
				t.Fatalf("%s: v1 %+v %v, v2 %+v %v", id, a, err1, b, err2)
			}
		}
		checkFold(t, ctx, v2, "r", 100, 20)
		if err := vs.Switch(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if v, _ := vs.Active(ctx); v != 2 {
			t.Fatalf("active %d", v)
		}
	})
}

func TestInlineWriteThrough(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 4)
		m := newModel(t, tg.Client, tg.Namespace, "wt")
		in := projection.NewInline(s, counting(m))
		r, err := projection.NewRunner(s, projection.Projection{Name: "wt", Categories: []string{category}, Handler: counting(m)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r)
		var last eventstore.AppendResult
		for i := range 20 {
			id := "w" + strconv.Itoa(i%4)
			v := uint64(i/4) + 1
			last, err = in.Append(ctx, eventstore.Stream(category, id), eventstore.Exact(v-1), eventstore.Event{Data: Deposited{Amount: amount(id, v)}})
			if err != nil {
				t.Fatal(err)
			}
			// Read-your-writes without waiting for the runner.
			if e, err := m.GetFresh(ctx, id); err != nil || e.Version != v {
				t.Fatalf("%s after inline append v%d: %+v %v", id, v, e, err)
			}
		}
		if err := r.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
		// Write-through stored each event once (5 per entity) and its entry
		// is at the stream's version.
		for i := range 4 {
			st := eventstore.Stream(category, "w"+strconv.Itoa(i))
			v, err := s.Version(ctx, st)
			if err != nil || v != 5 {
				t.Fatalf("%s at version %d (%v), want 5", st, v, err)
			}
			if e, err := m.GetFresh(ctx, st.ID); err != nil || e.Version != v {
				t.Fatalf("%s entry %+v (%v), want version %d", st, e, err, v)
			}
		}
		if lost, doubled := checkFold(t, ctx, m, "w", 4, 5); lost+doubled != 0 {
			t.Fatalf("lost %d doubled %d", lost, doubled)
		}
	})
}
