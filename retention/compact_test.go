package retention_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
	"github.com/streamfold/streamfold/snapshot"
)

// TestCompactionKeepsWhatAppendsRelyOn: after truncation and compaction a
// stream keeps everything the append script reads — its version (Redis'
// last-generated-id, also when no entry is left or its tail was removed by
// hand) and where its life started — so the next Exact append succeeds at
// the true version and a stale one fails.
func TestCompactionKeepsWhatAppendsRelyOn(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t, tg)
		snaps := newSnapshots(t, s)
		c := s.Client()
		// Truncated to empty behind a snapshot at its last version.
		emptied := eventstore.Stream("account", "emptied")
		deposit(t, s, emptied, eventstore.NoStream, 6)
		// The same, in a second life.
		relived := eventstore.Stream("account", "relived")
		deposit(t, s, relived, eventstore.NoStream, 3)
		if _, err := s.Delete(ctx, relived, eventstore.Exact(3)); err != nil {
			t.Fatal(err)
		}
		deposit(t, s, relived, eventstore.NoStream, 4)
		// Its last two events removed by hand (XDEL): damaged, so truncation
		// leaves it whole, and compaction keeps its version above its last
		// entry.
		cutTail := eventstore.Stream("account", "cut-tail")
		deposit(t, s, cutTail, eventstore.NoStream, 8)
		_, tailKey, _ := storetest.Locate(ctx, s, cutTail)
		if err := c.Do(ctx, c.B().Xdel().Key(tailKey).Id("7-0", "8-0").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		want := map[eventstore.StreamID]eventstore.StreamInfo{}
		for _, id := range []eventstore.StreamID{emptied, relived, cutTail} {
			info, err := s.Info(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want[id] = info
			at := info.Version
			if id == cutTail {
				at = 4
			}
			if _, err := snaps.Save(ctx, id, snapshot.Snapshot{Version: at, SchemaVersion: 1, State: []byte{0x90}}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := retention.New(s, []retention.Policy{{Category: "account", Truncate: true, SnapshotSchema: 1, CompactIdle: time.Millisecond}},
			retention.WithSnapshots(snaps))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Apply(ctx, false)
		// The damaged stream (its tail removed by hand) is left whole.
		if err != nil || len(rep.Truncated) != 2 || rep.Skipped["damaged stream"] != 1 {
			t.Fatalf("truncate: %+v %v", rep, err)
		}
		// Compacted, or (no node left to shrink) already compact.
		if len(rep.Compacted)+rep.Skipped["already compact"] != 3 {
			t.Fatalf("compaction: %d compacted, skipped %v", len(rep.Compacted), rep.Skipped)
		}
		for id, before := range want {
			info, err := s.Info(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			wantFirst := uint64(0)
			if id == cutTail {
				wantFirst = 1
			}
			if info.Version != before.Version || info.Start != before.Start || info.First != wantFirst || info.Deleted {
				t.Fatalf("%s after truncation and compaction: %+v, before %+v", id, info, before)
			}
			if v, err := s.Version(ctx, id); err != nil || v != before.Version {
				t.Fatalf("%s: Version %d %v, want %d", id, v, err, before.Version)
			}
			if id == cutTail {
				// Still damaged: its last events were removed by hand, so
				// every append is refused whole.
				if info.Last != 6 || !info.Damaged {
					t.Fatalf("%s: %+v, want its tail still missing", id, info)
				}
				for _, exp := range []eventstore.ExpectedVersion{eventstore.Exact(before.Version - 1), eventstore.Exact(before.Version), eventstore.Any} {
					if _, err := s.Append(ctx, id, exp, eventstore.NewEvent(storetest.Deposited{})); !errors.Is(err, eventstore.ErrStreamDamaged) {
						t.Fatalf("%s: append with %s: %v", id, exp, err)
					}
				}
				continue
			}
			if _, err := s.Append(ctx, id, eventstore.Exact(before.Version-1), eventstore.NewEvent(storetest.Deposited{})); !errors.Is(err, eventstore.ErrWrongVersion) {
				t.Fatalf("%s: stale append: %v", id, err)
			}
			if _, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(storetest.Deposited{})); !errors.Is(err, eventstore.ErrWrongVersion) {
				t.Fatalf("%s: NoStream append to a live stream: %v", id, err)
			}
			res, err := s.Append(ctx, id, eventstore.Exact(before.Version), eventstore.NewEvent(storetest.Deposited{Amount: 9}))
			if err != nil || res.Version != before.Version+1 {
				t.Fatalf("%s: next append: %+v %v", id, res, err)
			}
		}
	})
}
