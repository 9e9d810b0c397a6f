package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/retention"
)

// runS4 measures Redis memory per aggregate (3 events of ~100 bytes): plain
// per-entity streams as an application would write them (naive-streams),
// ours right after the appends (entity streams plus partition logs), and
// ours after retention (logs trimmed, cold streams compacted); and what
// stream-node-max-bytes does to the un-compacted figure.
func runS4(ctx context.Context, srv *server, sc scale, logger *slog.Logger) ([]Result, error) {
	c, err := srv.client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	n := sc.n(100_000, 10_000)
	naive, err := perAggregate(ctx, c, n, func() error { return s4Naive(ctx, c, n) })
	if err != nil {
		return nil, fmt.Errorf("naive-streams: %w", err)
	}
	ours, err := s4Ours(ctx, c, n, logger)
	if err != nil {
		return nil, err
	}
	afterAppend, afterRetention := ours.afterAppend, ours.afterRetention
	fmt.Printf("   naive %.0f B, ours after appends %.0f B, after retention %.0f B per aggregate (compacted %d streams in %s)\n",
		naive, afterAppend, afterRetention, ours.compacted, ours.took.Round(time.Millisecond))
	small, err := s4SmallNodes(ctx, c, n)
	if err != nil {
		return nil, err
	}
	fmt.Printf("   with stream-node-max-bytes 512 (no compaction): %.0f B per aggregate\n", small)
	if err := flush(ctx, c); err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d aggregates × 3 events (~100-byte payload); used_memory delta per aggregate", n)
	return []Result{
		{Scenario: "S4-memory", Metric: "bytes per aggregate after retention (logs trimmed, cold streams compacted)", Unit: "bytes", Ours: f64(afterRetention), Baseline: "naive-streams", BaselineValue: f64(naive), Goal: "≤ 800", GoalOnOurs: true, Notes: note},
		{Scenario: "S4-memory", Metric: "bytes per aggregate right after appending (entity streams + partition logs)", Unit: "bytes", Ours: f64(afterAppend), Baseline: "naive-streams", BaselineValue: f64(naive), Notes: note},
		{Scenario: "S4-memory", Metric: "bytes per aggregate with stream-node-max-bytes 512, no compaction", Unit: "bytes", Ours: f64(small), Baseline: "naive-streams", BaselineValue: f64(naive), Notes: note + "; entity streams + partition logs"},
	}, nil
}

// s4Naive writes n plain per-entity streams of three ~100-byte entries, as
// an application would without us.
func s4Naive(ctx context.Context, c rueidis.Client, n int) error {
	payload := strings.Repeat("p", 100)
	return parallel(n, func(i int) error {
		key := fmt.Sprintf("s4naive:acc-%07d", i)
		cmds := make(rueidis.Commands, 3)
		for j := range cmds {
			cmds[j] = c.B().Xadd().Key(key).Id("*").FieldValue().FieldValue("data", payload).Build()
		}
		for _, r := range c.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		return nil
	})
}

// s4AppendAll gives n aggregates of s three events each.
func s4AppendAll(ctx context.Context, s *eventstore.Store, n int) func() error {
	memo := strings.Repeat("m", 70) // ~100-byte payload with Account and Amount
	return func() error {
		return parallel(n, func(i int) error {
			id := eventstore.Stream("account", fmt.Sprintf("acc-%07d", i))
			_, err := s.Append(ctx, id, eventstore.NoStream,
				eventstore.NewEvent(Deposited{Account: id.ID, Amount: 1, Memo: memo}),
				eventstore.NewEvent(Deposited{Account: id.ID, Amount: 2, Memo: memo}),
				eventstore.NewEvent(Deposited{Account: id.ID, Amount: 3, Memo: memo}))
			return err
		})
	}
}

// s4Figures are our bytes per aggregate right after the appends and after
// retention, with how many streams retention compacted and how long it took.
type s4Figures struct {
	afterAppend, afterRetention float64
	compacted                   int
	took                        time.Duration
}

// s4Ours measures our bytes per aggregate right after the appends and after
// retention.
func s4Ours(ctx context.Context, c rueidis.Client, n int, logger *slog.Logger) (s4Figures, error) {
	store, err := depositStore(c, "s4")
	if err != nil {
		return s4Figures{}, err
	}
	afterAppend, err := perAggregate(ctx, c, n, s4AppendAll(ctx, store, n))
	if err != nil {
		return s4Figures{}, err
	}
	// Retention: no consumer group needs the logs any more (a projection
	// that had applied everything would have acknowledged it all).
	r, err := retention.New(store, []retention.Policy{{Category: "account", LogMaxAge: time.Nanosecond, CompactIdle: time.Nanosecond, CompactMaxEntries: 100}},
		retention.WithTrimLimit(int64(4*n)), retention.WithLogger(logger))
	if err != nil {
		return s4Figures{}, err
	}
	base, err := usedMemory(ctx, c)
	if err != nil {
		return s4Figures{}, err
	}
	start := time.Now()
	rep, err := r.Apply(ctx, false)
	if err != nil {
		return s4Figures{}, err
	}
	took := time.Since(start)
	after, err := usedMemory(ctx, c)
	if err != nil {
		return s4Figures{}, err
	}
	afterRetention := afterAppend - float64(base-after)/float64(n)
	return s4Figures{afterAppend, afterRetention, len(rep.Compacted), took}, nil
}

// s4SmallNodes returns bytes per aggregate of the same appends with
// stream-node-max-bytes 512 and no compaction, then sets it back to 4096.
func s4SmallNodes(ctx context.Context, c rueidis.Client, n int) (float64, error) {
	if err := c.Do(ctx, c.B().ConfigSet().ParameterValue().ParameterValue("stream-node-max-bytes", "512").Build()).Error(); err != nil {
		return 0, err
	}
	store2, err := depositStore(c, "s4b")
	if err != nil {
		return 0, err
	}
	small, err := perAggregate(ctx, c, n, s4AppendAll(ctx, store2, n))
	if err := c.Do(ctx, c.B().ConfigSet().ParameterValue().ParameterValue("stream-node-max-bytes", "4096").Build()).Error(); err != nil {
		return 0, err
	}
	return small, err
}

// perAggregate runs load and returns the growth of used_memory per aggregate.
func perAggregate(ctx context.Context, c rueidis.Client, n int, load func() error) (float64, error) {
	before, err := usedMemory(ctx, c)
	if err != nil {
		return 0, err
	}
	if err := load(); err != nil {
		return 0, err
	}
	after, err := usedMemory(ctx, c)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}

func usedMemory(ctx context.Context, c rueidis.Client) (int64, error) {
	info, err := c.Do(ctx, c.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		return 0, err
	}
	var v int64
	_, err = fmt.Sscan(infoField(info, "used_memory"), &v)
	return v, err
}
