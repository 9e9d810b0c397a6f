package projection_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// BenchmarkProjectionVsGuideLoop runs the same b.N events (1000 entities,
// 16 partitions, appended before the clock starts) through
//
//   - the Runner into version-guarded read models, with one Patch script
//     per event (a Handler) and batched (a BatchHandler: one readmodel.Batch
//     per worker's share of a read), and
//   - the loop the guide shows: one consumer, XREADGROUP COUNT 10 over the
//     partition logs, then one SET and one XACK per message,
//
// in one run, and reports both rates and their ratio:
//
//	go test -run '^$' -bench ProjectionVsGuideLoop -benchtime 100000x ./projection/
func BenchmarkProjectionVsGuideLoop(b *testing.B) {
	tg := redistest.Standalone(b)
	ctx := context.Background()
	const entities, parts = 1000, 16
	// The projection's client has a short flush delay, so rueidis puts more
	// concurrent commands in one write; the guide's sequential loop keeps
	// the default client (a flush delay only slows it down).
	c := tg.NewClient(b, func(o *rueidis.ClientOption) { o.MaxFlushDelay = 20 * time.Microsecond })
	s := newStore(b, c, tg.Namespace, parts)
	per := max(b.N/entities, 1)
	n := per * entities
	last, err := appendEvents(ctx, s, "b", entities, 0, per, 64)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()

	// The projection, per event and batched.
	project := func(name string, h projection.Handler) float64 {
		stats(b, c, "")
		start := time.Now()
		r, err := projection.NewRunner(s, projection.Projection{Name: name, Categories: []string{category}, Handler: h}, quiet())
		if err != nil {
			b.Fatal(err)
		}
		stop := runRunner(b, r)
		waitAll(b, ctx, r, last)
		rate := float64(n) / time.Since(start).Seconds()
		stats(b, c, name)
		stop()
		return rate
	}
	m := newModel(b, c, tg.Namespace, "bench")
	projRate := project("bench", counting(m))
	mb := newModel(b, c, tg.Namespace, "benchbatch")
	batchRate := project("benchbatch", countingBatch(mb))

	// The guide's loop.
	gc := tg.Client
	logs := make([]string, parts)
	ids := make([]string, parts)
	for p := range parts {
		logs[p] = s.Keys().Log(category, p)
		ids[p] = ">"
		if err := gc.Do(ctx, gc.B().XgroupCreate().Key(logs[p]).Group("guide").Id("0").Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	done := 0
	for done < n {
		streams, err := gc.Do(ctx, gc.B().Xreadgroup().Group("guide", "c1").Count(10).Block(1000).Streams().Key(logs...).Id(ids...).Build()).AsXReadSlices()
		if err != nil {
			b.Fatal(err)
		}
		for key, entries := range streams {
			for _, e := range entries {
				ev, err := s.Decode(ctx, key, e)
				if err != nil {
					b.Fatal(err)
				}
				d := ev.Data.(Deposited)
				if err := gc.Do(ctx, gc.B().Set().Key(tg.Namespace+":guide:"+ev.Stream.ID).Value(strconv.FormatInt(d.Amount, 10)).Build()).Error(); err != nil {
					b.Fatal(err)
				}
				if err := gc.Do(ctx, gc.B().Xack().Key(key).Group("guide").Id(e.ID).Build()).Error(); err != nil {
					b.Fatal(err)
				}
				done++
			}
		}
	}
	guideRate := float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(projRate, "projection-events/s")
	b.ReportMetric(guideRate, "guide-events/s")
	b.ReportMetric(projRate/guideRate, "ratio")
	b.ReportMetric(batchRate, "batch-events/s")
	b.ReportMetric(batchRate/guideRate, "batch-ratio")
	b.ReportMetric(0, "ns/op")
}

// stats prints INFO commandstats (usec per command) since the last call when
// STREAMFOLD_BENCH_STATS is set: where the server's time goes.
func stats(b *testing.B, c rueidis.Client, phase string) {
	if os.Getenv("STREAMFOLD_BENCH_STATS") == "" {
		return
	}
	ctx := context.Background()
	if phase != "" {
		s, _ := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
		fmt.Fprintf(os.Stderr, "== %s\n%s\n", phase, s)
	}
	_ = c.Do(ctx, c.B().ConfigResetstat().Build()).Error()
}
