package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/streamfold/streamfold/redistest"
)

// TestCrashAppendfsyncAlways kills redis-server with SIGKILL while appends
// run, restarts it on the same port and directory, several times, then reads
// everything back: every acknowledged event is at its version, nothing is
// stored twice, entity streams and partition logs agree.
func TestCrashAppendfsyncAlways(t *testing.T) {
	w, v, cycles := crashLoop(t, "always")
	summary(t, "attempted", w.attempted.Load(), "acknowledged", w.ackedCount(), "lost", v.lost, "duplicated", v.duplicated, "log_duplicated", v.logDuplicated,
		"crashes", cycles, "calls", w.calls.Load(), "failed_calls", w.errs.Load(), "replayed", w.replayed.Load(),
		"stored_unacked", v.unacked, "errors", w.errorKinds())
	if v.lost != 0 || v.duplicated != 0 || v.gaps != 0 || v.mismatched != 0 || w.conflicts.Load() != 0 {
		t.Fatalf("appendfsync always: %+v, writer saw %d conflicts", v, w.conflicts.Load())
	}
}

// TestCrashAppendfsyncEverysec is the same with appendfsync everysec. It
// measures what a crash of the redis-server process loses; it asserts only
// what is guaranteed whatever the fsync policy: no duplicates, no gaps, no
// entity stream and log that disagree.
//
// A SIGKILL loses nothing that Redis has write(2)n to the AOF: the page cache
// survives the process. everysec loses acknowledged writes when the machine
// (the kernel, the power) fails within a second of them, or when Redis
// postponed the write because a background fsync was slow; neither happens
// here, so the figure measured is a process crash's, usually 0. Plan for up
// to ~1-2 s of acknowledged appends lost on a host failure with everysec.
func TestCrashAppendfsyncEverysec(t *testing.T) {
	w, v, cycles := crashLoop(t, "everysec")
	summary(t, "attempted", w.attempted.Load(), "acknowledged", w.ackedCount(), "lost", v.lost, "duplicated", v.duplicated, "log_duplicated", v.logDuplicated,
		"crashes", cycles, "calls", w.calls.Load(), "failed_calls", w.errs.Load(), "writer_saw_behind", w.behind,
		"stored_unacked", v.unacked, "errors", w.errorKinds())
	if v.duplicated != 0 || v.gaps != 0 || v.mismatched != 0 {
		t.Fatalf("appendfsync everysec: %+v", v)
	}
}

func crashLoop(t *testing.T, fsync string) (*workload, verification, int) {
	ctx := context.Background()
	srv := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal),
		redistest.WithArgs("--appendonly", "yes", "--appendfsync", fsync, "--aof-use-rdb-preamble", "yes"))
	c := srv.NewClient(t)
	store := newStore(t, c, "crash")
	w := &workload{store: store, category: "acct", workers: 8, entities: 16, timeout: 2 * time.Second, pad: 64}
	cycles := 8
	if *long {
		cycles = 40
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- w.run(stop, 30*time.Second) }()
	for i := range cycles {
		// Let appends make progress since the last restart, then crash.
		base := w.ackedCount()
		waitFor(t, 20*time.Second, "appends to be acknowledged", func() bool { return w.ackedCount() >= base+200+i*37 })
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := srv.Restart(rctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	base := w.ackedCount()
	waitFor(t, 20*time.Second, "appends after the last restart", func() bool { return w.ackedCount() >= base+200 })
	close(stop)
	if left := <-done; left != 0 {
		t.Errorf("%d appends still unacknowledged after the drain", left)
	}
	return w, w.verify(t, store), cycles
}
