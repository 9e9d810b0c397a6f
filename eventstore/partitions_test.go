package eventstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
)

// A category's stored partition count wins over the store's. The WARN about
// the difference is for a count the caller chose (WithPartitions,
// WithCategoryPartitions); a store that only has the default (a tool, the
// CLI, a reader) uses the stored count without a word at WARN.
func TestStoredPartitionCountWarnsOnlyWhenChosen(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	open := func(opts ...eventstore.Option) (*eventstore.Store, *bytes.Buffer) {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
		s, err := eventstore.New(tg.Client, append([]eventstore.Option{eventstore.WithNamespace(tg.Namespace),
			eventstore.WithRegistry(storetest.Registry()), eventstore.WithLogger(log)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return s, &buf
	}
	creator, _ := open(eventstore.WithPartitions(4))
	if _, err := creator.CreateCategory(ctx, "account"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts []eventstore.Option
		warn bool
	}{
		{"default count", nil, false},
		{"the stored count", []eventstore.Option{eventstore.WithPartitions(4)}, false},
		{"another count", []eventstore.Option{eventstore.WithPartitions(8)}, true},
		{"another count for the category", []eventstore.Option{eventstore.WithCategoryPartitions("account", 2)}, true},
	} {
		s, logs := open(c.opts...)
		n, err := s.Partitions(ctx, "account")
		if err != nil || n != 4 {
			t.Fatalf("%s: partitions %d %v, want the stored 4", c.name, n, err)
		}
		if got := strings.Contains(logs.String(), "another partition count"); got != c.warn {
			t.Errorf("%s: warned %v, want %v (log: %q)", c.name, got, c.warn, logs.String())
		}
	}
}
