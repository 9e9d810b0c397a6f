package projection_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strconv"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// Opened is an event of the example.
type Opened struct{ Owner string }

// A projection keeps a read model of accounts: the runner applies each
// event with version-guarded writes, batched (projection.Writes), and
// WaitFor gives read-your-writes after an append.
func ExampleRunner() {
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

	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Opened](reg, "opened")
	eventstore.MustRegister[Deposited](reg, "deposited")
	store, err := eventstore.New(client, eventstore.WithNamespace("example"), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	accounts, err := readmodel.New(client, "example", "accounts")
	if err != nil {
		log.Fatal(err)
	}

	// The handler turns each event into read-model writes; the runner sends
	// a batch of them in one round trip.
	handler := projection.Writes(func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error {
		switch e := ev.Data.(type) {
		case Opened:
			return b.Set(accounts, ev.Stream.ID, ev.Version, map[string]string{"owner": e.Owner, "balance": "0"})
		case Deposited:
			return b.Patch(accounts, ev.Stream.ID, ev.Version, readmodel.IncrBy("balance", e.Amount))
		}
		return nil
	})
	// A runner never creates the categories it follows (a typo would fail
	// later, silently): create it before starting one ahead of any append.
	if _, err := store.CreateCategory(ctx, "account"); err != nil {
		log.Fatal(err)
	}
	runner, err := projection.NewRunner(store, projection.Projection{
		Name: "accounts", Categories: []string{"account"}, Handler: handler,
	}, projection.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()

	res, err := store.Append(ctx, eventstore.Stream("account", "ann"), eventstore.NoStream,
		eventstore.NewEvent(Opened{Owner: "Ann"}), eventstore.NewEvent(Deposited{Amount: 30}), eventstore.NewEvent(Deposited{Amount: 12}))
	if err != nil {
		log.Fatal(err)
	}
	if err := runner.WaitFor(ctx, res); err != nil {
		log.Fatal(err)
	}
	e, err := accounts.GetFresh(ctx, "ann")
	if err != nil {
		log.Fatal(err)
	}
	balance, _ := strconv.Atoi(e.Fields["balance"])
	fmt.Printf("%s has %d at version %d\n", e.Fields["owner"], balance, e.Version)

	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output: Ann has 42 at version 3
}
