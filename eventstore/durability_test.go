package eventstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
)

func TestDurabilityWithReplica(t *testing.T) {
	ctx := context.Background()
	primary := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), redistest.WithArgs("--repl-diskless-sync-delay", "0"))
	replica := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal))
	pc := primary.NewClient(t)
	rc := replica.NewClient(t)
	host, port := splitAddr(t, primary.Addrs()[0])
	if err := rc.Do(ctx, rc.B().Replicaof().Host(host).Port(port).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	s, err := eventstore.New(pc, eventstore.WithNamespace("dur"), eventstore.WithRegistry(storetest.Registry()),
		eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	id := eventstore.Stream("account", "d1")
	// Wait until the replica has synced, so the append's WAIT measures
	// replication of the append itself.
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := rc.Do(ctx, rc.B().Info().Section("replication").Build()).ToString()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never synced: %v %s", err, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(storetest.Deposited{Amount: 1}))
	if err != nil {
		t.Fatalf("append with a replica: %v", err)
	}
	_, key, _ := storetest.Locate(ctx, s, id)
	// Acknowledged by the replica: it is there now, without waiting.
	if n, err := rc.Do(ctx, rc.B().Xlen().Key(key).Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("replica has %d entries (%v) after an acknowledged append", n, err)
	}
	if res.Version != 1 {
		t.Fatalf("version %d", res.Version)
	}
}

func TestDurabilityWithoutReplicas(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		ctx := context.Background()
		s, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(storetest.Registry()),
			eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: 20 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		id := eventstore.Stream("account", "nd")
		ev := eventstore.NewEvent(storetest.Deposited{Amount: 1})
		_, err = s.Append(ctx, id, eventstore.NoStream, ev)
		var de *eventstore.DurabilityError
		if !errors.As(err, &de) || !errors.Is(err, eventstore.ErrNotDurable) || de.Acked != 0 || de.Wanted != 1 {
			t.Fatalf("want DurabilityError, got %v", err)
		}
		if len(de.Results) != 1 || de.Results[0].Version != 1 {
			t.Fatalf("results %+v", de.Results)
		}
		// Applied on the primary all the same.
		if v, err := s.Version(ctx, id); err != nil || v != 1 {
			t.Fatalf("version %d %v", v, err)
		}
		// A retry replays, and is still not confirmed.
		if _, err := s.Append(ctx, id, eventstore.NoStream, ev); !errors.Is(err, eventstore.ErrNotDurable) {
			t.Fatalf("retry: %v", err)
		}
		if v, _ := s.Version(ctx, id); v != 1 {
			t.Fatalf("retry wrote: version %d", v)
		}
	})
}
