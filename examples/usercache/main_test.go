package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/examples/internal/demo/demotest"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func TestRunStandalone(t *testing.T) {
	t.Parallel()
	testRun(t, redistest.Standalone(t))
}

func TestRunCluster(t *testing.T) {
	t.Parallel()
	testRun(t, redistest.Cluster(t))
}

func testRun(t *testing.T, tg *redistest.Target) {
	ctx, out := demotest.Tell(t, tg, "run", run)
	for _, want := range []string{"loaded from the events", "expired after", "tombstone at version 2", "-> not found", "Versions.Switch(2)", "hit ratio"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	reg := eventstore.NewRegistry()
	registerEvents(reg)
	store, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg), eventstore.WithPartitions(4))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := readmodel.NewVersions(tg.Client, tg.Namespace, "profiles", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := vs.Active(ctx); err != nil || v != 2 {
		t.Errorf("active schema %d (%v), want 2", v, err)
	}
	// Both schemas, read as a reader would (entries may have expired: the
	// loader refills them).
	for v, fields := range map[int]func(Profile) map[string]string{1: fieldsV1, 2: fieldsV2} {
		m, err := readmodel.New(tg.Client, tg.Namespace, "profiles", readmodel.WithSchemaVersion(v), readmodel.WithLoader(loader(store, fields)))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[string]string{
			"bob":   fields(Profile{"Bob Builder", "bob@builder.example", "pro"}),
			"carol": fields(Profile{"Carol Danvers", "carol@example.com", "pro"}),
		}
		for id, w := range want {
			e, err := m.GetFresh(ctx, id)
			if err != nil || e.Version != 2 || !equal(e.Fields, w) {
				t.Errorf("v%d %s: %+v, %v; want %v at version 2", v, id, e, err, w)
			}
		}
		if _, err := m.Get(ctx, "alice"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("v%d alice: %v, want ErrNotFound (deleted)", v, err)
		}
	}
	for _, name := range []string{"profiles-v1", "profiles-v2"} {
		sts, err := projection.Status(ctx, store, name, "user")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sts {
			if s.Owner != "" || s.Lag != 0 || s.Pending != 0 {
				t.Errorf("%s on user/%d: owner %q, lag %d, pending %d after run", name, s.Partition, s.Owner, s.Lag, s.Pending)
			}
		}
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
