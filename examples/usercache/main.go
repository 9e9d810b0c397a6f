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
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamfold/streamfold/examples/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := demo.ConnectAndRun(ctx, "usercache", "users-", run)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "usercache:", err)
		os.Exit(1)
	}
}
