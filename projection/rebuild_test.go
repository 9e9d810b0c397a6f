package projection_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// TestRebuildRefusesTruncatedHistory: an entity whose oldest events were
// truncated (behind a snapshot, by package retention) cannot be rebuilt from
// its stream; Rebuild says so with a typed error naming it, and folds none
// of its remaining events (5 deposits of 100 truncated to the last one must
// not rebuild to 100).
func TestRebuildRefusesTruncatedHistory(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		for _, tc := range []struct {
			name  string
			cat   string
			trim  []string // the XTRIM arguments after the key
			first uint64   // first version left
		}{
			{"oldest four trimmed", "acctfour", []string{"MINID", "5-0"}, 5},
			{"trimmed to empty", "acctempty", []string{"MAXLEN", "0"}, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				s := newStore(t, tg.Client, tg.Namespace, 2)
				whole, cut := eventstore.Stream(tc.cat, "whole"), eventstore.Stream(tc.cat, "cut")
				for _, id := range []eventstore.StreamID{whole, cut} {
					for v := range uint64(5) {
						if _, err := s.Append(ctx, id, eventstore.Exact(v), eventstore.Event{Data: Deposited{Amount: 100}}); err != nil {
							t.Fatal(err)
						}
					}
				}
				_, key, _ := storetest.Locate(ctx, s, cut)
				c := s.Client()
				if err := c.Do(ctx, c.B().Arbitrary("XTRIM").Keys(key).Args(tc.trim...).Build()).Error(); err != nil {
					t.Fatal(err)
				}
				m := newModel(t, tg.Client, tg.Namespace, tc.cat)
				_, err := projection.Rebuild(ctx, s, projection.Projection{Name: tc.cat, Categories: []string{tc.cat}, Handler: counting(m)}, 1)
				if !errors.Is(err, projection.ErrIncompleteHistory) {
					t.Fatalf("rebuild of a truncated stream: %v, want ErrIncompleteHistory", err)
				}
				var ie *projection.IncompleteHistoryError
				if !errors.As(err, &ie) || ie.Stream != cut || ie.First != tc.first || ie.Version != 5 {
					t.Fatalf("error %#v", err)
				}
				for _, want := range []string{cut.String(), "archive", "truncate"} {
					if !strings.Contains(err.Error(), want) {
						t.Fatalf("error %q does not say %q", err, want)
					}
				}
				if e, err := m.Get(ctx, "cut"); err == nil && e.Version != 0 {
					t.Fatalf("a partial history was folded: %+v", e)
				}
			})
		}
	})
}

// TestRebuildRecreatedEntity: an entity deleted and re-created has a whole
// history from its new life's start (versions continue after the deletion
// marker). Rebuild folds it, handing the handler the deletion marker first,
// as the runner received it from the log, so the read model ends as the
// live one: only the new life, at its version.
func TestRebuildRecreatedEntity(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t, tg.Client, tg.Namespace, 2)
		id := eventstore.Stream(category, "again")
		deposit := func(expected eventstore.ExpectedVersion, amounts ...int64) {
			t.Helper()
			evs := make([]eventstore.Event, len(amounts))
			for i, a := range amounts {
				evs[i] = eventstore.Event{Data: Deposited{Amount: a}}
			}
			if _, err := s.Append(ctx, id, expected, evs...); err != nil {
				t.Fatal(err)
			}
		}
		deposit(eventstore.NoStream, 1, 2, 3)
		del, err := s.Delete(ctx, id, eventstore.Exact(3))
		if err != nil {
			t.Fatal(err)
		}
		deposit(eventstore.NoStream, 40, 50)
		m := newModel(t, tg.Client, tg.Namespace, "again")
		var markers []eventstore.RecordedEvent
		h := projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			if ev.Type == eventstore.DeletedType {
				markers = append(markers, ev)
				_, err := m.Delete(ctx, ev.Stream.ID, ev.Version)
				return err
			}
			return counting(m)(ctx, ev)
		})
		st, err := projection.Rebuild(ctx, s, projection.Projection{Name: "again", Categories: []string{category}, Handler: h}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if st.Entities != 1 || st.Events != 2 {
			t.Fatalf("stats %+v", st)
		}
		if len(markers) != 1 || markers[0].Version != del.Version || markers[0].Stream != id {
			t.Fatalf("deletion markers handed: %+v (deleted at %d)", markers, del.Version)
		}
		e, err := m.Get(ctx, "again")
		if err != nil || e.Version != del.Version+2 || e.Fields["n"] != "2" || e.Fields["sum"] != "90" {
			t.Fatalf("rebuilt entry %+v %v, want the new life only at version %d", e, err, del.Version+2)
		}
	})
}

// An event removed by hand from the middle of a stream (XDEL) leaves a hole:
// loads refuse the stream, and so does a rebuild, naming the missing
// version, rather than fold around it.
func TestRebuildRefusesHole(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, 1)
		appendAll(t, ctx, s, "h", 2, 5, 1)
		_, key, err := storetest.Locate(ctx, s, eventstore.Stream(category, "h1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.Client.Do(ctx, tg.Client.B().Xdel().Key(key).Id("3-0").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		m := newModel(t, tg.Client, tg.Namespace, "holes")
		_, err = projection.Rebuild(ctx, s, projection.Projection{Name: "holes", Categories: []string{category}, Handler: counting(m)}, 1)
		var ie *projection.IncompleteHistoryError
		if !errors.As(err, &ie) || !errors.Is(err, projection.ErrIncompleteHistory) || ie.Missing != 3 || ie.Stream.ID != "h1" {
			t.Fatalf("rebuild across a hole: %v", err)
		}
	})
}
