package readmodel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// Version-guarded writes: a write of an event that is not newer than the
// entry is skipped, so a redelivered event changes nothing.
func ExampleModel_Set() {
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

	m, err := readmodel.New(client, "example", "accounts")
	if err != nil {
		log.Fatal(err)
	}
	applied, _ := m.Set(ctx, "ann", 1, map[string]string{"owner": "Ann"})
	fmt.Println("v1 applied:", applied)
	applied, _ = m.Patch(ctx, "ann", 2, readmodel.IncrBy("balance", 30))
	fmt.Println("v2 applied:", applied)
	applied, _ = m.Patch(ctx, "ann", 2, readmodel.IncrBy("balance", 30)) // redelivered
	fmt.Println("v2 again applied:", applied)

	e, err := m.Get(ctx, "ann")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.Fields["owner"], e.Fields["balance"], e.Version)
	// Output:
	// v1 applied: true
	// v2 applied: true
	// v2 again applied: false
	// Ann 30 2
}

// Cache-aside: on a miss, the loader (here a stand-in for folding the
// entity's events) fills the entry, with the model's TTL; the next Get is
// served from the entry (and from client-side memory while it is unchanged).
func ExampleWithLoader() {
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

	loads := 0
	loader := func(ctx context.Context, id string) (readmodel.Entry, error) {
		loads++
		if id != "ann" {
			return readmodel.Entry{}, readmodel.ErrNotFound
		}
		return readmodel.Entry{ID: id, Version: 7, Fields: map[string]string{"owner": "Ann"}}, nil
	}
	m, err := readmodel.New(client, "example", "owners", readmodel.WithLoader(loader))
	if err != nil {
		log.Fatal(err)
	}
	e, err := m.Get(ctx, "ann")
	fmt.Println(e.Fields["owner"], e.Version, err)
	e, err = m.GetFresh(ctx, "ann")
	fmt.Println(e.Fields["owner"], e.Version, err)
	_, err = m.Get(ctx, "bob")
	fmt.Println(err)
	fmt.Println("loads:", loads) // ann once, bob once
	// Output:
	// Ann 7 <nil>
	// Ann 7 <nil>
	// readmodel: owners "bob" not found
	// loads: 2
}

// A rollup: per customer, open orders, total spent and the latest orders,
// fed by every order's stream. Each write names its event (stream and
// version), so a redelivered event is applied once, whichever order the
// streams' events arrive in.
func ExampleRollup() {
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

	customers, err := readmodel.NewRollup(client, "example", "customers")
	if err != nil {
		log.Fatal(err)
	}
	// What a projection's handler does with OrderPlaced (version 1 of an
	// order's stream) and OrderShipped (version 2).
	placed := func(order string, amount int64, at float64) {
		_, err := customers.Apply(ctx, "ann", eventstore.Stream("order", order), 1,
			readmodel.IncrBy("open", 1), readmodel.IncrBy("spent", amount), readmodel.KeepLatest("recent", order, at, 2))
		if err != nil {
			log.Fatal(err)
		}
	}
	placed("o1", 30, 1)
	placed("o2", 50, 2)
	placed("o2", 50, 2) // redelivered: skipped
	placed("o3", 20, 3)
	if _, err := customers.Apply(ctx, "ann", eventstore.Stream("order", "o1"), 2, readmodel.IncrBy("open", -1)); err != nil {
		log.Fatal(err)
	}

	e, err := customers.GetFresh(ctx, "ann")
	if err != nil {
		log.Fatal(err)
	}
	recent, err := customers.LatestFresh(ctx, "ann", "recent")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("open:", e.Fields["open"], "spent:", e.Fields["spent"], "events:", e.Events)
	fmt.Println("recent:", recent[0].Member, recent[1].Member)
	fmt.Printf("stats: %+v\n", customers.Stats())
	// Output:
	// open: 2 spent: 100 events: 4
	// recent: o3 o2
	// stats: {Hits:0 Misses:2 Loads:0 Applied:4 Skipped:1 Deferred:0}
}
