package readmodel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// TestBatchMixesSettingsInOneCall: writes of one call of writes.lua send
// their settings (op, TTL, missing policy) only when they differ from the
// previous write's. A batch alternating ops and two models of different
// settings must apply each write by its own settings.
func TestBatchMixesSettingsInOneCall(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		plain := newModel(t, tg.Client, tg.Namespace) // no TTL, missing entries refused
		loader := func(context.Context, string) (readmodel.Entry, error) {
			return readmodel.Entry{}, readmodel.ErrNotFound
		}
		cached, err := readmodel.New(tg.Client, tg.Namespace, "cached", readmodel.WithTTL(time.Hour), readmodel.WithLoader(loader))
		if err != nil {
			t.Fatal(err)
		}
		var b readmodel.Batch
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(b.Set(plain, "a", 1, map[string]string{"x": "1"}))
		must(b.Set(plain, "b", 1, map[string]string{"x": "1"}))  // same settings as the previous write
		must(b.Patch(plain, "c", 1, readmodel.IncrBy("n", 2)))   // another op: a fresh start
		must(b.Set(cached, "d", 1, map[string]string{"y": "2"})) // another model: TTL, deferring
		must(b.Patch(cached, "e", 5, readmodel.IncrBy("n", 1)))  // missing at v5: deferred (stale marker)
		must(b.Patch(plain, "f", 5, readmodel.IncrBy("n", 1)))   // missing at v5: refused
		must(b.Delete(plain, "a", 2))                            // a tombstone
		must(b.Set(plain, "g", 1, map[string]string{"z": "3"}))  // back to a plain set
		applied, err := b.Exec(ctx)
		if !errors.Is(err, readmodel.ErrMissingEntry) {
			t.Fatalf("batch: %v, want the refused patch of f (ErrMissingEntry)", err)
		}
		want := []bool{true, true, true, true, false, false, true, true}
		for i := range want {
			if applied[i] != want[i] {
				t.Fatalf("applied %v, want %v", applied, want)
			}
		}
		c := tg.Client
		hash := func(m *readmodel.Model, id string) map[string]string {
			t.Helper()
			h, err := c.Do(ctx, c.B().Hgetall().Key(m.Key(id)).Build()).AsStrMap()
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		ttl := func(m *readmodel.Model, id string) int64 {
			t.Helper()
			ms, err := c.Do(ctx, c.B().Pttl().Key(m.Key(id)).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			return ms
		}
		for _, x := range []struct {
			m       *readmodel.Model
			id, f   string
			v, want string
			ttl     bool
		}{
			{plain, "a", "_del", "2", "1", false},
			{plain, "b", "x", "1", "1", false},
			{plain, "c", "n", "1", "2", false},
			{cached, "d", "y", "1", "2", true},
			{cached, "e", "_stale", "5", "1", true},
			{plain, "g", "z", "1", "3", false},
		} {
			h := hash(x.m, x.id)
			if h["_v"] != x.v || h[x.f] != x.want {
				t.Errorf("%s: %v, want _v %s and %s = %s", x.id, h, x.v, x.f, x.want)
			}
			if got := ttl(x.m, x.id); (got > 0) != x.ttl {
				t.Errorf("%s: PTTL %d, want a TTL: %v", x.id, got, x.ttl)
			}
		}
		if h := hash(plain, "f"); len(h) != 0 {
			t.Errorf("f, refused, holds %v", h)
		}
	})
}
