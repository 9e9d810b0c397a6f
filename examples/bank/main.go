// Command bank is Streamfold's demo: a few bank accounts kept as event-sourced
// aggregates in Redis, with projections, read models, a transfer process
// manager, snapshots and retention, narrated on stdout. The story itself is
// package bankdemo.
//
//	go run ./examples/bank                          # an ephemeral Redis (container or local redis-server)
//	REDIS_URL=redis://localhost:6379 go run ./examples/bank
//	go run ./examples/bank -metrics :9464           # also serve OpenTelemetry metrics for Prometheus at /metrics
//
// Every run works in a fresh namespace ("bank-" and a random suffix), so runs
// against a shared Redis do not collide; the keys are left there for inspection
// (with the streamfold CLI, say).
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/streamfold/streamfold/examples/bank/bankdemo"
	"github.com/streamfold/streamfold/redistest"
)

func main() {
	metrics := flag.String("metrics", "", "serve OpenTelemetry metrics for Prometheus at this address (e.g. :9464, path /metrics)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var url string
	if *metrics != "" {
		u, stopMetrics, err := serveMetrics(*metrics)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bank: metrics:", err)
			os.Exit(1)
		}
		defer stopMetrics()
		url = u
		fmt.Printf("Metrics: OpenTelemetry → Prometheus exporter at %s\n", url)
	}
	err := connectAndRun(ctx)
	if err == nil && url != "" {
		series, serr := streamfoldSeries(ctx, url)
		if serr != nil {
			err = serr
		} else {
			fmt.Printf("\nMetrics: %d streamfold series at %s, for example:\n", len(series), url)
			for _, s := range series {
				if strings.HasPrefix(s, "streamfold_events_appended") || strings.HasPrefix(s, "streamfold_readmodel_cache_hits") || strings.HasPrefix(s, "streamfold_projection_events") {
					fmt.Println("   " + s)
				}
			}
		}
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// connectAndRun connects to REDIS_URL, or starts an ephemeral Redis and stops it at
// the end (also on an error or a signal, which cancels ctx), and runs the demo.
func connectAndRun(ctx context.Context) error {
	client, desc, closeRedis, err := redistest.Connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeRedis(); err != nil {
			fmt.Fprintln(os.Stderr, "bank: stopping Redis:", err)
		}
	}()
	fmt.Printf("Redis: %s\n", desc)
	return bankdemo.Run(ctx, os.Stdout, client, "bank-"+strings.ToLower(rand.Text()[:8]))
}
