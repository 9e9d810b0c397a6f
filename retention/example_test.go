package retention_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
)

// Compact cold entity streams and trim partition logs, first as a dry run.
func ExampleRetainer_Apply() {
	ctx := context.Background()
	srv, err := redistest.Start(ctx) // an ephemeral Redis; a program passes its own client
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	type Deposited struct{ Amount int64 }
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Deposited](reg, "deposited")
	store, err := eventstore.New(client, eventstore.WithNamespace("example"), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	for i := range 20 {
		id := eventstore.Stream("account", fmt.Sprintf("acc-%d", i))
		if _, err := store.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Deposited{10}), eventstore.NewEvent(Deposited{5})); err != nil {
			log.Fatal(err)
		}
	}

	r, err := retention.New(store, []retention.Policy{{
		Category:    "account",
		LogMaxAge:   24 * time.Hour, // no consumer group: the logs hold nothing anyone needs
		CompactIdle: time.Nanosecond,
	}}, retention.WithClock(func() time.Time { return time.Now().Add(48 * time.Hour) }))
	if err != nil {
		log.Fatal(err)
	}
	dry, err := r.Apply(ctx, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("dry run: would compact %d streams, free more than 50 KB: %v\n", len(dry.Compacted), dry.BytesFreed() > 50_000)
	rep, err := r.Apply(ctx, false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("compacted %d streams\n", len(rep.Compacted))
	v, _ := store.Version(ctx, eventstore.Stream("account", "acc-7"))
	fmt.Println("acc-7 still at version", v)
	// Output:
	// dry run: would compact 20 streams, free more than 50 KB: true
	// compacted 20 streams
	// acc-7 still at version 2
}
