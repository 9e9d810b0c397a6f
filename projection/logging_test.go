package projection_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// byLevel counts the records of each message at level.
func (l logRecorder) byLevel(level slog.Level) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, r := range *l.recs {
		if r.Level == level {
			out[r.Message]++
		}
	}
	return out
}

// A runner is quiet: one INFO line when it starts and one when the set of
// partitions it holds changes (the per-partition lines are at DEBUG), and,
// with Redis unreachable, at most one WARN per kind of failure in 30 s
// however many partitions fail (the rest at DEBUG).
func TestRunnerLogsQuietly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal))
	c := srv.NewClient(t)
	s := newStore(t, c, "quiet", 16)
	m := newModel(t, c, "quiet", "quiet")
	start := func(id string) (*projection.Runner, logRecorder, func()) {
		logs := newLogRecorder(t)
		r, err := projection.NewRunner(s, projection.Projection{Name: "quiet", Categories: []string{category}, Handler: counting(m)},
			projection.WithInstanceID(id), projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond),
			projection.WithLogger(slog.New(logs)))
		if err != nil {
			t.Fatal(err)
		}
		return r, logs, runRunner(t, r)
	}
	a, logsA, stopA := start("a")
	defer stopA()
	// A round logs what it changed when it ends (lease.go: defer
	// logHeld), after Held shows its partitions: await the line too.
	held := func(l logRecorder) int { return l.byLevel(slog.LevelInfo)["projection: partitions held"] }
	await(t, ctx, "a holding all 16 partitions and saying so", func() bool { return len(a.Held()) == 16 && held(logsA) >= 1 })
	info := logsA.byLevel(slog.LevelInfo)
	if len(info) != 2 || info["projection: runner started"] != 1 || info["projection: partitions held"] != 1 {
		t.Fatalf("INFO lines of a runner's start: %v, want one 'runner started' and one 'partitions held'", info)
	}
	if n := logsA.byLevel(slog.LevelDebug)["projection: partition acquired"]; n != 16 {
		t.Errorf("%d DEBUG lines per acquired partition, want 16", n)
	}

	// A second instance: each logs its changes once per round that
	// changed them, not once per partition.
	b, logsB, stopB := start("b")
	defer stopB()
	await(t, ctx, "the partitions shared and both saying so", func() bool {
		return len(a.Held()) == 8 && len(b.Held()) == 8 && held(logsA) >= 2 && held(logsB) >= 1
	})
	if n := logsA.byLevel(slog.LevelInfo)["projection: partitions held"]; n < 2 || n > 4 {
		t.Errorf("a logged 'partitions held' %d times for one rebalance", n)
	}
	if n := logsB.byLevel(slog.LevelInfo)["projection: partitions held"]; n < 1 || n > 4 {
		t.Errorf("b logged 'partitions held' %d times while taking 8 partitions", n)
	}

	// Redis unreachable until both runners have lost every lease.
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	await(t, ctx, "every lease given up", func() bool { return len(a.Held())+len(b.Held()) == 0 })
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	for name, logs := range map[string]logRecorder{"a": logsA, "b": logsB} {
		warn := logs.byLevel(slog.LevelWarn)
		for msg, n := range warn {
			if n > 1 {
				t.Errorf("%s logged %q %d times at WARN within one outage (all: %v)", name, msg, n, warn)
			}
		}
		if warn["projection: partition lost"] != 1 {
			t.Errorf("%s: WARN lines %v, want one 'partition lost' for its 8 partitions", name, warn)
		}
	}
	await(t, ctx, "the partitions taken again", func() bool { return len(a.Held())+len(b.Held()) == 16 })
}
