package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// app is what a command works with; the Redis connection is opened on first
// use, so usage errors never need Redis.
type app struct {
	ctx            context.Context
	g              *globals
	stdout, stderr io.Writer
	client         rueidis.Client
	store          *eventstore.Store
}

func (a *app) close() {
	if a.client != nil {
		a.client.Close()
	}
}

// connect opens the client and the store of the namespace.
func (a *app) connect() (*eventstore.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	url, from := a.g.redis, "--redis"
	if url == "" {
		url, from = os.Getenv("REDIS_URL"), "REDIS_URL"
	}
	if url == "" {
		url, from = "redis://127.0.0.1:6379", "the default"
	}
	opt, err := parseRedisURL(url)
	if err != nil {
		return nil, fmt.Errorf("bad Redis URL from %s: %v (want redis://[user:password@]host:port[/db], comma-separated seeds for a cluster)", from, err)
	}
	opt.DisableCache = true // a one-shot tool gains nothing from client-side caching
	opt.Dialer.Timeout = 5 * time.Second
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Redis at %s (from %s): %v; set --redis or REDIS_URL", strings.Join(opt.InitAddress, ","), from, err)
	}
	a.client = client
	// The CLI has no event types: every payload comes back undecoded (Raw)
	// and is decoded generically (see read.go).
	store, err := eventstore.New(client, eventstore.WithNamespace(a.g.namespace), eventstore.WithLogger(a.logger()))
	if err != nil {
		return nil, err
	}
	a.store = store
	return store, nil
}

// logger is the libraries' logger: warnings and errors, on stderr.
func (a *app) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// parseRedisURL accepts one URL or comma-separated seeds of one cluster.
func parseRedisURL(s string) (rueidis.ClientOption, error) {
	parts := strings.Split(s, ",")
	var opt rueidis.ClientOption
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "redis://" + p
		}
		o, err := rueidis.ParseURL(p)
		if err != nil {
			return opt, err
		}
		if i == 0 {
			opt = o
			continue
		}
		opt.InitAddress = append(opt.InitAddress, o.InitAddress...)
	}
	return opt, nil
}

// categories returns the namespace's categories, sorted, or the subset
// asked for (an unknown one is an error that lists the known ones: the store
// would otherwise create it).
func (a *app) categories(want []string) ([]string, error) {
	store, err := a.connect()
	if err != nil {
		return nil, err
	}
	all, err := store.Categories(a.ctx)
	if err != nil {
		return nil, fmt.Errorf("list categories: %w", err)
	}
	sort.Strings(all)
	if len(want) == 0 {
		return all, nil
	}
	known := map[string]bool{}
	for _, c := range all {
		known[c] = true
	}
	for _, c := range want {
		if !known[c] {
			return nil, unknownCategory(a.g.namespace, c, all)
		}
	}
	return want, nil
}

func unknownCategory(ns, c string, all []string) error {
	if len(all) == 0 {
		return fmt.Errorf("unknown category %q: namespace %q has no categories (wrong --namespace?)", c, ns)
	}
	return fmt.Errorf("unknown category %q in namespace %q; known: %s", c, ns, strings.Join(all, ", "))
}
