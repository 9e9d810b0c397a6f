package aggregate_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/snapshot"
)

// A bank account as plain Go (state, apply, command handlers), run through a
// repository with snapshots.
func Example() {
	type (
		Opened    struct{ Owner string }
		Deposited struct{ Amount int64 }
		Withdrawn struct{ Amount int64 }
		Account   struct {
			Owner   string
			Balance int64
		}
		Deposit  struct{ Amount int64 }
		Withdraw struct{ Amount int64 }
	)
	errInsufficient := errors.New("insufficient funds")
	deposit := func(s Account, c Deposit) ([]any, error) {
		if s.Owner == "" {
			return []any{Opened{Owner: "alice"}, Deposited{Amount: c.Amount}}, nil
		}
		return []any{Deposited{Amount: c.Amount}}, nil
	}
	withdraw := func(s Account, c Withdraw) ([]any, error) {
		if s.Balance < c.Amount {
			return nil, errInsufficient
		}
		return []any{Withdrawn{Amount: c.Amount}}, nil
	}
	account := aggregate.NewType("account", func(s *Account, ev any) {
		switch e := ev.(type) {
		case Opened:
			s.Owner = e.Owner
		case Deposited:
			s.Balance += e.Amount
		case Withdrawn:
			s.Balance -= e.Amount
		}
	})
	aggregate.MustRegisterEvent[Opened](account, "Opened")
	aggregate.MustRegisterEvent[Deposited](account, "Deposited")
	aggregate.MustRegisterEvent[Withdrawn](account, "Withdrawn")

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
	store, err := eventstore.New(client, eventstore.WithNamespace("example-"+strings.ToLower(rand.Text()[:8])))
	if err != nil {
		log.Fatal(err)
	}
	snaps, err := snapshot.New(store, snapshot.WithPolicy(snapshot.Every(2)))
	if err != nil {
		log.Fatal(err)
	}
	defer snaps.Close(ctx) // writes the queued snapshots
	accounts, err := aggregate.NewRepository(store, account, aggregate.WithSnapshots(snaps))
	if err != nil {
		log.Fatal(err)
	}

	a, err := accounts.Update(ctx, "alice", aggregate.Decide(deposit, Deposit{Amount: 100}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s v%d %+v\n", a.ID(), a.Version(), a.State())
	a, err = accounts.Update(ctx, "alice", aggregate.Decide(withdraw, Withdraw{Amount: 30}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s v%d %+v\n", a.ID(), a.Version(), a.State())
	_, err = accounts.Update(ctx, "alice", aggregate.Decide(withdraw, Withdraw{Amount: 500}))
	fmt.Println(err)
	// Output:
	// alice v2 {Owner:alice Balance:100}
	// alice v3 {Owner:alice Balance:70}
	// insufficient funds
}
