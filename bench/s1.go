package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

const (
	s1Workers  = 64
	s1Entities = 10_000
)

// Deposited is the benchmark's event: ~100 bytes encoded.
type Deposited struct {
	Account string
	Amount  int64
	Memo    string
}

var s1Memo = strings.Repeat("m", 70)

// rate runs total operations on s1Workers goroutines and returns ops/s and
// the share of one core the Redis server used meanwhile.
func rate(ctx context.Context, c rueidis.Client, total int, op func(worker, i int) error) (float64, float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	cpu0, start := serverCPU(ctx, c), time.Now()
	for w := range s1Workers {
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
	el := time.Since(start).Seconds()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	return float64(total) / el, (serverCPU(ctx, c) - cpu0) / el, nil
}

// appender appends single events with an exact expected version; worker w
// owns entities w, w+64, ... so it always knows their versions.
type appender struct {
	s        *eventstore.Store
	ids      []eventstore.StreamID
	versions []uint64
	cursor   []int
}

func newAppender(c rueidis.Client, ns string, opts ...eventstore.Option) (*appender, error) {
	reg := eventstore.NewRegistry()
	if err := eventstore.Register[Deposited](reg, "deposited"); err != nil {
		return nil, err
	}
	s, err := eventstore.New(c, append([]eventstore.Option{eventstore.WithNamespace(ns), eventstore.WithRegistry(reg)}, opts...)...)
	if err != nil {
		return nil, err
	}
	a := &appender{s: s, ids: make([]eventstore.StreamID, s1Entities), versions: make([]uint64, s1Entities), cursor: make([]int, s1Workers)}
	for i := range a.ids {
		a.ids[i] = eventstore.Stream("account", fmt.Sprintf("acc-%d", i))
	}
	return a, nil
}

func (a *appender) op(ctx context.Context) func(w, i int) error {
	per := s1Entities / s1Workers
	return func(w, _ int) error {
		e := w + s1Workers*(a.cursor[w]%per)
		a.cursor[w]++
		_, err := a.s.Append(ctx, a.ids[e], eventstore.Exact(a.versions[e]),
			eventstore.NewEvent(Deposited{Account: a.ids[e].ID, Amount: 42, Memo: s1Memo}))
		a.versions[e]++
		return err
	}
}

func runS1(ctx context.Context, srv *server, sc scale, logger *slog.Logger) ([]Result, error) {
	c, err := srv.client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := flush(ctx, c); err != nil {
		return nil, err
	}
	plain, err := newAppender(c, "s1plain", eventstore.WithGroupCommit(1, 1))
	if err != nil {
		return nil, err
	}
	grouped, err := newAppender(c, "s1grouped")
	if err != nil {
		return nil, err
	}
	payload, err := eventstore.Msgpack{}.Marshal(Deposited{Account: "acc-0000", Amount: 42, Memo: s1Memo})
	if err != nil {
		return nil, err
	}
	raw := rueidis.BinaryString(payload)
	rawKeys := make([]string, s1Entities)
	for i := range rawKeys {
		rawKeys[i] = fmt.Sprintf("s1raw:acc-%d", i)
	}
	rawOp := func(_, i int) error {
		return c.Do(ctx, c.B().Xadd().Key(rawKeys[i%s1Entities]).Id("*").FieldValue().FieldValue("data", raw).Build()).Error()
	}

	gr := redis.NewClient(&redis.Options{Addr: srv.addr})
	defer gr.Close()
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: gr}, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	wmOp := func(_, i int) error {
		return pub.Publish(fmt.Sprintf("s1wm:acc-%d", i%s1Entities), message.NewMessage(watermill.NewUUID(), payload))
	}

	sides := []struct {
		name string
		op   func(w, i int) error
	}{{"raw-xadd", rawOp}, {"plain", plain.op(ctx)}, {"grouped", grouped.op(ctx)}, {"watermill-publish", wmOp}}
	rounds, perRound := 3, sc.n(150_000, 20_000)
	rates := map[string]float64{}
	cpus := map[string]float64{}
	for r := range rounds {
		for _, s := range sides {
			v, cpu, err := rate(ctx, c, perRound, s.op)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			rates[s.name] += v / float64(rounds)
			cpus[s.name] += cpu / float64(rounds)
			fmt.Printf("   round %d %-18s %8.0f events/s  redis %.0f%% of a core\n", r+1, s.name, v, 100*cpu)
		}
	}
	note := func(a, b string) string {
		return fmt.Sprintf("64 goroutines, 10k entities, ~100-byte payload, %d rounds × %d events interleaved; Redis used %.0f%% of a core for %s, %.0f%% for %s", rounds, perRound, 100*cpus[a], a, 100*cpus[b], b)
	}
	return []Result{
		{Scenario: "S1-append", Metric: "appends (plain)", Unit: "events/s", Ours: f64(rates["plain"]), Baseline: "raw-xadd", BaselineValue: f64(rates["raw-xadd"]), Goal: "≥ 0.6", Notes: note("plain", "raw-xadd")},
		{Scenario: "S1-append", Metric: "appends (group commit)", Unit: "events/s", Ours: f64(rates["grouped"]), Baseline: "raw-xadd", BaselineValue: f64(rates["raw-xadd"]), Goal: "≥ 1.0", Notes: note("grouped", "raw-xadd")},
		{Scenario: "S1-append", Metric: "appends (group commit)", Unit: "events/s", Ours: f64(rates["grouped"]), Baseline: "watermill-publish", BaselineValue: f64(rates["watermill-publish"]), Goal: "≥ 2", Notes: note("grouped", "watermill-publish")},
	}, nil
}
