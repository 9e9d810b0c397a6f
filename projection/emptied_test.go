package projection_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// flushAll empties every master of c's deployment, as FLUSHALL or a restart
// without persistence does.
func flushAll(t testing.TB, ctx context.Context, c rueidis.Client) {
	t.Helper()
	for addr, n := range c.Nodes() {
		if err := n.Do(ctx, n.B().Flushall().Build()).Error(); err != nil {
			t.Fatalf("FLUSHALL on %s: %v", addr, err)
		}
	}
}

// Issue 12 item 2: a runner whose Redis is emptied under it (FLUSHALL, or a
// restart without persistence) heals: it recreates its groups and leases,
// says so once at WARN, and applies what is appended afterwards; the store
// writes the category's partition count again on its next append. A
// dedicated server per topology: FLUSHALL would wipe the shared one.
func TestRunnerRecoversFromEmptiedRedis(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		name := "standalone"
		opts := []redistest.Option{redistest.WithSource(redistest.SourceLocal)}
		if cluster {
			name = "cluster"
			opts = append(opts, redistest.WithCluster())
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			srv := redistest.NewServer(t, opts...)
			c := srv.NewClient(t)
			s := newStore(t, c, "flush", 4)
			m := newModel(t, c, "flush", "balances")
			logs := newLogRecorder(t)
			r, err := projection.NewRunner(s, projection.Projection{Name: "balances", Categories: []string{category}, Handler: counting(m)},
				projection.WithLeaseTTL(time.Second), projection.WithBlock(200*time.Millisecond), projection.WithLogger(slog.New(logs)))
			if err != nil {
				t.Fatal(err)
			}
			last := appendAll(t, ctx, s, "a", 20, 3, 4)
			stop := runRunner(t, r)
			waitAll(t, ctx, r, last)
			checkFold(t, ctx, m, "a", 20, 3)
			if w := logs.warnings(); len(w) != 0 {
				t.Fatalf("warnings before the flush: %q", w)
			}

			flushAll(t, ctx, c)
			last = appendAll(t, ctx, s, "b", 20, 3, 4)
			wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
			defer wcancel()
			for _, res := range last {
				if err := r.WaitFor(wctx, res); err != nil {
					t.Fatalf("after the flush: wait for %s v%d: %v (held: %v)", res.Stream, res.Version, err, r.Held())
				}
			}
			if lost, doubled := checkFold(t, ctx, m, "b", 20, 3); lost+doubled != 0 {
				t.Fatalf("after the flush: lost %d doubled %d", lost, doubled)
			}
			if w := logs.warnings(); len(w) != 1 {
				t.Errorf("want one warning about the lost state, got %d: %q", len(w), w)
			}
			// The category is known again, with the count the logs use.
			fresh, err := eventstore.New(c, eventstore.WithNamespace("flush"), eventstore.WithPartitions(16))
			if err != nil {
				t.Fatal(err)
			}
			// The store compares its cached count with Redis once a
			// second, on an append: keep appending until it has.
			await(t, ctx, "the category's partition count written again by an append", func() bool {
				if _, err := s.Append(ctx, eventstore.Stream(category, "c"), eventstore.Any, eventstore.Event{Data: Deposited{Amount: 1}}); err != nil {
					t.Fatal(err)
				}
				n, err := fresh.Partitions(ctx, category)
				return err == nil && n == 4
			})
			stop()
		})
	}
}

