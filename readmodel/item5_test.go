package readmodel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// TestInvalidIDMatchesBoth: an id that could break the key layout is
// refused with an error matching readmodel.ErrInvalid (as the package
// promises) and eventstore.ErrInvalidStreamID (as it always did), by every
// method that takes an id (issue 13 item 5).
func TestInvalidIDMatchesBoth(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	m := newModel(t, tg.Client, tg.Namespace)
	typed := readmodel.NewTyped[account](m)
	var b readmodel.Batch
	calls := map[string]func() error{
		"Set":      func() error { _, err := m.Set(ctx, "a{b}", 1, nil); return err },
		"Patch":    func() error { _, err := m.Patch(ctx, "a{b}", 1); return err },
		"Delete":   func() error { _, err := m.Delete(ctx, "", 1); return err },
		"Get":      func() error { _, err := m.Get(ctx, "a\nb"); return err },
		"GetFresh": func() error { _, err := m.GetFresh(ctx, "a{b}"); return err },
		"Version":  func() error { _, err := m.Version(ctx, "a{b}"); return err },
		"Typed.Get": func() error {
			_, _, err := typed.Get(ctx, "a{b}")
			return err
		},
		"Typed.Update": func() error {
			_, err := typed.Update(ctx, "a{b}", 1, func(*account) error { return nil })
			return err
		},
		"Batch.Patch": func() error { return b.Patch(m, "a{b}", 1) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, readmodel.ErrInvalid) || !errors.Is(err, eventstore.ErrInvalidStreamID) {
			t.Errorf("%s: %v, want an error matching readmodel.ErrInvalid and eventstore.ErrInvalidStreamID", name, err)
		}
	}
}

// TestActiveServedFromCache: Versions.Get follows the active-version
// pointer through the client-side cache (no round trip while it does not
// change), and still sees a Switch at once, in the switching process and,
// through Redis' invalidation, in another (issue 13 item 5: DoCache with
// TTL 0 never hit, so every Get cost an extra round trip).
func TestActiveServedFromCache(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var hits, sent int
		reader := tg.NewClient(t)
		other := tg.NewClient(t)
		vs, err := readmodel.NewVersions(reader, tg.Namespace, "profiles", 1)
		if err != nil {
			t.Fatal(err)
		}
		ovs, err := readmodel.NewVersions(other, tg.Namespace, "profiles", 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := vs.Switch(ctx, 1); err != nil {
			t.Fatal(err)
		}
		// Read-your-switch in the switching process, at once.
		if v, err := vs.Active(ctx); err != nil || v != 1 {
			t.Fatalf("active after switch: %d %v", v, err)
		}
		for range 20 {
			v, err := vs.Active(ctx)
			if err != nil || v != 1 {
				t.Fatalf("active: %d %v", v, err)
			}
		}
		st := vs.Stats()
		hits, sent = int(st.Hits), int(st.Misses)
		if hits < 15 {
			t.Fatalf("active pointer: %d cache hits, %d reads sent to Redis of 21; want it served from the client-side cache", hits, sent)
		}
		// Another process switches: this one sees it through invalidation.
		if err := ovs.Switch(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if v, err := ovs.Active(ctx); err != nil || v != 2 {
			t.Fatalf("switcher's active after switch: %d %v", v, err)
		}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			v, err := vs.Active(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v == 2 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("the other process's switch never reached this one")
			case <-tick.C:
			}
		}
		// Switching back and forth in one process is always seen at once.
		for i := range 50 {
			want := 3 + i%2
			if err := vs.Switch(ctx, want); err != nil {
				t.Fatal(err)
			}
			if v, err := vs.Active(ctx); err != nil || v != want {
				t.Fatalf("switch %d: active %d %v, want %d", i, v, err, want)
			}
		}
	})
}
