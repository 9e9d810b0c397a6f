package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/snapshot"
)

// account is S2's aggregate: a balance folded from deposits.
type account struct {
	Balance int64
	Count   int
}

func applyAccount(s *account, e any) {
	if d, ok := e.(Deposited); ok {
		s.Balance += d.Amount
		s.Count++
	}
}

// runS2 loads, interleaved, a 1000-event aggregate with a snapshot every
// 100 events (so the latest at 1000), the worst case of that policy (1099
// events: 99 after the snapshot) and a 10-event aggregate (load-10), and
// reports the p50 ratios; then events decoded per second.
func runS2(ctx context.Context, srv *server, sc scale, logger *slog.Logger) ([]Result, error) {
	c, err := flushedClient(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	es, err := eventstore.New(c, eventstore.WithNamespace("s2"))
	if err != nil {
		return nil, err
	}
	repo, err := s2Fill(ctx, es, logger)
	if err != nil {
		return nil, err
	}
	big, worst, small, err := s2LoadP50(ctx, repo, sc.n(3000, 500))
	if err != nil {
		return nil, err
	}
	fmt.Printf("   load p50: 1000 events (snapshot at 1000) %.0f µs, 1099 events (99 after the snapshot) %.0f µs, 10 events %.0f µs\n", big, worst, small)
	raw99, raw10, err := s2RawP50(ctx, c, es, sc.n(3000, 500))
	if err != nil {
		return nil, err
	}
	fmt.Printf("   raw read and fold p50 (one XRANGE, Store.Decode, fold; no snapshot): 99 events %.0f µs, 10 events %.0f µs (%.2f×)\n", raw99, raw10, raw99/raw10)
	decodeRate, readRate, err := s2Decode(ctx, c, es, sc.n(300, 50))
	if err != nil {
		return nil, err
	}
	fmt.Printf("   decoded %.0f events/s; read from Redis and decoded %.0f events/s\n", decodeRate, readRate)
	return []Result{
		{Scenario: "S2-load", Metric: "load p50, 1000 events with a snapshot every 100", Unit: "µs", Ours: f64(big), Baseline: "load-10", BaselineValue: f64(small), Goal: "≤ 1.5"},
		{Scenario: "S2-load", Metric: "load p50, 1099 events (worst case of a snapshot every 100)", Unit: "µs", Ours: f64(worst), Baseline: "load-10", BaselineValue: f64(small), Notes: "99 events after the latest snapshot"},
		{Scenario: "S2-load", Metric: "load p50, 1099 events (worst case of a snapshot every 100)", Unit: "µs", Ours: f64(worst), Baseline: "raw-99", BaselineValue: f64(raw99), Notes: fmt.Sprintf("raw-99: the 99 events after the snapshot read with one XRANGE, decoded (Store.Decode) and folded, no snapshot read; the same for the 10-event stream: %.0f µs, so reading and folding 99 events costs %.2f× reading and folding 10 before any snapshot", raw10, raw99/raw10)},
		{Scenario: "S2-load", Metric: "events decoded", Unit: "events/s", Ours: f64(decodeRate), Goal: "≥ 1000000", Notes: "Store.Decode over 1000 entries read once"},
		{Scenario: "S2-load", Metric: "events read and decoded (Store.Read of a 1000-event stream)", Unit: "events/s", Ours: f64(readRate)},
	}, nil
}

// s2Fill builds S2's three accounts (big: 1000 events, worst: 1099, small:
// 10) through a repository that snapshots every 100 events, waits until
// every due snapshot is written, and returns the repository.
func s2Fill(ctx context.Context, es *eventstore.Store, logger *slog.Logger) (*aggregate.Repository[account], error) {
	typ := aggregate.NewType("account", applyAccount)
	if err := aggregate.RegisterEvent[Deposited](typ, "deposited"); err != nil {
		return nil, err
	}
	snaps, err := snapshot.New(es, snapshot.WithPolicy(snapshot.Every(100)), snapshot.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	repo, err := aggregate.NewRepository(es, typ, aggregate.WithSnapshots(snaps), aggregate.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	memo := s1Memo
	build := func(id string, n int) error {
		for i := range n {
			if _, err := repo.Update(ctx, id, func(a *aggregate.Aggregate[account]) error {
				a.Raise(Deposited{Account: id, Amount: int64(i), Memo: memo})
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
	for id, n := range map[string]int{"big": 1000, "worst": 1099, "small": 10} {
		if err := build(id, n); err != nil {
			return nil, err
		}
	}
	if err := snaps.Close(ctx); err != nil { // every due snapshot is written
		return nil, err
	}
	return repo, nil
}

// s2LoadP50 loads big, worst and small in turn, rounds times, and returns
// each one's p50 load time in µs.
func s2LoadP50(ctx context.Context, repo *aggregate.Repository[account], rounds int) (big, worst, small float64, err error) {
	ids := []string{"big", "worst", "small"}
	lat := make([][]time.Duration, len(ids))
	for range rounds {
		for i, id := range ids {
			t := time.Now()
			a, err := repo.Load(ctx, id)
			lat[i] = append(lat[i], time.Since(t))
			if err != nil {
				return 0, 0, 0, err
			}
			if a.Version() == 0 {
				return 0, 0, 0, fmt.Errorf("%s not found", id)
			}
		}
	}
	return p50µs(lat[0]), p50µs(lat[1]), p50µs(lat[2]), nil
}

// p50µs sorts d and returns its median in µs.
func p50µs(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Microseconds())
}

// s2RawP50 returns the p50 in µs of the least work of S2's worst-case load
// and of its 10-event load, interleaved rounds times: one XRANGE of the
// events (the 99 after the worst account's snapshot at 1000; all 10 of the
// small one), each decoded with Store.Decode and folded. No snapshot is read.
func s2RawP50(ctx context.Context, c rueidis.Client, es *eventstore.Store, rounds int) (raw99, raw10 float64, err error) {
	parts, err := es.Partitions(ctx, "account")
	if err != nil {
		return 0, 0, err
	}
	reads := []struct {
		key, from string
		n         int
	}{{"worst", "(1000-0", 99}, {"small", "-", 10}}
	lat := make([][]time.Duration, len(reads))
	for range rounds {
		for i, r := range reads {
			stream := eventstore.Stream("account", r.key)
			key := es.Keys().Stream(stream, eventstore.PartitionOf(stream.ID, parts))
			t := time.Now()
			entries, err := c.Do(ctx, c.B().Xrange().Key(key).Start(r.from).End("+").Build()).AsXRangeSlices()
			if err != nil {
				return 0, 0, err
			}
			var a account
			for _, e := range entries {
				ev, err := es.Decode(ctx, key, e)
				if err != nil {
					return 0, 0, err
				}
				applyAccount(&a, ev.Data)
			}
			lat[i] = append(lat[i], time.Since(t))
			if a.Count != r.n {
				return 0, 0, fmt.Errorf("raw read of %s folded %d events, want %d", r.key, a.Count, r.n)
			}
		}
	}
	return p50µs(lat[0]), p50µs(lat[1]), nil
}

// s2Decode measures decoding: the entries of the 1000-event stream, read
// once, decoded again and again (what the loader does per event), rounds
// times in 9 timed slices (the median slice's rate); and a full read of
// them, rounds/5 times. It returns events/s of each.
func s2Decode(ctx context.Context, c rueidis.Client, es *eventstore.Store, rounds int) (decodeRate, readRate float64, err error) {
	stream := eventstore.Stream("account", "big")
	parts, err := es.Partitions(ctx, stream.Category)
	if err != nil {
		return 0, 0, err
	}
	key := es.Keys().Stream(stream, eventstore.PartitionOf(stream.ID, parts))
	entries, err := c.Do(ctx, c.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRangeSlices()
	if err != nil {
		return 0, 0, err
	}
	// The median of 9 timed slices: a slice the shared machine stalled
	// (another process, a GC of an earlier scenario's heap) does not set it.
	const slices9 = 9
	rates := make([]float64, 0, slices9)
	for range slices9 {
		start := time.Now()
		for range max(1, rounds/slices9) {
			for _, e := range entries {
				if _, err := es.Decode(ctx, key, e); err != nil {
					return 0, 0, err
				}
			}
		}
		rates = append(rates, float64(max(1, rounds/slices9)*len(entries))/time.Since(start).Seconds())
	}
	slices.Sort(rates)
	decodeRate = rates[slices9/2]
	start := time.Now()
	n := 0
	for range rounds / 5 {
		for _, err := range es.Read(ctx, stream, 0) {
			if err != nil {
				return 0, 0, err
			}
			n++
		}
	}
	return decodeRate, float64(n) / time.Since(start).Seconds(), nil
}
