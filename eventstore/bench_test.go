package eventstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
)

// Payload of the append benchmarks: ~100 bytes encoded.
type benchEvent struct {
	Account string
	Amount  int64
	Memo    string
}

const (
	benchWorkers  = 64
	benchEntities = 10_000
)

var benchPartitions = 16

var benchMemo = strings.Repeat("m", 70)

// runWorkers runs total operations over benchWorkers goroutines and returns
// operations per second.
func runWorkers(b *testing.B, total int, op func(worker, i int) error) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for w := range benchWorkers {
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
		b.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds()
}

// BenchmarkAppendVsRawXADD measures single-event appends with an exact
// expected version (64 goroutines, 10k entities, ~100-byte payload) against
// raw rueidis XADD of the same payload with the same concurrency, in
// alternating rounds in one process, and reports both rates and their ratio.
//
//	go test -run '^$' -bench AppendVsRawXADD -benchtime 200000x ./eventstore/
func BenchmarkAppendVsRawXADD(b *testing.B) {
	for _, mode := range []struct {
		name            string
		batch, inflight int
	}{{"grouped", 64, 1}, {"grouped-inflight-4", 64, 4}, {"plain", 1, 1}} {
		b.Run(mode.name, func(b *testing.B) {
			tg := redistest.Standalone(b)
			ctx := context.Background()
			reg := eventstore.NewRegistry()
			eventstore.MustRegister[benchEvent](reg, "bench")
			s, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg),
				eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: mode.batch, InFlight: mode.inflight}), eventstore.WithPartitions(benchPartitions))
			if err != nil {
				b.Fatal(err)
			}
			payload, _ := eventstore.Msgpack{}.Marshal(benchEvent{Account: "acc-0000", Amount: 42, Memo: benchMemo})
			raw := rueidis.BinaryString(payload)
			// Each worker owns entities w, w+64, ... so it knows their versions.
			versions := make([]uint64, benchEntities)
			ids := make([]eventstore.StreamID, benchEntities)
			rawKeys := make([]string, benchEntities)
			for i := range ids {
				ids[i] = eventstore.Stream("bench", fmt.Sprintf("acc-%d", i))
				rawKeys[i] = tg.Namespace + ":raw:" + ids[i].ID
			}
			perWorker := benchEntities / benchWorkers
			cursor := make([]int, benchWorkers)
			ours := func(w, _ int) error {
				e := w + benchWorkers*(cursor[w]%perWorker)
				cursor[w]++
				_, err := s.Append(ctx, ids[e], eventstore.Exact(versions[e]),
					eventstore.NewEvent(benchEvent{Account: "acc-0000", Amount: 42, Memo: benchMemo}))
				versions[e]++
				return err
			}
			c := tg.Client
			rawOp := func(w, i int) error {
				return c.Do(ctx, c.B().Xadd().Key(rawKeys[i%benchEntities]).Id("*").FieldValue().FieldValue("data", raw).Build()).Error()
			}
			n := b.N
			if n < 1000 {
				n = 1000
			}
			const rounds = 3
			var oursRate, rawRate, oursCPU, rawCPU float64
			b.ResetTimer()
			for range rounds {
				r, cpu := withServerCPU(b, c, func() float64 { return runWorkers(b, n/rounds, rawOp) })
				rawRate, rawCPU = rawRate+r, rawCPU+cpu
				r, cpu = withServerCPU(b, c, func() float64 { return runWorkers(b, n/rounds, ours) })
				oursRate, oursCPU = oursRate+r, oursCPU+cpu
			}
			b.StopTimer()
			b.ReportMetric(oursRate/rounds, "events/s")
			b.ReportMetric(rawRate/rounds, "raw-xadd/s")
			b.ReportMetric(oursRate/rawRate, "ratio")
			// Share of one core the Redis server used while each side ran:
			// near 1 means Redis itself is the limit.
			b.ReportMetric(oursCPU/rounds, "redis-cpu")
			b.ReportMetric(rawCPU/rounds, "raw-redis-cpu")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// withServerCPU runs f and returns its result and the share of one core the
// Redis server spent meanwhile (INFO cpu, main thread and I/O).
func withServerCPU(b *testing.B, c rueidis.Client, f func() float64) (float64, float64) {
	cpu := func() float64 {
		info, err := c.Do(context.Background(), c.B().Info().Section("cpu").Build()).ToString()
		if err != nil {
			b.Fatal(err)
		}
		var total float64
		for _, line := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
		return total
	}
	before, start := cpu(), time.Now()
	r := f()
	return r, (cpu() - before) / time.Since(start).Seconds()
}
