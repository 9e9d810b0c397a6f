package projection_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestRunnerAppliesEverything(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 4)
		m := newModel(t, tg.Client, tg.Namespace, "balances")
		last := appendAll(t, ctx, s, "a", 50, 20, 16)
		r, err := projection.NewRunner(s, projection.Projection{Name: "balances", Categories: []string{category}, Handler: counting(m)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(200*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		stop := runRunner(t, r)
		waitAll(t, ctx, r, last)
		// Events appended while running are picked up from the blocking read.
		last2 := appendAll(t, ctx, s, "b", 10, 5, 4)
		waitAll(t, ctx, r, last2)
		if lost, doubled := checkFold(t, ctx, m, "a", 50, 20); lost+doubled != 0 {
			t.Fatalf("lost %d doubled %d", lost, doubled)
		}
		checkFold(t, ctx, m, "b", 10, 5)
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st {
			if p.Pending != 0 || p.Lag != 0 || p.Owner != r.Instance() {
				t.Errorf("status %+v", p)
			}
		}
		stop()
		st, _ = r.Status(ctx)
		for _, p := range st {
			if p.Owner != "" {
				t.Errorf("lease not released: %+v", p)
			}
		}
	})
}

// testLogger logs to the test (visible with -v or on failure).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
