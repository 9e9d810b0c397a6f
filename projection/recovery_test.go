package projection_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// logRecorder is a slog.Handler that keeps the level and message of every
// record (and shows them in the test's log).
type logRecorder struct {
	t    testing.TB
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogRecorder(t testing.TB) logRecorder {
	return logRecorder{t: t, mu: &sync.Mutex{}, recs: &[]slog.Record{}}
}

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l logRecorder) WithGroup(string) slog.Handler            { return l }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	*l.recs = append(*l.recs, r.Clone())
	l.mu.Unlock()
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	l.t.Logf("%s %s%s", r.Level, r.Message, b.String())
	return nil
}

// logged reports whether a message containing one of subs was logged.
func (l logRecorder) logged(subs ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range *l.recs {
		for _, s := range subs {
			if strings.Contains(r.Message, s) {
				return true
			}
		}
	}
	return false
}

// warnings returns the messages logged at WARN or above.
func (l logRecorder) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range *l.recs {
		if r.Level >= slog.LevelWarn {
			out = append(out, r.Message)
		}
	}
	return out
}

// Issue 12 item 5: a handler that fails because the shutdown timeout
// cancelled it leaves its event pending; the entity's later events must not
// be handled by this runner either, or the next holder would apply the
// failed event after them.
func TestShutdownTimeoutKeepsEntityOrder(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 1)
		stream := eventstore.Stream(category, "x")
		var last eventstore.AppendResult
		for v := range uint64(3) {
			res, err := s.Append(ctx, stream, eventstore.Exact(v), eventstore.Event{Data: Deposited{Amount: 1}})
			if err != nil {
				t.Fatal(err)
			}
			last = res
		}
		var mu sync.Mutex
		var applied []uint64 // versions handled successfully, by both runners
		record := func(v uint64) {
			mu.Lock()
			applied = append(applied, v)
			mu.Unlock()
		}
		started := make(chan struct{})
		first := projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			if ev.Version == 1 {
				close(started)
				<-ctx.Done() // hung until the shutdown timeout cancels it
				return ctx.Err()
			}
			record(ev.Version) // a handler that ignores its context
			return nil
		})
		p := projection.Projection{Name: "ordered", Categories: []string{category}, Handler: first}
		r1, err := projection.NewRunner(s, p, projection.WithInstanceID("first"), projection.WithShutdownTimeout(50*time.Millisecond),
			projection.WithLeaseTTL(time.Second), projection.WithLogger(slog.New(newLogRecorder(t))))
		if err != nil {
			t.Fatal(err)
		}
		stop1 := runRunner(t, r1)
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("event 1 never handled")
		}
		stop1()

		p.Handler = projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			record(ev.Version)
			return nil
		})
		r2, err := projection.NewRunner(s, p, projection.WithInstanceID("second"), projection.WithLeaseTTL(time.Second), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r2)
		if err := r2.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.IsSorted(applied) || len(applied) == 0 || applied[0] != 1 {
			t.Fatalf("entity x's events applied in the order %v, want 1, 2, 3", applied)
		}
	})
}

// Issue 12 item 7: WaitFor refuses a result it cannot wait on.
func TestWaitForRefusesResultWithoutPositions(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 2)
		r, err := projection.NewRunner(s, projection.Projection{Name: "p", Categories: []string{category}, Handler: projection.HandlerFunc(
			func(context.Context, eventstore.RecordedEvent) error { return nil })}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		err = r.WaitFor(ctx, eventstore.AppendResult{Stream: eventstore.Stream(category, "x"), Version: 3})
		if !errors.Is(err, projection.ErrNotWaitable) || !strings.Contains(err.Error(), "Append") {
			t.Fatalf("WaitFor(result without positions) = %v, want ErrNotWaitable saying what to pass", err)
		}
	})
}