// A consumer group deleted under a running runner (XGROUP DESTROY, a
// partial restore) is recreated at the start of its log, with one WARN.
func TestRunnerRecreatesLostGroup(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 2)
		m := newModel(t, tg.Client, tg.Namespace, "balances")
		logs := newLogRecorder(t)
		r, err := projection.NewRunner(s, projection.Projection{Name: "balances", Categories: []string{category}, Handler: counting(m)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(200*time.Millisecond), projection.WithLogger(slog.New(logs)))
		if err != nil {
			t.Fatal(err)
		}
		last := appendAll(t, ctx, s, "a", 10, 2, 4)
		runRunner(t, r)
		waitAll(t, ctx, r, last)
		for p := range 2 {
			log := s.Keys().Log(category, p)
			if err := tg.Client.Do(ctx, tg.Client.B().XgroupDestroy().Key(log).Group("balances").Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
		last = appendAll(t, ctx, s, "b", 10, 2, 4)
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		for _, res := range last {
			if err := r.WaitFor(wctx, res); err != nil {
				t.Fatalf("after XGROUP DESTROY: wait for %s v%d: %v", res.Stream, res.Version, err)
			}
		}
		// Redelivered from the start of the logs: the version guard keeps
		// "a" exact.
		checkFold(t, ctx, m, "a", 10, 2)
		checkFold(t, ctx, m, "b", 10, 2)
		if w := logs.warnings(); len(w) != 1 {
			t.Errorf("want one warning about the recreated groups, got %d: %q", len(w), w)
		}
	})
}

// A lost consumer group that Redis refuses to recreate (here the runner's
// ACL user lost XGROUP after the group was destroyed) cannot be healed: Run
// stops with a *StateLostError that says why. It used to call fail and
// then spin in its maintenance loop, never returning.
func TestRunStopsWhenStateCannotBeRecreated(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ns := tg.Namespace
		user := newACLUser(t, ctx, tg, "lost", "~*", "+@all")
		rc := user.client(t)
		s := newStore(t, rc, ns, 2)
		m := newModel(t, rc, ns, "balances")
		r, err := projection.NewRunner(s, projection.Projection{Name: "balances", Categories: []string{category}, Handler: counting(m)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(200*time.Millisecond), projection.WithLogger(slog.New(newLogRecorder(t))))
		if err != nil {
			t.Fatal(err)
		}
		last := appendAll(t, ctx, s, "a", 4, 2, 2)
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitAll(t, ctx, r, last)

		user.set(t, ctx, "-xgroup")
		for p := range 2 {
			if err := tg.Client.Do(ctx, tg.Client.B().XgroupDestroy().Key(s.Keys().Log(category, p)).Group("balances").Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
		appendAll(t, ctx, s, "b", 4, 1, 2)
		awaitStateLost(t, ctx, done, "recreate group", "Redis refused to recreate the projection's group")
	})
}

// A Redis that comes back empty and then gets the category from a process
// configured with another partition count routes entities to partitions
// this runner does not read (and an entity's later events to another log
// than its earlier ones). The runner cannot heal that: Run stops with a
// *StateLostError that says to restart it. It used to heal at its old count
// and run on, never reading the new partitions' logs: no error, no log.
func TestRunStopsWhenPartitionCountChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal))
	c := srv.NewClient(t)
	s := newStore(t, c, "recount", 4)
	m := newModel(t, c, "recount", "balances")
	r, err := projection.NewRunner(s, projection.Projection{Name: "balances", Categories: []string{category}, Handler: counting(m)},
		projection.WithLeaseTTL(time.Second), projection.WithBlock(200*time.Millisecond), projection.WithLogger(slog.New(newLogRecorder(t))))
	if err != nil {
		t.Fatal(err)
	}
	last := appendAll(t, ctx, s, "a", 5, 2, 4)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitAll(t, ctx, r, last)

	flushAll(t, ctx, c)
	other := newStore(t, c, "recount", 8)
	appendAll(t, ctx, other, "b", 16, 1, 4)
	awaitStateLost(t, ctx, done, "8 partitions", "its category's partition count changed")
}

// awaitStateLost waits for Run's result on done: a *StateLostError whose
// message names want, returned after what happened (after).
func awaitStateLost(t *testing.T, ctx context.Context, done <-chan error, want, after string) {
	t.Helper()
	select {
	case err := <-done:
		var sl *projection.StateLostError
		if !errors.Is(err, projection.ErrStateLost) || !errors.As(err, &sl) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Run returned %v; want a *StateLostError naming %q", err, want)
		}
		t.Logf("Run: %v", err)
	case <-ctx.Done():
		t.Fatalf("Run did not return after %s", after)
	}
}
