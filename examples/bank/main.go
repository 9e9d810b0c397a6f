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
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/streamfold/streamfold/examples/bank/bankdemo"
	"github.com/streamfold/streamfold/examples/internal/demo"
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
	err := demo.ConnectAndRun(ctx, "bank", "bank-", bankdemo.Run)
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
