package retention_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
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
		snaps := newSnapshots(t, s)
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
		p, _, _ := storetest.Locate(ctx, s, corrupt)
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
	// Refused when the Retainer is made, with every other problem, not at
	// the first Apply.
	_, err := retention.New(s, []retention.Policy{{Category: "account", Truncate: true}, {Category: "user", Truncate: true}}, retention.WithTrimLimit(-1))
	if !errors.Is(err, retention.ErrInvalidPolicy) || !strings.Contains(err.Error(), "account") || !strings.Contains(err.Error(), "user") || !strings.Contains(err.Error(), "WithTrimLimit") {
		t.Fatalf("truncation without a snapshot store: %v", err)
	}
	if _, err := retention.New(s, []retention.Policy{{Category: "account", Truncate: true}}, retention.WithSnapshots(newSnapshots(t, s))); err != nil {
		t.Fatalf("with a snapshot store: %v", err)
	}
}

// TestTruncateIgnoresStaleSnapshot: a snapshot of another life of its entity
// (written late, after a Delete, by a background writer) says nothing about
// the stream's events; truncation skips the stream, counts it and leaves
// the new life's events whole. A snapshot of the current life of a
// re-created stream is trusted as usual.
func TestTruncateIgnoresStaleSnapshot(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t, tg)
		snaps := newSnapshots(t, s)
		c := s.Client()
		snapKey := func(id eventstore.StreamID) string {
			p, _, err := storetest.Locate(ctx, s, id)
			if err != nil {
				t.Fatal(err)
			}
			return s.Keys().Snapshot(id, p)
		}
		// relive deletes a stream of old events with its snapshot at old,
		// re-creates it with n events, and puts the old life's snapshot
		// back, bypassing the snapshot store's checks, as a background
		// write racing the Delete would.
		relive := func(name string, old, n int) eventstore.StreamID {
			t.Helper()
			id := eventstore.Stream("account", name)
			deposit(t, s, id, eventstore.NoStream, old)
			if _, err := snaps.Save(ctx, id, snapshot.Snapshot{Version: uint64(old), SchemaVersion: 1, State: []byte{0x90}}); err != nil {
				t.Fatal(err)
			}
			raw, err := c.Do(ctx, c.B().Get().Key(snapKey(id)).Build()).AsBytes()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Delete(ctx, id, eventstore.Exact(uint64(old))); err != nil {
				t.Fatal(err)
			}
			deposit(t, s, id, eventstore.NoStream, n)
			if err := c.Do(ctx, c.B().Set().Key(snapKey(id)).Value(rueidis.BinaryString(raw)).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			return id
		}
		shorter := relive("shorter", 10, 3) // the new life ends below the old snapshot
		longer := relive("longer", 5, 12)   // ... or goes past it
		// A snapshot ahead of its stream, as an earlier life's would be
		// if versions restarted at 1.
		ahead := eventstore.Stream("account", "ahead")
		deposit(t, s, ahead, eventstore.NoStream, 7)
		var aheadRaw []byte
		{
			tmp := eventstore.Stream("account", "tmp")
			deposit(t, s, tmp, eventstore.NoStream, 100)
			if _, err := snaps.Save(ctx, tmp, snapshot.Snapshot{Version: 100, SchemaVersion: 1, State: []byte{0x90}}); err != nil {
				t.Fatal(err)
			}
			var err error
			if aheadRaw, err = c.Do(ctx, c.B().Get().Key(snapKey(tmp)).Build()).AsBytes(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Delete(ctx, tmp, eventstore.Any); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Do(ctx, c.B().Set().Key(snapKey(ahead)).Value(rueidis.BinaryString(aheadRaw)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		// A re-created stream with a snapshot of its current life.
		current := relive("current", 4, 10)
		info, err := s.Info(ctx, current)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Save(ctx, current, snapshot.Snapshot{Version: info.Start + 5, SchemaVersion: 1, State: []byte{0x90}}); err != nil {
			t.Fatal(err)
		}

		stale := []eventstore.StreamID{shorter, longer, ahead}
		before := map[eventstore.StreamID][]eventstore.RecordedEvent{}
		for _, id := range stale {
			before[id] = readAll(t, s, id)
		}
		dir := t.TempDir()
		var logged bytes.Buffer
		r, err := retention.New(s, []retention.Policy{{Category: "account", Truncate: true, SnapshotSchema: 1}},
			retention.WithSnapshots(snaps), retention.WithArchiver(&retention.FileArchiver{Dir: dir}),
			retention.WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
		if err != nil {
			t.Fatal(err)
		}
		for _, dry := range []bool{true, false} {
			rep, err := r.Apply(ctx, dry)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Skipped["stale snapshot"] != len(stale) || len(rep.Truncated) != 1 || rep.Truncated[0].Stream != current ||
				rep.Truncated[0].Through != info.Start+5 || rep.Truncated[0].Trimmed != 6 {
				t.Fatalf("dry run %v: truncated %+v, skipped %v", dry, rep.Truncated, rep.Skipped)
			}
		}
		for _, id := range stale {
			got := readAll(t, s, id)
			if len(got) != len(before[id]) {
				t.Fatalf("%s: %d of its %d events left after truncation behind a stale snapshot", id, len(got), len(before[id]))
			}
			for i := range got {
				if got[i].ID != before[id][i].ID {
					t.Fatalf("%s: event %d changed", id, got[i].Version)
				}
			}
		}
		if n := strings.Count(logged.String(), "level=WARN msg=\"retention: snapshot of another life"); n != 2*len(stale) {
			t.Fatalf("%d warnings for %d stale snapshots in 2 passes:\n%s", n, len(stale), logged.String())
		}
		if got := readAll(t, s, current); len(got) != 4 || got[0].Version != info.Start+6 {
			t.Fatalf("current life truncated to %d events", len(got))
		}
	})
}
