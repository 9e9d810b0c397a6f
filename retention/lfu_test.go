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
)

// Under an LFU maxmemory-policy Redis does not track idle times (OBJECT
// IDLETIME is an error), so cold streams cannot be found: compaction says
// so with ErrIdleTimeUnavailable instead of a bare Redis error.
func TestCompactionUnderLFU(t *testing.T) {
	srv := redistest.NewServer(t, redistest.WithArgs("--maxmemory-policy", "allkeys-lfu"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := eventstore.New(srv.NewClient(t), eventstore.WithNamespace("lfu"), eventstore.WithRegistry(storetest.Registry()))
	if err != nil {
		t.Fatal(err)
	}
	deposit(t, s, eventstore.Stream("account", "a"), eventstore.NoStream, 3)
	r, err := retention.New(s, []retention.Policy{{Category: "account", CompactIdle: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, false); !errors.Is(err, retention.ErrIdleTimeUnavailable) {
		t.Fatalf("compaction under allkeys-lfu: %v, want ErrIdleTimeUnavailable", err)
	}
}
