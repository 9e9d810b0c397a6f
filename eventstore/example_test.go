package eventstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
)

// Appending: a new stream (NoStream), the next events at the exact version the
// writer read, and a retry of the same events recognised by their ids.
func ExampleStore_Append() {
	ctx := context.Background()
	// An ephemeral Redis for the example; a program passes its own client.
	srv, err := redistest.Start(ctx)
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
	eventstore.MustRegister[Deposited](reg, "Deposited")
	// A namespace of its own per run, so reruns against a shared Redis start empty.
	ns := "example-" + strings.ToLower(rand.Text()[:8])
	store, err := eventstore.New(client, eventstore.WithNamespace(ns), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}

	alice := eventstore.Stream("account", "alice")
	res, err := store.Append(ctx, alice, eventstore.NoStream,
		eventstore.NewEvent(Deposited{Amount: 100}),
		eventstore.NewEvent(Deposited{Amount: 50}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: versions %d..%d, partition %d\n", res.Stream, res.FirstVersion(), res.Version, res.Partition)

	// NewEvent fixes the event's id, so sending the same event again (say after a
	// timeout) is recognised as a retry: nothing is written twice.
	ev, expected := eventstore.NewEvent(Deposited{Amount: 25}), eventstore.Exact(res.Version)
	for range 2 {
		res, err = store.Append(ctx, alice, expected, ev)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: version %d, replayed %t\n", res.Stream, res.Version, res.Replayed)
	}
	// Output:
	// account-alice: versions 1..2, partition 7
	// account-alice: version 3, replayed false
	// account-alice: version 3, replayed true
}

// Reading a stream back and folding it into state; a stream that never had events
// reads as ErrStreamNotFound.
func ExampleStore_Read() {
	ctx := context.Background()
	srv, err := redistest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	type (
		Opened    struct{ Owner string }
		Deposited struct{ Amount int64 }
		Withdrawn struct{ Amount int64 }
	)
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Opened](reg, "Opened")
	eventstore.MustRegister[Deposited](reg, "Deposited")
	eventstore.MustRegister[Withdrawn](reg, "Withdrawn")
	ns := "example-" + strings.ToLower(rand.Text()[:8])
	store, err := eventstore.New(client, eventstore.WithNamespace(ns), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}

	bob := eventstore.Stream("account", "bob")
	_, err = store.Append(ctx, bob, eventstore.NoStream,
		eventstore.NewEvent(Opened{Owner: "Bob"}),
		eventstore.NewEvent(Deposited{Amount: 80}),
		eventstore.NewEvent(Withdrawn{Amount: 30}))
	if err != nil {
		log.Fatal(err)
	}

	var balance int64
	for ev, err := range store.Read(ctx, bob, 0) {
		if err != nil {
			log.Fatal(err)
		}
		switch e := ev.Data.(type) {
		case Deposited:
			balance += e.Amount
		case Withdrawn:
			balance -= e.Amount
		}
		fmt.Printf("v%d %s %+v\n", ev.Version, ev.Type, ev.Data)
	}
	fmt.Println("balance", balance)

	for _, err := range store.Read(ctx, eventstore.Stream("account", "nobody"), 0) {
		fmt.Println(errors.Is(err, eventstore.ErrStreamNotFound))
	}
	// Output:
	// v1 Opened {Owner:Bob}
	// v2 Deposited {Amount:80}
	// v3 Withdrawn {Amount:30}
	// balance 50
	// true
}

// Appending to two streams atomically: both expected versions are checked, then
// all events are written, or none. The streams must share a partition, since one
// script can only touch one Redis Cluster slot; PartitionOf tells which ids do.
func ExampleStore_AppendMulti() {
	ctx := context.Background()
	srv, err := redistest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	type (
		Deposited struct{ Amount int64 }
		Withdrawn struct{ Amount int64 }
	)
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Deposited](reg, "Deposited")
	eventstore.MustRegister[Withdrawn](reg, "Withdrawn")
	ns := "example-" + strings.ToLower(rand.Text()[:8])
	store, err := eventstore.New(client, eventstore.WithNamespace(ns), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	partitions, err := store.CreateCategory(ctx, "account") // 16 unless configured
	if err != nil {
		log.Fatal(err)
	}

	// Find a savings account id in alice's partition.
	savings := ""
	for n := 1; savings == ""; n++ {
		if id := fmt.Sprintf("savings-%d", n); eventstore.PartitionOf(id, partitions) == eventstore.PartitionOf("alice", partitions) {
			savings = id
		}
	}
	alice := eventstore.Stream("account", "alice")
	if _, err := store.Append(ctx, alice, eventstore.NoStream, eventstore.NewEvent(Deposited{Amount: 100})); err != nil {
		log.Fatal(err)
	}

	results, err := store.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: alice, Expected: eventstore.Exact(1),
			Events: []eventstore.Event{eventstore.NewEvent(Withdrawn{Amount: 40})}},
		eventstore.StreamAppend{Stream: eventstore.Stream("account", savings), Expected: eventstore.NoStream,
			Events: []eventstore.Event{eventstore.NewEvent(Deposited{Amount: 40})}},
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		fmt.Printf("%s: version %d, partition %d\n", r.Stream, r.Version, r.Partition)
	}

	// bob lives in another partition: refused before anything is sent.
	_, err = store.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: alice, Expected: eventstore.Exact(2),
			Events: []eventstore.Event{eventstore.NewEvent(Withdrawn{Amount: 5})}},
		eventstore.StreamAppend{Stream: eventstore.Stream("account", "bob"), Expected: eventstore.Any,
			Events: []eventstore.Event{eventstore.NewEvent(Deposited{Amount: 5})}},
	)
	fmt.Println(errors.Is(err, eventstore.ErrCrossPartition))
	// Output:
	// account-alice: version 2, partition 7
	// account-savings-22: version 1, partition 7
	// true
}

