package tour_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"strings"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// The README's five-minute tour: an aggregate, a projection into a read model,
// and a read of it.
func Example() {
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
	ns := "tour-" + strings.ToLower(rand.Text()[:8])

	// The domain: plain Go. State, a fold of events into it, and a command
	// that decides events from the state (or refuses).
	type (
		Deposited struct{ Amount int64 }
		Withdrawn struct{ Amount int64 }
		Account   struct{ Balance int64 }
	)
	account := aggregate.NewType("account", func(s *Account, ev any) {
		switch e := ev.(type) {
		case Deposited:
			s.Balance += e.Amount
		case Withdrawn:
			s.Balance -= e.Amount
		}
	})
	aggregate.MustRegisterEvent[Deposited](account, "Deposited")
	aggregate.MustRegisterEvent[Withdrawn](account, "Withdrawn")
	withdraw := func(s Account, amount int64) ([]any, error) {
		if amount > s.Balance {
			return nil, fmt.Errorf("withdraw %d: insufficient funds (balance %d)", amount, s.Balance)
		}
		return []any{Withdrawn{Amount: amount}}, nil
	}
	deposit := func(s Account, amount int64) ([]any, error) { return []any{Deposited{Amount: amount}}, nil }

	// The write side: a repository loads, decides and appends, with
	// optimistic concurrency (Update retries on a conflict).
	store, err := eventstore.New(client, eventstore.WithNamespace(ns))
	if err != nil {
		log.Fatal(err)
	}
	accounts, err := aggregate.NewRepository(store, account)
	if err != nil {
		log.Fatal(err)
	}
	a, err := accounts.Update(ctx, "alice", aggregate.Decide(deposit, 100))
	if err != nil {
		log.Fatal(err)
	}
	a, err = accounts.Update(ctx, "alice", aggregate.Decide(withdraw, 30))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: version %d, balance %d\n", a.Stream(), a.Version(), a.State().Balance)
	_, err = accounts.Update(ctx, "alice", aggregate.Decide(withdraw, 500))
	fmt.Println(err)

	// The read side: a projection (a consumer group on the category's
	// partition logs) keeps a read model, one hash per account. Writes are
	// guarded by the event's version, so a redelivered event changes nothing.
	balances, err := readmodel.New(client, ns, "balances")
	if err != nil {
		log.Fatal(err)
	}
	runner, err := projection.NewRunner(store, projection.Projection{
		Name:       "balances",
		Categories: []string{"account"},
		Handler: projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			var op readmodel.Op
			switch e := ev.Data.(type) {
			case Deposited:
				op = readmodel.IncrBy("balance", e.Amount)
			case Withdrawn:
				op = readmodel.IncrBy("balance", -e.Amount)
			default:
				return nil
			}
			_, err := balances.Patch(ctx, ev.Stream.ID, ev.Version, op)
			return err
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- runner.Run(runCtx) }()

	// Read your writes: the aggregate carries the result of its last append;
	// wait until the projection (by name: any process can) has applied it,
	// then read around the client-side cache, which Redis invalidates a
	// moment after the write.
	if err := projection.WaitFor(ctx, store, "balances", a.LastAppend()); err != nil {
		log.Fatal(err)
	}
	e, err := balances.GetFresh(ctx, "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read model: alice balance %s as of version %d\n", e.Fields["balance"], e.Version)

	stop() // the runner finishes in-flight events, acks them and releases its leases
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output:
	// account-alice: version 2, balance 70
	// withdraw 500: insufficient funds (balance 70)
	// read model: alice balance 70 as of version 2
}
