// Package demo is what the examples' narrated demos share: a run against
// REDIS_URL or an ephemeral Redis, a story told as titled steps, and
// projection runners kept in the background.
package demo

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// RunFunc tells a story on client, in namespace, narrating on w.
type RunFunc func(ctx context.Context, w io.Writer, client rueidis.Client, namespace string) error

// ConnectAndRun connects to REDIS_URL, or starts an ephemeral Redis and stops
// it at the end (also on an error or a signal, which cancels ctx), says which
// on stdout, and calls run in a fresh namespace: prefix and a random suffix,
// so that runs against a shared Redis do not collide. A failure to stop
// Redis is printed on stderr after name.
func ConnectAndRun(ctx context.Context, name, prefix string, run RunFunc) error {
	client, desc, closeRedis, err := redistest.Connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeRedis(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: stopping Redis: %v\n", name, err)
		}
	}()
	fmt.Printf("Redis: %s\n", desc)
	return run(ctx, os.Stdout, client, prefix+strings.ToLower(rand.Text()[:8]))
}

// Step is one titled step of a story.
type Step struct {
	Title string
	Run   func(context.Context) error
}

// Tell runs steps in order, each after its title on a line of its own
// preceded by an empty line, and stops at the first error, which it returns
// wrapped with the step's title.
func Tell(ctx context.Context, w io.Writer, steps []Step) error {
	for _, s := range steps {
		fmt.Fprintf(w, "\n%s\n", s.Title)
		if err := s.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Title, err)
		}
	}
	return nil
}

// Runner is a projection runner running in the background.
type Runner struct {
	*projection.Runner
	stop func()
	done chan error
}

// Start runs r in the background until Stop is called or ctx ends.
func Start(ctx context.Context, r *projection.Runner) *Runner {
	rctx, stop := context.WithCancel(ctx)
	rn := &Runner{Runner: r, stop: stop, done: make(chan error, 1)}
	go func() { rn.done <- r.Run(rctx) }()
	return rn
}

// Stop stops the runner and waits until it has released its leases; it
// returns what Run returned.
func (r *Runner) Stop() error {
	r.stop()
	return <-r.done
}

// StopAll stops the runners of m in the order of their keys, removes them
// from m, and returns their errors joined.
func StopAll[K cmp.Ordered](m map[K]*Runner) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(m)) {
		r := m[k]
		delete(m, k)
		errs = append(errs, r.Stop())
	}
	return errors.Join(errs...)
}
