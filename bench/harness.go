package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
)

// flushedClient opens a client to srv and empties the database, so a
// scenario starts from nothing. The caller closes the client.
func flushedClient(ctx context.Context, srv *server, opts ...func(*rueidis.ClientOption)) (rueidis.Client, error) {
	c, err := srv.client(opts...)
	if err != nil {
		return nil, err
	}
	if err := flush(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// depositStore is an event store in namespace ns with the Deposited event
// registered, opts applied after those.
func depositStore(c rueidis.Client, ns string, opts ...eventstore.Option) (*eventstore.Store, error) {
	reg := eventstore.NewRegistry()
	if err := eventstore.Register[Deposited](reg, "deposited"); err != nil {
		return nil, err
	}
	return eventstore.New(c, append([]eventstore.Option{eventstore.WithNamespace(ns), eventstore.WithRegistry(reg)}, opts...)...)
}

// fanOut runs op for i = 0..total-1 on workers goroutines (w is the
// goroutine's number) and returns the first error; a goroutine whose op
// fails stops, the others go on.
func fanOut(workers, total int, op func(w, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				if err := op(w, i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// parallel runs f(0..n-1) on 64 goroutines.
func parallel(n int, f func(i int) error) error {
	return fanOut(64, n, func(_, i int) error { return f(i) })
}

// depositAmount is the amount of a Deposited event; any other event is a
// permanent failure.
func depositAmount(ev eventstore.RecordedEvent) (int64, error) {
	d, ok := ev.Data.(Deposited)
	if !ok {
		return 0, projection.Permanent(fmt.Errorf("unexpected %T", ev.Data))
	}
	return d.Amount, nil
}

// startRunner runs r until the returned stop is called; stop waits for Run
// to return.
func startRunner(ctx context.Context, r *projection.Runner) (stop func()) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	return func() { cancel(); <-done }
}