// Issue 12 item 7: reads never create a category; they name the known ones.
func TestReadsDoNotCreateCategories(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 2)
		appendAll(t, ctx, s, "a", 1, 1, 1) // creates "acct"
		unknown := func(what string, err error) {
			t.Helper()
			var uc *eventstore.UnknownCategoryError
			if !errors.As(err, &uc) || !errors.Is(err, eventstore.ErrUnknownCategory) || uc.Category != "nosuch" || !slices.Equal(uc.Known, []string{category}) {
				t.Errorf("%s: %v, want an UnknownCategoryError for nosuch listing %s", what, err, category)
			}
		}
		_, err := projection.Status(ctx, s, "p", "nosuch")
		unknown("Status", err)
		p := projection.Projection{Name: "p", Categories: []string{"nosuch"}, Handler: projection.HandlerFunc(
			func(context.Context, eventstore.RecordedEvent) error { return nil })}
		// Run waits for the category (a projection deployed before the first
		// event of its category), with one WARN naming the known ones, and
		// creates nothing; it stops cleanly when its context ends.
		logs := &strings.Builder{}
		var mu sync.Mutex
		lr, err := projection.NewRunner(s, p, projection.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&mu, logs}, nil))))
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- lr.Run(rctx) }()
		waitUntil(t, ctx, "the runner's WARN", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return strings.Contains(logs.String(), "waiting for its category")
		})
		rcancel()
		if err := <-done; err != nil {
			t.Errorf("Run stopped while waiting for its category: %v", err)
		}
		mu.Lock()
		if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "category=nosuch") || !strings.Contains(logs.String(), "known=["+category+"]") {
			t.Errorf("want one WARN naming nosuch and the known categories, got %q", logs.String())
		}
		mu.Unlock()
		_, err = projection.Rebuild(ctx, s, p, 1)
		unknown("Rebuild", err)
		for _, err := range s.ReadLog(ctx, "nosuch", 0, eventstore.Position{}) {
			unknown("ReadLog", err)
		}
		for _, err := range projection.NewDeadLetters(s, "p").List(ctx, "nosuch") {
			unknown("DeadLetters.List", err)
		}
		_, err = s.Partitions(ctx, "nosuch")
		unknown("Partitions", err)
		// A stream of an unknown category does not exist: single-stream
		// reads say so without creating the category.
		for _, err := range s.Read(ctx, eventstore.Stream("nosuch", "x"), 0) {
			if !errors.Is(err, eventstore.ErrStreamNotFound) {
				t.Errorf("Read: %v, want ErrStreamNotFound", err)
			}
		}
		if in, err := s.Info(ctx, eventstore.Stream("nosuch", "x")); err != nil || in.Version != 0 {
			t.Errorf("Info: %+v %v", in, err)
		}
		// Nothing of it exists in Redis, for this store or a fresh one.
		cats, err := s.Categories(ctx)
		if err != nil || !slices.Equal(cats, []string{category}) {
			t.Errorf("categories %v %v", cats, err)
		}
		n, err := tg.Client.Do(ctx, tg.Client.B().Exists().Key(s.Keys().Category("nosuch")).Build()).AsInt64()
		if err != nil || n != 0 {
			t.Errorf("category key of nosuch exists: %d %v", n, err)
		}
		fresh := newStore(t, tg.Client, tg.Namespace, 2)
		_, err = fresh.Partitions(ctx, "nosuch")
		unknown("Partitions of a fresh store", err)
		// An append creates it.
		if _, err := s.Append(ctx, eventstore.Stream("nosuch", "x"), eventstore.NoStream, eventstore.Event{Data: Deposited{Amount: 1}}); err != nil {
			t.Fatal(err)
		}
		if n, err := fresh.Partitions(ctx, "nosuch"); err != nil || n != 2 {
			t.Errorf("after an append: %d partitions, %v", n, err)
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitUntil polls cond every 10 ms until it holds or ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A runner started before the first event of its category (a fresh
// deployment) starts on it once an append creates it.
func TestRunnerWaitsForItsCategory(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(newRegistry()), eventstore.WithPartitions(2))
		if err != nil {
			t.Fatal(err)
		}
		m := newModel(t, tg.Client, tg.Namespace, "late")
		r, err := projection.NewRunner(s, projection.Projection{Name: "late", Categories: []string{category}, Handler: counting(m)},
			projection.WithLeaseTTL(time.Second), projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		defer runRunner(t, r)()
		last := appendAll(t, ctx, s, "w", 3, 4, 1)
		waitAll(t, ctx, r, last)
		checkFold(t, ctx, m, "w", 3, 4)
	})
}