// Optimistic concurrency: two writers decide on the same version; the first append
// wins, the second gets ErrWrongVersion with the stream's actual version, reads
// again, decides again and retries.
func Example_expectedVersion() {
	ctx := context.Background()
	srv, err := redistest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	type Withdrawn struct{ Amount int64 }
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Withdrawn](reg, "Withdrawn")
	ns := "example-" + strings.ToLower(rand.Text()[:8])
	store, err := eventstore.New(client, eventstore.WithNamespace(ns), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	bob := eventstore.Stream("account", "bob")

	// StreamExists refuses a stream without events; NoStream creates it.
	_, err = store.Append(ctx, bob, eventstore.StreamExists, eventstore.NewEvent(Withdrawn{Amount: 1}))
	fmt.Println(err)
	if _, err := store.Append(ctx, bob, eventstore.NoStream, eventstore.NewEvent(Withdrawn{Amount: 1})); err != nil {
		log.Fatal(err)
	}

	// Both writers read version 1.
	if _, err := store.Append(ctx, bob, eventstore.Exact(1), eventstore.NewEvent(Withdrawn{Amount: 20})); err != nil {
		log.Fatal(err)
	}
	_, err = store.Append(ctx, bob, eventstore.Exact(1), eventstore.NewEvent(Withdrawn{Amount: 10}))
	fmt.Println(err)
	fmt.Println(errors.Is(err, eventstore.ErrWrongVersion))

	var wrong *eventstore.WrongVersionError
	if errors.As(err, &wrong) {
		// A real writer reads the stream again and decides again; here the decision stands.
		res, err := store.Append(ctx, bob, eventstore.Exact(wrong.Actual), eventstore.NewEvent(Withdrawn{Amount: 10}))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("retried at version", wrong.Actual, "->", res.Version)
	}
	// Output:
	// eventstore: append to account-bob: wrong expected version: expected stream-exists, actual 0
	// eventstore: append to account-bob: wrong expected version: expected 1, actual 2
	// true
	// retried at version 2 -> 3
}

// Consuming a category's partition log with a consumer group of one's own
// (the guide's XREADGROUP / XACK pattern) and decoding its entries with the
// store's registry. Package projection does this, with leases, fencing and
// dead letters; a small tool can do it by hand.
func ExampleStore_Decode() {
	ctx := context.Background()
	srv, err := redistest.Start(ctx)
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
	eventstore.MustRegister[Deposited](reg, "Deposited")
	ns := "example-" + strings.ToLower(rand.Text()[:8])
	store, err := eventstore.New(client, eventstore.WithNamespace(ns), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	res, err := store.Append(ctx, eventstore.Stream("account", "alice"), eventstore.NoStream,
		eventstore.NewEvent(Deposited{Amount: 100}), eventstore.NewEvent(Deposited{Amount: 50}))
	if err != nil {
		log.Fatal(err)
	}

	// The log of alice's partition; a consumer of the whole category reads
	// every partition (Store.Partitions).
	logKey := store.Keys().Log("account", res.Partition)
	if err := client.Do(ctx, client.B().XgroupCreate().Key(logKey).Group("audit").Id("0").Build()).Error(); err != nil {
		log.Fatal(err)
	}
	streams, err := client.Do(ctx, client.B().Xreadgroup().Group("audit", "c1").Count(100).
		Streams().Key(logKey).Id(">").Build()).AsXReadSlices()
	if err != nil {
		log.Fatal(err)
	}
	for key, entries := range streams {
		for _, e := range entries {
			ev, err := store.Decode(ctx, key, e)
			if err != nil {
				log.Fatal(err) // a real consumer would set the entry aside
			}
			fmt.Printf("%s v%d %s %+v\n", ev.Stream, ev.Version, ev.Type, ev.Data)
			if err := client.Do(ctx, client.B().Xack().Key(key).Group("audit").Id(e.ID).Build()).Error(); err != nil {
				log.Fatal(err)
			}
		}
	}
	// Output:
	// account-alice v1 Deposited {Amount:100}
	// account-alice v2 Deposited {Amount:50}
}
