package projection_test

import (
	"context"
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
//   - the Runner into version-guarded read models (one Patch script per
//     event), and
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

	// The projection.
	m := newModel(b, c, tg.Namespace, "bench")
	start := time.Now()
	r, err := projection.NewRunner(s, projection.Projection{Name: "bench", Categories: []string{category}, Handler: counting(m)}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	stop := runRunner(b, r)
	waitAll(b, ctx, r, last)
	projRate := float64(n) / time.Since(start).Seconds()
	stop()

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
	start = time.Now()
	done := 0
	for done < n {
		streams, err := gc.Do(ctx, gc.B().Xreadgroup().Group("guide", "c1").Count(10).Block(1000).Streams().Key(logs...).Id(ids...).Build()).AsXReadSlices()
		if err != nil {
			b.Fatal(err)
		}
		for key, entries := range streams {
			for _, e := range entries {
				ev, err := s.DecodeLogEntry(key, category, e)
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
	b.ReportMetric(0, "ns/op")
}
