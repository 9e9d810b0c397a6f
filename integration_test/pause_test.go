package integration_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
)

// TestPauses freezes Redis twice while appends run, with CLIENT PAUSE and
// then with SIGSTOP/SIGCONT of the process: callers get errors within a
// bound (their context deadline, or rueidis' connection timeout for calls
// without one), and appends work again afterwards without anyone stepping in.
func TestPauses(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal))
	// ConnWriteTimeout bounds calls without a deadline: rueidis PINGs idle
	// connections and drops one that does not answer in time.
	c := srv.NewClient(t, func(o *rueidis.ClientOption) { o.ConnWriteTimeout = time.Second })
	admin := nodeClient(t, srv.Addrs()[0])
	store := newStore(t, c, "pause")
	const callTimeout = 300 * time.Millisecond
	w := &workload{store: store, category: "acct", workers: 8, entities: 8, timeout: callTimeout, pad: 32}
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- w.run(stop, 20*time.Second) }()

	pause := 1500 * time.Millisecond
	if *long {
		pause = 12 * time.Second // past rueidis' timeouts: connections are dropped and redialled
	}
	progress := func(what string) {
		base := w.ackedCount()
		waitFor(t, 20*time.Second, what, func() bool { return w.ackedCount() >= base+200 })
	}
	progress("appends before the pauses")

	// 1. CLIENT PAUSE ALL: the server holds every client's commands.
	if err := admin.Do(ctx, admin.B().ClientPause().Timeout(pause.Milliseconds()).All().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	noDeadline := appendWithoutDeadline(store)
	progress("appends after CLIENT PAUSE")
	clientPauseNoDeadline := <-noDeadline

	// 2. SIGSTOP: the process answers nothing, the kernel still accepts.
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	noDeadline = appendWithoutDeadline(store)
	waitFor(t, 10*time.Second, "appends to fail while stopped", func() bool { return w.errs.Load() > 0 })
	time.Sleep(time.Until(stopped.Add(pause))) // the pause itself: its length is the scenario
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	progress("appends after SIGCONT")
	sigstopNoDeadline := <-noDeadline
	close(stop)
	if left := <-done; left != 0 {
		t.Errorf("%d appends still unacknowledged after the drain", left)
	}
	v := w.verify(t, store)
	maxWait := time.Duration(w.maxErrWait.Load())
	summary(t, "attempted", w.attempted.Load(), "acknowledged", w.ackedCount(), "lost", v.lost, "duplicated", v.duplicated, "log_duplicated", v.logDuplicated,
		"pause", pause, "calls", w.calls.Load(), "failed_calls", w.errs.Load(), "replayed", w.replayed.Load(),
		"call_timeout", callTimeout, "longest_failed_call", maxWait.Round(time.Millisecond),
		"no_deadline_call_clientpause", clientPauseNoDeadline, "no_deadline_call_sigstop", sigstopNoDeadline,
		"errors", w.errorKinds())
	if v.lost != 0 || v.duplicated != 0 || v.gaps != 0 || v.mismatched != 0 {
		t.Fatalf("pauses: %+v", v)
	}
	// A grouped call lives until the latest deadline of its batch, so a
	// caller may wait up to about two of its own timeouts.
	if maxWait > 3*callTimeout+500*time.Millisecond {
		t.Errorf("a failed append took %v with a %v deadline", maxWait, callTimeout)
	}
	if w.errs.Load() == 0 {
		t.Errorf("no append failed during the pauses")
	}
	// Typed: the caller's deadline, or a net.Error with Timeout() when
	// rueidis drops a connection that stopped answering (long pauses).
	w.mu.Lock()
	for k, n := range w.errKind {
		if k != "deadline" && k != "net-timeout" {
			t.Errorf("%d errors of kind %s during the pauses", n, k)
		}
	}
	w.mu.Unlock()
}

// appendWithoutDeadline starts an append with context.Background and
// reports how it ended and how long it took.
func appendWithoutDeadline(store *eventstore.Store) <-chan string {
	out := make(chan string, 1)
	go func() {
		start := time.Now()
		_, err := store.Append(context.Background(), eventstore.Stream("nodl", "n-"+time.Now().Format("150405.000000")), eventstore.NoStream, eventstore.NewEvent(Tick{N: 1}))
		d := time.Since(start).Round(10 * time.Millisecond)
		switch {
		case err == nil:
			out <- "ok/" + d.String()
		case errors.Is(err, context.DeadlineExceeded):
			out <- "deadline/" + d.String()
		default:
			out <- errorKind(err) + "/" + d.String()
		}
	}()
	return out
}
