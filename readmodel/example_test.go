package readmodel_test

import (
	"context"
	"fmt"
	"log"

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
