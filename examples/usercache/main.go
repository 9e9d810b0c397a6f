// Command usercache is the caching guide's hands-on, made real: user profiles
// served cache-aside from a Streamfold read model, refreshed by a stream
// consumer on every update, with a TTL, event-driven invalidation on deletion
// and versioned keys for a schema change. It prints hit and miss figures.
//
//	go run ./examples/usercache                     # an ephemeral Redis (container or local redis-server)
//	REDIS_URL=redis://localhost:6379 go run ./examples/usercache
//
// Every run works in a fresh namespace ("users-" and a random suffix).
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
	"github.com/streamfold/streamfold/redistest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := connectAndRun(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "usercache:", err)
		os.Exit(1)
	}
}

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
		fmt.Printf("Redis: REDIS_URL at %s\n", strings.Join(opt.InitAddress, ","))
	} else {
		srv, err := redistest.Start(ctx)
		if err != nil {
			return err
		}
		defer func() {
			if err := srv.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "usercache: stopping Redis:", err)
			}
		}()
		if client, err = srv.Client(); err != nil {
			return err
		}
		fmt.Printf("Redis: ephemeral %s\n", srv)
	}
	defer client.Close()
	return run(ctx, os.Stdout, client, "users-"+strings.ToLower(rand.Text()[:8]))
}
