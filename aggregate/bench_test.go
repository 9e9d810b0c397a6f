package aggregate_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/snapshot"
)

// benchBuild gives id n events through Updates, with the repository's
// snapshot policy, and waits for the snapshots to be written.
func benchBuild(b *testing.B, r *aggregate.Repository[Account], id string, n int) {
	ctx := context.Background()
	if _, err := r.Update(ctx, id, aggregate.Decide(open, Open{Owner: id})); err != nil {
		b.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if _, err := r.Update(ctx, id, aggregate.Decide(deposit, Deposit{Amount: int64(i)})); err != nil {
			b.Fatal(err)
		}
	}
}

func p50(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkLoad loads, interleaved in one run, a 1000-event aggregate with a
// snapshot every 100 events (so the latest at 1000), a 1099-event one (the
// worst case of that policy: 99 events after the snapshot) and a 10-event
// one (no snapshot), and reports each p50 and the ratio 1000-event/10-event.
func BenchmarkLoad(b *testing.B) {
	tg := redistest.Standalone(b)
	es, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace))
	if err != nil {
		b.Fatal(err)
	}
	typ := accountType(b)
	snaps, err := snapshot.New(es, snapshot.WithPolicy(snapshot.Every(100)))
	if err != nil {
		b.Fatal(err)
	}
	r, err := aggregate.NewRepository(es, typ, aggregate.WithSnapshots(snaps))
	if err != nil {
		b.Fatal(err)
	}
	benchBuild(b, r, "big", 1000)
	benchBuild(b, r, "worst", 1099)
	benchBuild(b, r, "small", 10)
	if err := snaps.Close(context.Background()); err != nil { // flush: every snapshot is written
		b.Fatal(err)
	}
	ctx := context.Background()
	ids := []string{"big", "worst", "small"}
	lat := make([][]time.Duration, len(ids))
	b.ResetTimer()
	for b.Loop() {
		for i, id := range ids {
			t := time.Now()
			a, err := r.Load(ctx, id)
			lat[i] = append(lat[i], time.Since(t))
			if err != nil {
				b.Fatal(err)
			}
			if a.Version() == 0 {
				b.Fatal("not found")
			}
		}
	}
	big, worst, small := p50(lat[0]), p50(lat[1]), p50(lat[2])
	b.ReportMetric(float64(big.Nanoseconds()), "p50-1000ev-ns")
	b.ReportMetric(float64(worst.Nanoseconds()), "p50-1099ev-ns")
	b.ReportMetric(float64(small.Nanoseconds()), "p50-10ev-ns")
	b.ReportMetric(float64(big)/float64(small), "ratio-1000/10")
	b.ReportMetric(float64(worst)/float64(small), "ratio-1099/10")
}

// BenchmarkDecode measures events decoded per second: a whole load of a
// 1000-event aggregate without snapshots (XRANGE pages, decoding and the
// fold), and the decoding alone of the same 1000 entries already read
// (eventstore.Store.Decode, as the snapshot loader uses it).
func BenchmarkDecode(b *testing.B) {
	tg := redistest.Standalone(b)
	es, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace))
	if err != nil {
		b.Fatal(err)
	}
	typ := accountType(b)
	r, err := aggregate.NewRepository(es, typ)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	a := typ.New("d")
	a.Raise(Opened{Owner: "d"})
	for i := 1; i < 1000; i++ {
		a.Raise(Deposited{Amount: int64(i)})
	}
	if err := r.Save(ctx, a); err != nil {
		b.Fatal(err)
	}
	stream := a.Stream()
	_, key, err := storetest.Locate(ctx, es, stream)
	if err != nil {
		b.Fatal(err)
	}
	entries, err := tg.Client.Do(ctx, tg.Client.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRangeSlices()
	if err != nil || len(entries) != 1000 {
		b.Fatalf("%d entries: %v", len(entries), err)
	}

	b.Run("load-1000", func(b *testing.B) {
		for b.Loop() {
			a, err := r.Load(ctx, "d")
			if err != nil || a.Version() != 1000 {
				b.Fatal(a.Version(), err)
			}
		}
		b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("decode-1000", func(b *testing.B) {
		var last rueidis.XRangeSlice
		for b.Loop() {
			for _, e := range entries {
				if _, err := es.Decode(ctx, key, e); err != nil {
					b.Fatal(err)
				}
				last = e
			}
		}
		_ = last
		b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
	})
}
