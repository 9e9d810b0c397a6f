package projection_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// An API process that runs no projection gets read-your-writes by waiting
// for the projection by name, on its own client, then reading fresh.
func ExampleWaitFor() {
	ctx := context.Background()
	srv, err := redistest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Deposited](reg, "deposited")

	// The projector: a process running the "totals" projection.
	worker, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}
	defer worker.Close()
	ws, err := eventstore.New(worker, eventstore.WithNamespace("waitfor"), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	totals, err := readmodel.New(worker, "waitfor", "totals")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ws.CreateCategory(ctx, "account"); err != nil {
		log.Fatal(err)
	}
	runner, err := projection.NewRunner(ws, projection.Projection{Name: "totals", Categories: []string{"account"},
		Handler: projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			d := ev.Data.(Deposited)
			_, err := totals.Patch(ctx, ev.Stream.ID, ev.Version, readmodel.IncrBy("total", d.Amount))
			return err
		})}, projection.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()

	// The API process: its own client, store and model; no Runner.
	api, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}
	defer api.Close()
	store, err := eventstore.New(api, eventstore.WithNamespace("waitfor"), eventstore.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	view, err := readmodel.New(api, "waitfor", "totals")
	if err != nil {
		log.Fatal(err)
	}
	res, err := store.Append(ctx, eventstore.Stream("account", "ann"), eventstore.Any, eventstore.NewEvent(Deposited{Amount: 42}))
	if err != nil {
		log.Fatal(err)
	}
	if err := projection.WaitFor(ctx, store, "totals", res); err != nil {
		log.Fatal(err)
	}
	e, err := view.GetFresh(ctx, "ann") // not Get: its cached copy may not be invalidated yet
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ann: total %s at version %d\n", e.Fields["total"], e.Version)

	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output: ann: total 42 at version 1
}
