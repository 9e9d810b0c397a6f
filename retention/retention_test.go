package retention_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
	"github.com/streamfold/streamfold/snapshot"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func newStore(t *testing.T, tg *redistest.Target, opts ...eventstore.Option) *eventstore.Store {
	t.Helper()
	s, err := eventstore.New(tg.Client, append([]eventstore.Option{eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(storetest.Registry())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newSnapshots returns a snapshot store beside s, closed with the test.
func newSnapshots(t *testing.T, s *eventstore.Store) *snapshot.Store {
	t.Helper()
	snaps, err := snapshot.New(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close(context.Background()) })
	return snaps
}

// deposit appends n Deposited events to id, expecting expected.
func deposit(t *testing.T, s *eventstore.Store, id eventstore.StreamID, expected eventstore.ExpectedVersion, n int) eventstore.AppendResult {
	t.Helper()
	evs := make([]eventstore.Event, n)
	for i := range evs {
		evs[i] = eventstore.NewEvent(storetest.Deposited{Amount: int64(i + 1)})
	}
	res, err := s.Append(context.Background(), id, expected, evs...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readAll(t *testing.T, s *eventstore.Store, id eventstore.StreamID) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	for ev, err := range s.Read(context.Background(), id, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func memoryOf(t *testing.T, s *eventstore.Store, key string) int64 {
	t.Helper()
	c := s.Client()
	n, err := c.Do(context.Background(), c.B().MemoryUsage().Key(key).Samples(0).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCompaction(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t, tg)
		const n = 30
		ids := make([]eventstore.StreamID, n)
		batches := make([][]eventstore.Event, n)
		for i := range ids {
			ids[i] = eventstore.Stream("account", fmt.Sprintf("acc-%d", i))
			for j := range 3 {
				batches[i] = append(batches[i], eventstore.NewEvent(storetest.Note{Text: strings.Repeat("x", 90) + fmt.Sprint(j)}))
			}
			if _, err := s.Append(ctx, ids[i], eventstore.NoStream, batches[i]...); err != nil {
				t.Fatal(err)
			}
		}
		before := make([][]eventstore.RecordedEvent, n)
		for i, id := range ids {
			before[i] = readAll(t, s, id)
		}
		// A stream trimmed to empty keeps its version through compaction.
		empty := eventstore.Stream("account", "emptied")
		if _, err := s.Append(ctx, empty, eventstore.NoStream, eventstore.NewEvent(storetest.Deposited{Amount: 1}), eventstore.NewEvent(storetest.Deposited{Amount: 2})); err != nil {
			t.Fatal(err)
		}
		_, emptyKey, _ := storetest.Locate(ctx, s, empty)
		c := s.Client()
		if err := c.Do(ctx, c.B().Xtrim().Key(emptyKey).Maxlen().Threshold("0").Build()).Error(); err != nil {
			t.Fatal(err)
		}

		// Not idle long enough: nothing happens.
		r, err := retention.New(s, []retention.Policy{{Category: "account", CompactIdle: time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Apply(ctx, false)
		if err != nil || len(rep.Compacted) != 0 || rep.Skipped["not idle long enough"] != n+1 {
			t.Fatalf("young streams: %+v %v", rep, err)
		}

		r, err = retention.New(s, []retention.Policy{{Category: "account", CompactIdle: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		_, key0, _ := storetest.Locate(ctx, s, ids[0])
		mem0 := memoryOf(t, s, key0)
		// The emptied stream holds no node at all: already compact.
		dry, err := r.Apply(ctx, true)
		if err != nil || len(dry.Compacted) != n || dry.Skipped["already compact"] != 1 || dry.BytesFreed() <= 0 {
			t.Fatalf("dry run: %d compacted, %d bytes, %v", len(dry.Compacted), dry.BytesFreed(), err)
		}
		if got := memoryOf(t, s, key0); got != mem0 {
			t.Fatalf("dry run changed memory %d -> %d", mem0, got)
		}
		rep, err = r.Apply(ctx, false)
		if err != nil || len(rep.Compacted) != n {
			t.Fatalf("compaction: %d compacted, %v", len(rep.Compacted), err)
		}
		after0 := memoryOf(t, s, key0)
		t.Logf("3-event stream: %d bytes before, %d after; pass freed %d bytes over %d streams", mem0, after0, rep.BytesFreed(), len(rep.Compacted))
		if after0*2 > mem0 {
			t.Fatalf("compaction saved too little: %d -> %d bytes", mem0, after0)
		}
		// Every event, id, version and time is kept.
		for i, id := range ids {
			got := readAll(t, s, id)
			if len(got) != len(before[i]) {
				t.Fatalf("%s: %d events after compaction, %d before", id, len(got), len(before[i]))
			}
			for j := range got {
				a, b := got[j], before[i][j]
				if a.ID != b.ID || a.Version != b.Version || a.Data != b.Data || !a.Time.Equal(b.Time) || a.Type != b.Type {
					t.Fatalf("%s event %d changed: %+v -> %+v", id, j, b, a)
				}
			}
		}
		if v, err := s.Version(ctx, empty); err != nil || v != 2 {
			t.Fatalf("emptied stream version %d %v", v, err)
		}
		// A second pass finds nothing to do.
		again, err := r.Apply(ctx, false)
		if err != nil || len(again.Compacted) != 0 || again.Skipped["already compact"] != n+1 {
			t.Fatalf("second pass: %d compacted, skipped %v, %v", len(again.Compacted), again.Skipped, err)
		}
		// Later appends, conflicts and replays still work.
		res, err := s.Append(ctx, ids[0], eventstore.Exact(3), eventstore.NewEvent(storetest.Deposited{Amount: 4}))
		if err != nil || res.Version != 4 {
			t.Fatalf("append after compaction: %+v %v", res, err)
		}
		if _, err := s.Append(ctx, ids[1], eventstore.Exact(2), eventstore.NewEvent(storetest.Deposited{})); !errors.Is(err, eventstore.ErrWrongVersion) {
			t.Fatalf("stale append after compaction: %v", err)
		}
		replay, err := s.Append(ctx, ids[1], eventstore.NoStream, batches[1]...)
		if err != nil || !replay.Replayed || replay.Version != 3 {
			t.Fatalf("replay after compaction: %+v %v", replay, err)
		}
		if res, err := s.Append(ctx, empty, eventstore.Exact(2), eventstore.NewEvent(storetest.Deposited{})); err != nil || res.Version != 3 {
			t.Fatalf("append to emptied stream after compaction: %+v %v", res, err)
		}
	})
}

// TestLogTrimRespectsGroups: a lagging consumer group keeps every entry it
// has not acknowledged or not yet received, whatever the policy, unless
// forced.
func TestLogTrimRespectsGroups(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t, tg, eventstore.WithCategoryPartitions("ledger", 1))
		const total = 1000
		for i := range total / 10 {
			var evs []eventstore.Event
			for range 10 {
				evs = append(evs, eventstore.NewEvent(storetest.Deposited{Amount: 1}))
			}
			if _, err := s.Append(ctx, eventstore.Stream("ledger", fmt.Sprintf("l%d", i)), eventstore.NoStream, evs...); err != nil {
				t.Fatal(err)
			}
		}
		c := s.Client()
		key := s.Keys().Log("ledger", 0)
		ids := logIDs(t, s, key)
		// Group "slow" received 300 entries and acknowledged the first 200.
		if err := c.Do(ctx, c.B().XgroupCreate().Key(key).Group("slow").Id("0").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, c.B().Xreadgroup().Group("slow", "c1").Count(300).Streams().Key(key).Id(">").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, c.B().Xack().Key(key).Group("slow").Id(ids[:200]...).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		policy := retention.Policy{Category: "ledger", LogMaxLen: 10}
		r, err := retention.New(s, []retention.Policy{policy})
		if err != nil {
			t.Fatal(err)
		}
		dry, err := r.Apply(ctx, true)
		if err != nil || len(dry.Logs) != 1 || dry.Logs[0].LimitedBy != "slow" || dry.Logs[0].Trimmed != 200 || dry.Logs[0].BytesFreed <= 0 {
			t.Fatalf("dry run: %+v %v", dry.Logs, err)
		}
		if got := logIDs(t, s, key); len(got) != total {
			t.Fatalf("dry run trimmed: %d left", len(got))
		}
		rep, err := r.Apply(ctx, false)
		if err != nil || len(rep.Logs) != 1 {
			t.Fatalf("trim: %+v %v", rep, err)
		}
		left := logIDs(t, s, key)
		if rep.Logs[0].LimitedBy != "slow" || rep.Logs[0].Trimmed == 0 || int64(len(left)) != total-rep.Logs[0].Trimmed {
			t.Fatalf("trim report %+v, %d left", rep.Logs[0], len(left))
		}
		// Nothing the group still needs is gone: the first pending entry and everything after.
		first, _ := eventstore.ParsePosition(left[0])
		oldestPending, _ := eventstore.ParsePosition(ids[200])
		if first.Compare(oldestPending) > 0 {
			t.Fatalf("trimmed past the oldest pending entry: first left %s, oldest pending %s", left[0], ids[200])
		}
		if !contains(left, ids[200]) || !contains(left, ids[299]) || !contains(left, ids[total-1]) {
			t.Fatalf("needed entries trimmed")
		}
		t.Logf("log of %d entries, group acked 200 of 300 delivered: trimmed %d (approximate, whole nodes), %d left, freed %d bytes", total, rep.Logs[0].Trimmed, len(left), rep.Logs[0].BytesFreed)

		// A second group that has received nothing holds everything.
		if err := c.Do(ctx, c.B().XgroupCreate().Key(key).Group("new").Id("0").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		rep, err = r.Apply(ctx, false)
		if err != nil || rep.Logs[0].LimitedBy != "new" || rep.Logs[0].Trimmed != 0 {
			t.Fatalf("with an unread group: %+v %v", rep.Logs, err)
		}
		// Forced: the policy wins.
		policy.ForceLogTrim = true
		r, _ = retention.New(s, []retention.Policy{policy})
		rep, err = r.Apply(ctx, false)
		if err != nil || rep.Logs[0].LimitedBy != "" || rep.Logs[0].Trimmed == 0 {
			t.Fatalf("forced: %+v %v", rep.Logs, err)
		}
		if left := logIDs(t, s, key); len(left) > 110 {
			t.Fatalf("forced trim to ~10 left %d entries", len(left))
		}
	})
}

func TestLogTrimByAge(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	s := newStore(t, tg, eventstore.WithCategoryPartitions("audit", 1))
	for i := range 300 {
		if _, err := s.Append(ctx, eventstore.Stream("audit", fmt.Sprint(i)), eventstore.NoStream, eventstore.NewEvent(storetest.Deposited{})); err != nil {
			t.Fatal(err)
		}
	}
	key := s.Keys().Log("audit", 0)
	// Everything is older than a minute, seen from an hour ahead.
	r, err := retention.New(s, []retention.Policy{{Category: "audit", LogMaxAge: time.Minute}}, retention.WithClock(func() time.Time { return time.Now().Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Apply(ctx, false)
	if err != nil || len(rep.Logs) != 1 || rep.Logs[0].Trimmed < 200 {
		t.Fatalf("age trim: %+v %v", rep.Logs, err)
	}
	// Seen from now, nothing is old.
	for i := range 50 {
		if _, err := s.Append(ctx, eventstore.Stream("audit", fmt.Sprint("late", i)), eventstore.NoStream, eventstore.NewEvent(storetest.Deposited{})); err != nil {
			t.Fatal(err)
		}
	}
	r, _ = retention.New(s, []retention.Policy{{Category: "audit", LogMaxAge: time.Minute}})
	left := len(logIDs(t, s, key))
	if rep, err := r.Apply(ctx, false); err != nil || len(rep.Logs) != 1 || rep.Logs[0].Trimmed != 0 || len(logIDs(t, s, key)) != left {
		t.Fatalf("nothing old: %+v %v", rep.Logs, err)
	}
}

func TestInvalidPolicy(t *testing.T) {
	tg := redistest.Standalone(t)
	s := newStore(t, tg)
	for _, p := range [][]retention.Policy{
		{{Category: "a:b"}},
		{{Category: "a", LogMaxLen: -1}},
		{{Category: "a"}, {Category: "a"}},
	} {
		if _, err := retention.New(s, p); !errors.Is(err, retention.ErrInvalidPolicy) {
			t.Errorf("%+v: %v, want ErrInvalidPolicy", p, err)
		}
	}
	// Every problem is reported at once, the option's by its name.
	// A bad category is both an invalid policy and an invalid stream id.
	if err := (retention.Policy{Category: "a:b"}).Validate(); !errors.Is(err, retention.ErrInvalidPolicy) || !errors.Is(err, eventstore.ErrInvalidStreamID) {
		t.Errorf("bad category: %v, want ErrInvalidPolicy and ErrInvalidStreamID", err)
	}
	_, err := retention.New(s, []retention.Policy{{Category: "a:b"}, {Category: "c", TruncateKeep: -1}}, retention.WithTrimLimit(-1))
	for _, want := range []string{"a:b", "policy for c", "WithTrimLimit(-1)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("joined error %v does not name %q", err, want)
		}
	}
}

// TestNewCopiesPolicies: New keeps its own copy of the policies, with its
// defaults filled in; the caller's slice is left as it was.
func TestNewCopiesPolicies(t *testing.T) {
	tg := redistest.Standalone(t)
	s := newStore(t, tg)
	policies := []retention.Policy{{Category: "account", CompactIdle: time.Hour}}
	if _, err := retention.New(s, policies); err != nil {
		t.Fatal(err)
	}
	if want := (retention.Policy{Category: "account", CompactIdle: time.Hour}); policies[0] != want {
		t.Fatalf("New changed the caller's policy: %+v, was %+v", policies[0], want)
	}
}

func logIDs(t *testing.T, s *eventstore.Store, key string) []string {
	t.Helper()
	c := s.Client()
	arr, err := c.Do(context.Background(), c.B().Xrange().Key(key).Start("-").End("+").Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(arr))
	for i := range arr {
		e, err := arr[i].AsXRangeSlice()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e.ID
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestRunSchedules: the background job applies the policies on its own,
// pass after pass, and stops with its context.
func TestRunSchedules(t *testing.T) {
	tg := redistest.Standalone(t)
	s := newStore(t, tg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id := eventstore.Stream("account", "sched")
	if _, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(storetest.Deposited{Amount: 1})); err != nil {
		t.Fatal(err)
	}
	_, key, _ := storetest.Locate(ctx, s, id)
	before := memoryOf(t, s, key)
	r, err := retention.New(s, []retention.Policy{{Category: "account", CompactIdle: time.Nanosecond}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, 10*time.Millisecond) }()
	deadline := time.Now().Add(10 * time.Second)
	for memoryOf(t, s, key) >= before {
		if time.Now().After(deadline) {
			t.Fatal("the scheduled job never compacted the stream")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Appends go on while the job runs; the next passes compact again.
	if _, err := s.Append(ctx, id, eventstore.Exact(1), eventstore.NewEvent(storetest.Deposited{Amount: 2})); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if v, err := s.Version(context.Background(), id); err != nil || v != 2 {
		t.Fatalf("version %d %v", v, err)
	}
}
