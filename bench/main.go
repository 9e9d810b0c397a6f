// Command bench measures Streamfold against raw Redis and its peers, each
// figure beside its baseline measured in the same run, and writes
// bench-results.json plus a table.
//
//	go run . [-quick] [-out ../bench-results.json] [-only S1-append]
//	go run . -markdown ../bench-results.json   (the README's table of a run)
//
// It uses REDIS_URL when set; otherwise it starts its own redis-server with
// a fixed configuration (printed). It lives in its own module so that the
// peers it compares against (watermill, go-redis) never enter the library's
// dependency graph.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	quick := flag.Bool("quick", false, "run every scenario small (about 2 minutes)")
	out := flag.String("out", "bench-results.json", "where to write the JSON results")
	only := flag.String("only", "", "comma-separated scenario names to run (default all)")
	markdown := flag.String("markdown", "", "print the README's table of a results file (written by -out) and exit")
	flag.Parse()
	if *markdown != "" {
		if err := printMarkdownFile(os.Stdout, *markdown); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *quick, *out, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, quick bool, out, only string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := startRedis(ctx)
	if err != nil {
		return err
	}
	defer srv.Close()
	env, err := describe(ctx, srv)
	if err != nil {
		return err
	}
	fmt.Printf("go %s · redis %s (%s) · %s · %d CPUs · quick=%v\n", env.Go, env.Redis, srv.desc, env.CPU, env.CPUs, quick)
	if srv.config != "" {
		fmt.Printf("redis-server configuration: %s\n", srv.config)
	}
	sc := scale{quick: quick}
	var results []Result
	for _, s := range scenarios() {
		if only != "" && !contains(strings.Split(only, ","), s.name) {
			continue
		}
		start := time.Now()
		fmt.Printf("== %s\n", s.name)
		rs, err := s.run(ctx, srv, sc, logger)
		if err != nil {
			// A failing scenario is reported, never hidden or invented.
			rs = append(rs, Result{Scenario: s.name, Metric: "error", Reason: err.Error()})
		}
		for i := range rs {
			rs[i].finish()
		}
		results = append(results, rs...)
		fmt.Printf("   (%s)\n", time.Since(start).Round(time.Second))
	}
	if err := writeResults(out, env, results); err != nil {
		return err
	}
	printTable(os.Stdout, results)
	fmt.Printf("wrote %s\n", out)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

// scale sizes a scenario: full or quick.
type scale struct{ quick bool }

func (s scale) n(full, quick int) int {
	if s.quick {
		return quick
	}
	return full
}

type scenario struct {
	name string
	run  func(ctx context.Context, srv *server, sc scale, logger *slog.Logger) ([]Result, error)
}

func scenarios() []scenario {
	return []scenario{
		{"S1-append", runS1},
		{"S2-load", runS2},
		{"S3-project", runS3},
		{"S3b-many-to-one", runS3b},
		{"S4-memory", runS4},
		{"S5-latency", runS5},
	}
}
