// Command bank is Streamfold's demo: a few bank accounts kept as event-sourced
// aggregates in Redis, with projections, read models, a transfer process
// manager, snapshots and retention, narrated on stdout. The story itself is
// package bankdemo.
//
//	go run ./examples/bank                          # an ephemeral Redis (container or local redis-server)
//	REDIS_URL=redis://localhost:6379 go run ./examples/bank
//
// Every run works in a fresh namespace ("bank-" and a random suffix), so runs
// against a shared Redis do not collide; the keys are left there for inspection
// (with the streamfold CLI, say).
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/examples/bank/bankdemo"
	"github.com/streamfold/streamfold/redistest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := connectAndRun(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// connectAndRun connects to REDIS_URL, or starts an ephemeral Redis and stops it at
// the end (also on an error or a signal, which cancels ctx), and runs the demo.
func connectAndRun(ctx context.Context) error {
	var client rueidis.Client
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := rueidis.ParseURL(url)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		if client, err = rueidis.NewClient(opt); err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		// The address only: the URL may carry a password.
		fmt.Printf("Redis: REDIS_URL at %s\n", strings.Join(opt.InitAddress, ","))
	} else {
		srv, err := redistest.Start(ctx)
		if err != nil {
			return err
		}
		defer func() {
			if err := srv.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "bank: stopping Redis:", err)
			}
		}()
		if client, err = srv.Client(); err != nil {
			return err
		}
		fmt.Printf("Redis: ephemeral %s\n", srv)
	}
	defer client.Close()
	return bankdemo.Run(ctx, os.Stdout, client, "bank-"+strings.ToLower(rand.Text()[:8]))
}
