package readmodel_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestMain(m *testing.M) {
	if os.Getenv(rollupProjectorEnv) != "" {
		os.Exit(rollupProjectorMain()) // a projector process of TestRollupChaos
	}
	redistest.Main(m)
}

func newModel(t *testing.T, c rueidis.Client, ns string, opts ...readmodel.Option) *readmodel.Model {
	t.Helper()
	m, err := readmodel.New(c, ns, "accounts", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVersionGuard(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		m := newModel(t, tg.Client, tg.Namespace)
		steps := []struct {
			name    string
			do      func() (bool, error)
			applied bool
			version uint64
			fields  map[string]string
		}{
			{"set v1", func() (bool, error) { return m.Set(ctx, "a", 1, map[string]string{"owner": "ann", "balance": "0"}) }, true, 1, map[string]string{"owner": "ann", "balance": "0"}},
			{"patch v2", func() (bool, error) { return m.Patch(ctx, "a", 2, readmodel.IncrBy("balance", 10)) }, true, 2, map[string]string{"owner": "ann", "balance": "10"}},
			{"redelivered v2", func() (bool, error) { return m.Patch(ctx, "a", 2, readmodel.IncrBy("balance", 10)) }, false, 2, map[string]string{"owner": "ann", "balance": "10"}},
			{"old v1", func() (bool, error) { return m.Set(ctx, "a", 1, map[string]string{"owner": "x"}) }, false, 2, map[string]string{"owner": "ann", "balance": "10"}},
			{"patch v3", func() (bool, error) {
				return m.Patch(ctx, "a", 3, readmodel.SetField("owner", "bob"), readmodel.DelField("balance"), readmodel.IncrByFloat("f", 1.5))
			}, true, 3, map[string]string{"owner": "bob", "f": "1.5"}},
		}
		for _, s := range steps {
			applied, err := s.do()
			if err != nil || applied != s.applied {
				t.Fatalf("%s: applied %v err %v, want %v", s.name, applied, err, s.applied)
			}
			e, err := m.GetFresh(ctx, "a")
			if err != nil || e.Version != s.version || len(e.Fields) != len(s.fields) {
				t.Fatalf("%s: %+v %v", s.name, e, err)
			}
			for k, v := range s.fields {
				if e.Fields[k] != v {
					t.Fatalf("%s: %s = %q, want %q", s.name, k, e.Fields[k], v)
				}
			}
		}
		// Delete leaves a tombstone: an older redelivery cannot resurrect it.
		if ok, err := m.Delete(ctx, "a", 4); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ok, _ := m.Patch(ctx, "a", 3, readmodel.SetField("owner", "zombie")); ok {
			t.Fatal("old event resurrected a deleted entry")
		}
		if _, err := m.Get(ctx, "a"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("get deleted: %v", err)
		}
		if v, _ := m.Version(ctx, "a"); v != 4 {
			t.Fatalf("tombstone version %d", v)
		}
		// A newer event recreates it from empty.
		if ok, _ := m.Patch(ctx, "a", 5, readmodel.IncrBy("balance", 1)); !ok {
			t.Fatal("patch after delete not applied")
		}
		if e, _ := m.GetFresh(ctx, "a"); e.Fields["balance"] != "1" || len(e.Fields) != 1 {
			t.Fatalf("after recreate: %+v", e)
		}
		// Invalid input is refused before Redis.
		if _, err := m.Set(ctx, "a", 0, nil); !errors.Is(err, readmodel.ErrInvalid) {
			t.Fatalf("version 0: %v", err)
		}
		if _, err := m.Patch(ctx, "a", 9, readmodel.SetField("_v", "1")); !errors.Is(err, readmodel.ErrInvalid) {
			t.Fatalf("reserved field: %v", err)
		}
		if _, err := m.Set(ctx, "a{b}", 1, nil); err == nil {
			t.Fatal("id with braces accepted")
		}
		// Next guard (write-through): only exactly the next version applies.
		nctx := readmodel.WithNextGuard(ctx)
		if ok, _ := m.Patch(nctx, "a", 7, readmodel.IncrBy("balance", 1)); ok {
			t.Fatal("next guard applied v7 on v5")
		}
		if ok, _ := m.Patch(nctx, "a", 6, readmodel.IncrBy("balance", 1)); !ok {
			t.Fatal("next guard refused v6 on v5")
		}
	})
}

