package projection_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
)

// Lag, Pending and Checkpoint stay exact through an AOF rewrite followed by
// a crash of Redis: on Redis 7.0 the group's entries-read is restored from
// the rewrite's base and never catches up (XREADGROUP is persisted as
// XCLAIM), so Redis' own "lag" of a caught-up group stays high for good;
// the projection's bookkeeping does not. Then, with the runner stopped,
// Lag counts exactly what was appended, both below and above the length
// counted entry by entry.
func TestLagExactAfterAOFRewriteAndCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	srv := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal),
		redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "yes")) // always: everysec may lose the last acknowledged appends to the SIGKILL, which this test is not about
	c := srv.NewClient(t)
	s := newStore(t, c, "lag", 1)
	m := newModel(t, c, "lag", "lag")
	newRunner := func() *projection.Runner {
		r, err := projection.NewRunner(s, projection.Projection{Name: "lag", Categories: []string{category}, Handler: countingBatch(m)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := newRunner()
	stop := runRunner(t, r)
	status := func() projection.PartitionStatus {
		t.Helper()
		st, err := projection.Status(ctx, s, "lag", category)
		if err != nil {
			t.Fatal(err)
		}
		return st[0]
	}
	redisLag := func() string {
		arr, err := c.Do(ctx, c.B().XinfoGroups().Key(s.Keys().Log(category, 0)).Build()).ToArray()
		if err != nil || len(arr) == 0 {
			return "?"
		}
		g, _ := arr[0].AsMap()
		l, ok := g["lag"]
		if !ok {
			return "absent"
		}
		if v, err := l.ToString(); err == nil {
			return v
		}
		if v, err := l.AsInt64(); err == nil {
			return strconv.FormatInt(v, 10)
		}
		return "nil"
	}

	last := appendAll(t, ctx, s, "a", 20, 10, 4)
	waitAll(t, ctx, r, last)
	if err := c.Do(ctx, c.B().Bgrewriteaof().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	await(t, ctx, "the AOF rewrite", func() bool {
		info, err := c.Do(ctx, c.B().Info().Section("persistence").Build()).ToString()
		return err == nil && strings.Contains(info, "aof_rewrite_in_progress:0") && !strings.Contains(info, "aof_rewrite_scheduled:1")
	})
	last, err := appendEvents(ctx, s, "a", 20, 10, 15, 4)
	if err != nil {
		t.Fatal(err)
	}
	waitAll(t, ctx, r, last)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	last, err = appendEvents(ctx, s, "a", 20, 25, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	waitAll(t, ctx, r, last)
	if lost, doubled := checkFold(t, ctx, m, "a", 20, 30); lost+doubled != 0 {
		t.Fatalf("lost %d doubled %d", lost, doubled)
	}
	st := status()
	t.Logf("caught up after the rewrite and the crash: %+v; Redis' own lag: %s", st, redisLag())
	if st.Lag != 0 || st.Pending != 0 || st.Checkpoint != st.Delivered || st.Delivered != last[0].LastPosition() {
		t.Fatalf("caught up, status %+v, want lag 0, nothing pending, checkpoint = delivered = %v", st, last[0].LastPosition())
	}

	// Stopped: what is appended is lag, counted one by one (below
	// exactLag) and by the bookkeeping (above).
	stop()
	for _, n := range []int{37, 700} {
		before := status()
		if _, err := appendEvents(ctx, s, "b"+strconv.Itoa(n), n, 0, 1, 8); err != nil {
			t.Fatal(err)
		}
		st := status()
		if st.Lag != before.Lag+int64(n) || st.Delivered != before.Delivered || st.Pending != 0 {
			t.Fatalf("%d appended with the runner stopped: status %+v (before %+v), want lag %d", n, st, before, before.Lag+int64(n))
		}
	}
	// A runner again: it catches up, and the bookkeeping follows.
	r = newRunner()
	stop = runRunner(t, r)
	res, err := s.Append(ctx, eventstore.Stream(category, "c"), eventstore.NoStream, eventstore.NewEvent(Deposited{Amount: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitFor(ctx, res); err != nil {
		t.Fatal(err)
	}
	// The runner's reads alone keep the bookkeeping (no Status call since
	// the one above the counted length): stopped, 600 more are exact.
	stop()
	if _, err := appendEvents(ctx, s, "d", 600, 0, 1, 8); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Lag != 600 || st.Pending != 0 || st.Delivered != res.LastPosition() {
		t.Fatalf("600 appended after a run: status %+v, want lag 600 after %v", st, res.LastPosition())
	}
	// Caught up once more.
	r = newRunner()
	stop = runRunner(t, r)
	await(t, ctx, "lag 0", func() bool { st := status(); return st.Lag == 0 && st.Pending == 0 })
	stop()

	// Retention trims what was delivered; lag stays exact (before 7.0 it
	// rests on the trim counter retention keeps, from 7.0 on entries-added).
	ret, err := retention.New(s, []retention.Policy{{Category: category, LogMaxLen: 100}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ret.Apply(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	trimmed, err := c.Do(ctx, c.B().Get().Key(s.Keys().LogTrimmed(category, 0)).Build()).AsInt64()
	if err != nil || trimmed == 0 || trimmed != rep.Logs[0].Trimmed {
		t.Fatalf("trim counter %d (%v), retention trimmed %+v", trimmed, err, rep.Logs)
	}
	if _, err := appendEvents(ctx, s, "e", 550, 0, 1, 8); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Lag != 550 {
		t.Fatalf("550 appended after %d trimmed: status %+v", trimmed, st)
	}
}
