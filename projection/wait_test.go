package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// Issue 13 item 2: an API process that runs no projection waits for it by
// name (no Runner, no dummy handler) on its own connection, then reads
// fresh: never stale. It also counts how often a cached Get issued at the
// same moment was stale (reported, not asserted: that is why the docs say
// GetFresh).
func TestWaitForByNameFromAnotherProcess(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		// The projector process.
		ps := newStore(t, tg.Client, tg.Namespace, 4)
		pm := newModel(t, tg.Client, tg.Namespace, "ryw")
		r, err := projection.NewRunner(ps, projection.Projection{Name: "ryw", Categories: []string{category}, Handler: counting(pm)},
			projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r)
		// The API process: its own client (connections and client-side cache).
		api := tg.NewClient(t)
		as := newStore(t, api, tg.Namespace, 4)
		am := newModel(t, api, tg.Namespace, "ryw")

		const writes = 300
		stale := 0
		for i := range writes {
			id := fmt.Sprintf("e%d", i%10)
			if i >= 10 {
				if _, err := am.Get(ctx, id); err != nil { // cache the entry before the write
					t.Fatal(err)
				}
			}
			res, err := as.Append(ctx, eventstore.Stream(category, id), eventstore.Any, eventstore.NewEvent(Deposited{Amount: 1}))
			if err != nil {
				t.Fatal(err)
			}
			if err := projection.WaitFor(ctx, as, "ryw", res); err != nil {
				t.Fatal(err)
			}
			if c, err := am.Get(ctx, id); err != nil {
				t.Fatal(err)
			} else if c.Version < res.Version {
				stale++
			}
			e, err := am.GetFresh(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if e.Version < res.Version {
				t.Fatalf("write %d: GetFresh after WaitFor read %s at version %d, want %d", i, id, e.Version, res.Version)
			}
		}
		t.Logf("%d writes: GetFresh never stale; a cached Get after WaitFor was stale %d times", writes, stale)
	})
}

// WaitFor by name keeps every refusal of Runner.WaitFor: results without
// positions, unknown categories (never created), dead letters, and says
// what was missing when ctx ends.
func TestWaitForByNameRefusals(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 2)

		err := projection.WaitFor(ctx, s, "p", eventstore.AppendResult{Stream: eventstore.Stream(category, "x"), Version: 3})
		if !errors.Is(err, projection.ErrNotWaitable) {
			t.Fatalf("WaitFor(no positions) = %v, want ErrNotWaitable", err)
		}
		pos := []eventstore.Position{{Ms: 1}}
		err = projection.WaitFor(ctx, s, "p", eventstore.AppendResult{Stream: eventstore.Stream(category, "x"), Partition: 2, Version: 1, Positions: pos})
		if !errors.Is(err, projection.ErrNotWaitable) {
			t.Fatalf("WaitFor(partition 2 of 2) = %v, want ErrNotWaitable", err)
		}
		err = projection.WaitFor(ctx, s, "bad name{", eventstore.AppendResult{Stream: eventstore.Stream(category, "x"), Version: 1, Positions: pos})
		if !errors.Is(err, projection.ErrInvalid) {
			t.Fatalf("WaitFor(bad name) = %v, want ErrInvalid", err)
		}
		err = projection.WaitFor(ctx, s, "p", eventstore.AppendResult{Stream: eventstore.Stream("typo", "x"), Version: 1, Positions: pos})
		if !errors.Is(err, eventstore.ErrUnknownCategory) {
			t.Fatalf("WaitFor(unknown category) = %v, want ErrUnknownCategory", err)
		}
		if _, err := newStoreNoCategory(t, tg, s).Partitions(ctx, "typo"); !errors.Is(err, eventstore.ErrUnknownCategory) {
			t.Fatalf("WaitFor created category typo: %v", err)
		}

		// No consumer group of that name: waits, then says so.
		res, err := s.Append(ctx, eventstore.Stream(category, "x"), eventstore.NoStream, eventstore.NewEvent(Deposited{Amount: 1}))
		if err != nil {
			t.Fatal(err)
		}
		// Long enough for a first look on a loaded machine (the
		// message says what that look found missing).
		short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
		err = projection.WaitFor(short, s, "nobody", res)
		cancelShort()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no consumer group") {
			t.Fatalf("WaitFor(projection never started) = %v, want DeadlineExceeded saying there is no consumer group", err)
		}

		// A dead letter, seen from a process without the runner.
		r, err := projection.NewRunner(s, projection.Projection{Name: "dl", Categories: []string{category}, Handler: projection.HandlerFunc(
			func(ctx context.Context, ev eventstore.RecordedEvent) error {
				if ev.Stream.ID == "bad" {
					return projection.Permanent(errors.New("malformed"))
				}
				return nil
			})}, projection.WithBlock(100*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		runRunner(t, r)
		bad, err := s.Append(ctx, eventstore.Stream(category, "bad"), eventstore.NoStream, eventstore.NewEvent(Deposited{Amount: 1}))
		if err != nil {
			t.Fatal(err)
		}
		other := newStoreNoCategory(t, tg, s)
		var de *projection.DeadLetteredError
		if err := projection.WaitFor(ctx, other, "dl", bad); !errors.As(err, &de) || de.Stream != bad.Stream {
			t.Fatalf("WaitFor(dead-lettered) = %v, want a DeadLetteredError naming %s", err, bad.Stream)
		}
		if err := projection.WaitFor(ctx, other, "dl", res); err != nil {
			t.Fatalf("WaitFor(applied) = %v", err)
		}
	})
}

// newStoreNoCategory is a second store on the namespace of s, with its own
// client and nothing cached.
func newStoreNoCategory(t *testing.T, tg *redistest.Target, s *eventstore.Store) *eventstore.Store {
	t.Helper()
	o, err := eventstore.New(tg.NewClient(t), eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(s.Registry()))
	if err != nil {
		t.Fatal(err)
	}
	return o
}