// TestClientSideCache: Get is served from process memory after the first
// read, invalidated by Redis when the key changes; with caching off the
// same calls work (every Get is a miss).
func TestClientSideCache(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, tc := range []struct {
			name    string
			caching bool
		}{{"cache", true}, {"nocache", false}} {
			c := tg.NewClient(t, func(o *rueidis.ClientOption) { o.DisableCache = !tc.caching })
			writer := tg.NewClient(t, func(o *rueidis.ClientOption) { o.DisableCache = true })
			ns := tg.Namespace
			m := newModel(t, c, ns, readmodel.WithSchemaVersion(map[bool]int{true: 1, false: 2}[tc.caching]))
			w := newModel(t, writer, ns, readmodel.WithSchemaVersion(m.SchemaVersion()))
			if _, err := w.Set(ctx, "a", 1, map[string]string{"x": "1"}); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if e, err := m.Get(ctx, "a"); err != nil || e.Fields["x"] != "1" {
					t.Fatalf("%s: %+v %v", tc.name, e, err)
				}
			}
			st := m.Stats()
			if tc.caching && (st.Hits != 2 || st.Misses != 1) || !tc.caching && (st.Hits != 0 || st.Misses != 3) {
				t.Fatalf("%s: stats %+v", tc.name, st)
			}
			// Another process writes: the cached entry is invalidated.
			if _, err := w.Set(ctx, "a", 2, map[string]string{"x": "2"}); err != nil {
				t.Fatal(err)
			}
			tick := time.NewTicker(time.Millisecond)
			for {
				e, err := m.Get(ctx, "a")
				if err != nil {
					t.Fatal(err)
				}
				if e.Version == 2 {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("%s: invalidation never arrived", tc.name)
				case <-tick.C:
				}
			}
			tick.Stop()
		}
	})
}

type account struct {
	Owner   string
	Balance int64
}

func TestCacheAsideLoaderAndTyped(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		loads := 0
		loader := readmodel.TypedLoader(func(ctx context.Context, id string) (account, uint64, error) {
			loads++
			if id == "missing" {
				return account{}, 0, readmodel.ErrNotFound
			}
			return account{Owner: id, Balance: 42}, 7, nil
		})
		m := newModel(t, tg.Client, tg.Namespace, readmodel.WithLoader(loader), readmodel.WithTTL(time.Minute))
		typed := readmodel.NewTyped[account](m)
		a, v, err := typed.Get(ctx, "ann")
		if err != nil || a.Balance != 42 || v != 7 || loads != 1 {
			t.Fatalf("%+v %d %v loads %d", a, v, err, loads)
		}
		// The cached miss may be served once more before Redis' invalidation
		// for the loader's write arrives: at most one extra, harmless
		// (version-guarded) load.
		if _, _, err := typed.Get(ctx, "ann"); err != nil || loads > 2 {
			t.Fatalf("second get: %v, %d loads", err, loads)
		}
		base := loads
		if _, _, err := typed.Get(ctx, "missing"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
		// Update is a version-guarded fold step.
		for _, v := range []uint64{8, 8, 9} {
			if _, err := typed.Update(ctx, "ann", v, func(a *account) error { a.Balance++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if st := m.Stats(); st.Loads != int64(base+1) || st.Skipped < 1 {
			t.Fatalf("stats %+v", st)
		}
		e, err := m.GetFresh(ctx, "ann")
		if err != nil || e.Version != 9 {
			t.Fatal(e, err)
		}
		a, _, _ = typed.GetFresh(ctx, "ann")
		if a.Balance != 44 {
			t.Fatalf("balance %d, want 44", a.Balance)
		}
	})
}

// TestMetrics: the model's counters reach an installed meter provider.
func TestMetrics(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	loader := func(context.Context, string) (readmodel.Entry, error) {
		return readmodel.Entry{}, readmodel.ErrNotFound
	}
	m, err := readmodel.New(tg.Client, tg.Namespace, "metered", readmodel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))),
		readmodel.WithLoader(loader))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Patch(ctx, "b", 2, readmodel.IncrBy("x", 1)); err != nil { // a missing entry: deferred
		t.Fatal(err)
	}
	if _, err := m.Set(ctx, "a", 1, map[string]string{"x": "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Set(ctx, "a", 1, map[string]string{"x": "1"}); err != nil { // a redelivery: skipped
		t.Fatal(err)
	}
	for range 3 {
		if _, err := m.Get(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if d, ok := mt.Data.(metricdata.Sum[int64]); ok {
				for _, p := range d.DataPoints {
					name := mt.Name
					if o, ok := p.Attributes.Value("outcome"); ok {
						name += "/" + o.AsString()
					}
					got[name] += p.Value
				}
			}
		}
	}
	st := m.Stats()
	if got["streamfold.readmodel.writes/applied"] != 1 || got["streamfold.readmodel.writes/skipped"] != 1 || got["streamfold.readmodel.writes/deferred"] != 1 ||
		got["streamfold.readmodel.cache.hits"]+got["streamfold.readmodel.cache.misses"] != 3 || got["streamfold.readmodel.cache.hits"] != st.Hits {
		t.Fatalf("metrics %v, stats %+v", got, st)
	}
}
