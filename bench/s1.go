package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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
	cpu0, start := serverCPU(ctx, c), time.Now()
	err := fanOut(s1Workers, total, op)
	el := time.Since(start).Seconds()
	if err != nil {
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
	s, err := depositStore(c, ns, opts...)
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

// s1Side is one way of appending that S1 measures.
type s1Side struct {
	name string
	op   func(w, i int) error
}

func runS1(ctx context.Context, srv *server, sc scale, logger *slog.Logger) ([]Result, error) {
	c, err := flushedClient(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	sides, closeSides, err := s1Sides(ctx, c, srv)
	if err != nil {
		return nil, err
	}
	defer closeSides()
	rounds, perRound := 3, sc.n(150_000, 20_000)
	rates, cpus, err := s1Measure(ctx, c, sides, rounds, perRound)
	if err != nil {
		return nil, err
	}
	note := func(a, b string) string {
		return fmt.Sprintf("64 goroutines, 10k entities, ~100-byte payload, %d rounds × %d events interleaved; Redis used %.0f%% of a core for %s, %.0f%% for %s", rounds, perRound, 100*cpus[a], a, 100*cpus[b], b)
	}
	return []Result{
		{Scenario: "S1-append", Metric: "appends (plain)", Unit: "events/s", Ours: f64(rates["plain"]), Baseline: "naive-script", BaselineValue: f64(rates["naive-script"]), Goal: "≥ 1.0", Notes: note("plain", "naive-script")},
		{Scenario: "S1-append", Metric: "appends (plain)", Unit: "events/s", Ours: f64(rates["plain"]), Baseline: "raw-xadd", BaselineValue: f64(rates["raw-xadd"]), Notes: note("plain", "raw-xadd")},
		{Scenario: "S1-append", Metric: "appends (group commit)", Unit: "events/s", Ours: f64(rates["grouped"]), Baseline: "raw-xadd", BaselineValue: f64(rates["raw-xadd"]), Goal: "≥ 0.6", Notes: note("grouped", "raw-xadd")},
		{Scenario: "S1-append", Metric: "appends (group commit)", Unit: "events/s", Ours: f64(rates["grouped"]), Baseline: "watermill-publish", BaselineValue: f64(rates["watermill-publish"]), Goal: "≥ 1.5", Notes: note("grouped", "watermill-publish")},
	}, nil
}

// s1Sides builds S1's five ways of appending, in the order they run in a
// round: raw XADD, the naive check-and-append script, ours without and with
// group commit, watermill's publisher. The caller calls closeSides when done with them.
func s1Sides(ctx context.Context, c rueidis.Client, srv *server) (sides []s1Side, closeSides func(), err error) {
	plain, err := newAppender(c, "s1plain", eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: 1, InFlight: 1}))
	if err != nil {
		return nil, nil, err
	}
	grouped, err := newAppender(c, "s1grouped")
	if err != nil {
		return nil, nil, err
	}
	payload, err := eventstore.Msgpack{}.Marshal(Deposited{Account: "acc-0000", Amount: 42, Memo: s1Memo})
	if err != nil {
		return nil, nil, err
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
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: gr}, watermill.NopLogger{})
	if err != nil {
		gr.Close()
		return nil, nil, err
	}
	wmOp := func(_, i int) error {
		return pub.Publish(fmt.Sprintf("s1wm:acc-%d", i%s1Entities), message.NewMessage(watermill.NewUUID(), payload))
	}
	naive := newNaiveAppender(c, payload)
	sides = []s1Side{{"raw-xadd", rawOp}, {"naive-script", naive.op(ctx)}, {"plain", plain.op(ctx)}, {"grouped", grouped.op(ctx)}, {"watermill-publish", wmOp}}
	return sides, func() { pub.Close(); gr.Close() }, nil
}

// s1Measure runs the sides in turn, rounds times perRound appends each, and
// returns each side's mean rate and the mean share of a core Redis used.
func s1Measure(ctx context.Context, c rueidis.Client, sides []s1Side, rounds, perRound int) (rates, cpus map[string]float64, err error) {
	rates, cpus = map[string]float64{}, map[string]float64{}
	for r := range rounds {
		for _, s := range sides {
			v, cpu, err := rate(ctx, c, perRound, s.op)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", s.name, err)
			}
			rates[s.name] += v / float64(rounds)
			cpus[s.name] += cpu / float64(rounds)
			fmt.Printf("   round %d %-18s %8.0f events/s  redis %.0f%% of a core\n", r+1, s.name, v, 100*cpu)
		}
	}
	return rates, cpus, nil
}
