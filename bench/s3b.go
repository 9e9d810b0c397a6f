package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
)

// s3bGroups is how many rollup entries S3b's many-to-one model has: each
// is fed by s3Entities/s3bGroups = 100 source streams.
const s3bGroups = 100

// runS3b appends N events once (S3's workload: s3Entities accounts), then
// projects them twice through the runner's batch path, each through its
// own consumer group: into the per-entity model (a version-guarded Patch
// per event, one entry per account: n and sum) and into a many-to-one
// Rollup (the same two counters per branch of 100 accounts, exactly once
// per source event). Same events, same ops; the ratio is the price of
// keeping one version per source stream in a second hash of the entry.
func runS3b(ctx context.Context, srv *server, sc scale, logger *slog.Logger) ([]Result, error) {
	n := sc.n(300_000, 50_000)
	c, s, err := s3Filled(ctx, srv, "s3b", n)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rates, cpus, r, err := s3bMeasure(ctx, c, s, n, logger)
	if err != nil {
		return nil, err
	}
	perSource, err := s3bCheck(ctx, c, r, n)
	if err != nil {
		return nil, err
	}
	return []Result{{
		Scenario: "S3b-many-to-one", Metric: "projected", Unit: "events/s", Ours: f64(rates["many-to-one"]),
		Baseline: "per-entity", BaselineValue: f64(rates["per-entity"]), Goal: "≥ 0.5",
		Notes: fmt.Sprintf("%d events of %d streams into %d Rollup entries (exactly once per source event) vs one version-guarded Model entry per stream, same IncrBy ops, runner batch path; Redis used %.0f%% of a core vs %.0f%%; guard: %.0f bytes per source stream",
			n, s3Entities, s3bGroups, 100*cpus["many-to-one"], 100*cpus["per-entity"], perSource),
	}}, nil
}

// s3bSide is one run of a side of S3b: its handler, and how many events its
// model has applied or skipped so far.
type s3bSide struct {
	h    projection.BatchHandler
	done func() int64
}

// s3bMeasure projects the events four times: each side twice, in the order
// A B B A, each run through its own group into its own model: the rate is
// the mean of a side's two runs, so neither gains from going second (warm
// caches, a quieter machine). It returns each side's rate and share of a
// core, and the last many-to-one run's Rollup.
func s3bMeasure(ctx context.Context, c rueidis.Client, s *eventstore.Store, n int, logger *slog.Logger) (rates, cpus map[string]float64, last *readmodel.Rollup, err error) {
	build := map[string]func(run int) (s3bSide, error){
		"per-entity": func(run int) (s3bSide, error) { return s3bPerEntity(c, run) },
		"many-to-one": func(run int) (s3bSide, error) {
			sd, r, err := s3bManyToOne(c, run)
			last = r
			return sd, err
		},
	}
	secs := map[string]float64{}
	cpus = map[string]float64{}
	for run, name := range []string{"per-entity", "many-to-one", "many-to-one", "per-entity"} {
		sd, err := build[name](run)
		if err != nil {
			return nil, nil, nil, err
		}
		cpu0, start := serverCPU(ctx, c), time.Now()
		if err := s3Project(ctx, s, name+"-"+strconv.Itoa(run), sd.h, logger); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		el := time.Since(start).Seconds()
		if got := sd.done(); got != int64(n) {
			return nil, nil, nil, fmt.Errorf("%s applied %d of %d events", name, got, n)
		}
		secs[name] += el
		cpus[name] += serverCPU(ctx, c) - cpu0
		fmt.Printf("   %-12s %8.0f events/s  redis %.0f%% of a core\n", name, float64(n)/el, 100*(serverCPU(ctx, c)-cpu0)/el)
	}
	rates = map[string]float64{}
	for name, el := range secs {
		rates[name] = float64(2*n) / el
		cpus[name] /= el
	}
	return rates, cpus, last, nil
}

// s3bPerEntity is run run of the per-entity side: a version-guarded Patch
// per event, one entry per account (n and sum).
func s3bPerEntity(c rueidis.Client, run int) (s3bSide, error) {
	m, err := readmodel.New(c, "s3b", "per-entity-"+strconv.Itoa(run))
	if err != nil {
		return s3bSide{}, err
	}
	return s3bSide{projection.Writes(func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error {
		a, err := depositAmount(ev)
		if err != nil {
			return err
		}
		return b.Patch(m, ev.Stream.ID, ev.Version, readmodel.IncrBy("n", 1), readmodel.IncrBy("sum", a))
	}), func() int64 { st := m.Stats(); return st.Applied + st.Skipped }}, nil
}

// s3bManyToOne is run run of the many-to-one side: the same two counters
// per branch of 100 accounts in a Rollup, which it returns too.
func s3bManyToOne(c rueidis.Client, run int) (s3bSide, *readmodel.Rollup, error) {
	r, err := readmodel.NewRollup(c, "s3b", "per-branch-"+strconv.Itoa(run))
	if err != nil {
		return s3bSide{}, nil, err
	}
	return s3bSide{projection.Writes(func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error {
		a, err := depositAmount(ev)
		if err != nil {
			return err
		}
		return b.Apply(r, s3bBranch(ev.Stream.ID), ev.Stream, ev.Version, readmodel.IncrBy("n", 1), readmodel.IncrBy("sum", a))
	}), func() int64 { st := r.Stats(); return st.Applied + st.Skipped }}, r, nil
}

// s3bBranch is the Rollup entry of account id: b0 to b99.
func s3bBranch(id string) string {
	k, _ := strconv.Atoi(strings.TrimPrefix(id, "acc-"))
	return "b" + strconv.Itoa(k%s3bGroups)
}

// s3bCheck checks the exactness of the many-to-one side (its counters add up
// to n), prints what its guard keeps (one version per source stream) and
// returns the guard's bytes per source stream.
func s3bCheck(ctx context.Context, c rueidis.Client, r *readmodel.Rollup, n int) (perSource float64, err error) {
	var total, sources, srcBytes int64
	for g := range s3bGroups {
		id := "b" + strconv.Itoa(g)
		e, err := r.GetFresh(ctx, id)
		if err != nil {
			return 0, err
		}
		total += int64(e.Events)
		k, _ := r.Sources(ctx, id)
		sources += k
		b, _ := c.Do(ctx, c.B().MemoryUsage().Key(r.Key(id)+":src").Build()).AsInt64()
		srcBytes += b
	}
	if total != int64(n) {
		return 0, fmt.Errorf("many-to-one entries hold %d events, want %d", total, n)
	}
	perSource = float64(srcBytes) / float64(max(sources, 1))
	fmt.Printf("   many-to-one guard: %d source versions in %d entries, %.0f bytes each (MEMORY USAGE)\n", sources, s3bGroups, perSource)
	return perSource, nil
}

// s3Project runs a runner (its own consumer group, name) with h until every
// partition's last entry is applied.
func s3Project(ctx context.Context, s *eventstore.Store, name string, h projection.Handler, logger *slog.Logger) error {
	r, err := projection.NewRunner(s, projection.Projection{Name: name, Categories: []string{s3Category}, Handler: h}, projection.WithLogger(logger))
	if err != nil {
		return err
	}
	defer startRunner(ctx, r)()
	for p := range s3Partitions {
		last, err := lastEntry(ctx, s.Client(), s.Keys().Log(s3Category, p))
		if err != nil {
			return err
		}
		if err := r.WaitFor(ctx, eventstore.AppendResult{Stream: eventstore.Stream(s3Category, "x"), Partition: p, Positions: []eventstore.Position{last}}); err != nil {
			return err
		}
	}
	return nil
}
