package projection_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/eventstore"
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
				_, key, _ := s.Locate(ctx, cut)
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
