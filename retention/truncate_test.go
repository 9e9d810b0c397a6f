package retention_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
	"github.com/streamfold/streamfold/snapshot"
)

type failingArchiver struct{ calls int }

func (f *failingArchiver) Archive(context.Context, eventstore.StreamID, []eventstore.RecordedEvent) error {
	f.calls++
	return errors.New("disk full")
}

func TestTruncateBehindSnapshot(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t, tg)
		snaps, err := snapshot.New(s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { snaps.Close(ctx) })
		day := time.Date(2026, 3, 4, 23, 59, 0, 0, time.UTC)
		clocked, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(storetest.Registry()),
			eventstore.WithClock(func() time.Time { return day }))
		if err != nil {
			t.Fatal(err)
		}
		mk := func(name string, n int) eventstore.StreamID {
			id := eventstore.Stream("account", name)
			for i := range n {
				if _, err := clocked.Append(ctx, id, eventstore.Exact(uint64(i)), eventstore.NewEvent(storetest.Deposited{Amount: int64(i + 1)})); err != nil {
					t.Fatal(err)
				}
			}
			return id
		}
		full := mk("full", 50)
		bare := mk("bare", 10)       // no snapshot
		corrupt := mk("corrupt", 10) // unreadable snapshot
		other := mk("other", 10)     // snapshot of another schema
		if _, err := snaps.Save(ctx, full, snapshot.Snapshot{Version: 40, SchemaVersion: 1, Time: day, State: []byte{0x90}}); err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Save(ctx, other, snapshot.Snapshot{Version: 8, SchemaVersion: 7, Time: day, State: []byte{0x90}}); err != nil {
			t.Fatal(err)
		}
		p, _, _ := s.Locate(ctx, corrupt)
		c := s.Client()
		if err := c.Do(ctx, c.B().Set().Key(s.Keys().Snapshot(corrupt, p)).Value("garbage").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		before := readAll(t, s, full)
		policy := retention.Policy{Category: "account", Truncate: true, TruncateKeep: 5, SnapshotSchema: 1}

		// An archiver that fails: nothing is trimmed.
		fa := &failingArchiver{}
		r, err := retention.New(s, []retention.Policy{policy}, retention.WithSnapshots(snaps), retention.WithArchiver(fa))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Apply(ctx, false); err == nil || fa.calls == 0 {
			t.Fatalf("failing archiver: err %v, %d calls", err, fa.calls)
		}
		if got := readAll(t, s, full); len(got) != 50 {
			t.Fatalf("archiver failed but %d of 50 events left", len(got))
		}

		dir := t.TempDir()
		r, err = retention.New(s, []retention.Policy{policy}, retention.WithSnapshots(snaps), retention.WithArchiver(&retention.FileArchiver{Dir: dir}))
		if err != nil {
			t.Fatal(err)
		}
		dry, err := r.Apply(ctx, true)
		if err != nil || len(dry.Truncated) != 1 || dry.Truncated[0].Through != 35 || dry.Truncated[0].Trimmed != 35 {
			t.Fatalf("dry run: %+v %v", dry.Truncated, err)
		}
		if got := readAll(t, s, full); len(got) != 50 {
			t.Fatal("dry run trimmed")
		}
		if _, err := os.Stat(filepath.Join(dir, "account")); !os.IsNotExist(err) {
			t.Fatal("dry run archived")
		}
		rep, err := r.Apply(ctx, false)
		if err != nil || len(rep.Truncated) != 1 || rep.Truncated[0].Trimmed != 35 {
			t.Fatalf("truncate: %+v %v", rep.Truncated, err)
		}
		if rep.Skipped["no snapshot"] != 1 || rep.Skipped["corrupt snapshot"] != 1 || rep.Skipped["snapshot of another schema"] != 1 {
			t.Fatalf("skipped %v", rep.Skipped)
		}
		got := readAll(t, s, full)
		if len(got) != 15 || got[0].Version != 36 {
			t.Fatalf("after truncation: %d events from version %d", len(got), got[0].Version)
		}
		for i, ev := range got {
			if ev.ID != before[35+i].ID {
				t.Fatalf("kept event %d changed", ev.Version)
			}
		}
		for _, id := range []eventstore.StreamID{bare, corrupt, other} {
			if n := len(readAll(t, s, id)); n != 10 {
				t.Fatalf("%s: %d events left, want 10", id, n)
			}
		}
		// The archive holds exactly the trimmed events, in order, per day.
		arch, err := retention.ReadArchive(filepath.Join(dir, "account", "2026-03-04.jsonl"))
		if err != nil || len(arch) != 35 {
			t.Fatalf("archive: %d lines, %v", len(arch), err)
		}
		for i, a := range arch {
			if a.Version != uint64(i+1) || a.ID != before[i].ID.String() || a.Stream != full.String() || string(a.DataJSON) != fmt.Sprintf(`{"Amount":%d}`, i+1) || len(a.Data) == 0 {
				t.Fatalf("archived line %d: %+v", i, a)
			}
		}
		// The version and later appends are untouched; a second pass trims nothing more.
		if v, err := s.Version(ctx, full); err != nil || v != 50 {
			t.Fatalf("version %d %v", v, err)
		}
		if res, err := s.Append(ctx, full, eventstore.Exact(50), eventstore.NewEvent(storetest.Deposited{Amount: 51})); err != nil || res.Version != 51 {
			t.Fatalf("append after truncation: %+v %v", res, err)
		}
		again, err := r.Apply(ctx, false)
		if err != nil || len(again.Truncated) != 0 {
			t.Fatalf("second pass: %+v %v", again.Truncated, err)
		}
		t.Logf("truncated %s behind its snapshot at 40, keeping 5: trimmed %d events, archived %d lines", full, rep.Truncated[0].Trimmed, len(arch))
	})
}

func TestTruncateNeedsSnapshots(t *testing.T) {
	s := newStore(t, redistest.Standalone(t))
	r, err := retention.New(s, []retention.Policy{{Category: "account", Truncate: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), eventstore.Stream("account", "a"), eventstore.NoStream, eventstore.NewEvent(storetest.Deposited{})); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(context.Background(), true); !errors.Is(err, retention.ErrInvalidPolicy) {
		t.Fatalf("truncation without a snapshot store: %v", err)
	}
}
