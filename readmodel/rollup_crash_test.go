package readmodel_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// The chaos test re-executes the test binary as projector processes
// (rollupProjectorMain, started by TestMain when rollupProjectorEnv is set)
// and kills them with SIGKILL while orders are appended.
const (
	rollupProjectorEnv = "STREAMFOLD_TEST_ROLLUP_PROJECTOR" // the instance id
	rollupAddrsEnv     = "STREAMFOLD_TEST_ROLLUP_ADDRS"
	rollupNSEnv        = "STREAMFOLD_TEST_ROLLUP_NS"
	rollupClusterEnv   = "STREAMFOLD_TEST_ROLLUP_CLUSTER"

	chaosCategory   = "order"
	chaosParts      = 16
	chaosStreams    = 1000 // source streams (orders)
	chaosPerStream  = 50   // events per order: 50,000 in all
	chaosKills      = chaosPerStream / chaosChunk
	chaosEntries    = 50 // rollup entries (customers)
	chaosKeep       = 5  // KeepLatest n
	chaosChunk      = 5  // events per append
	chaosProjection = "customers"
)

// OrderEvent is the chaos test's event.
type OrderEvent struct{ Amount int64 }

func chaosStore(c rueidis.Client, ns string) (*eventstore.Store, error) {
	reg := eventstore.NewRegistry()
	if err := eventstore.Register[OrderEvent](reg, "order-event"); err != nil {
		return nil, err
	}
	return eventstore.New(c, eventstore.WithNamespace(ns), eventstore.WithRegistry(reg), eventstore.WithPartitions(chaosParts))
}

// chaosRoute is where event v of order i goes and what it adds: each order
// feeds several customers, each customer is fed by many orders.
func chaosRoute(i int, v uint64) (entry string, amount int64, member string, score float64) {
	h := uint64(i)*2654435761 + v*40503
	return "c" + strconv.Itoa(int((uint64(i)+v/10)%chaosEntries)), int64(h%997) + 1, "o" + strconv.Itoa(i), float64(h % 100000)
}

func chaosOps(ev eventstore.RecordedEvent) (string, []readmodel.Op, error) {
	i, err := strconv.Atoi(strings.TrimPrefix(ev.Stream.ID, "o"))
	if err != nil {
		return "", nil, err
	}
	entry, amount, member, score := chaosRoute(i, ev.Version)
	if d, ok := ev.Data.(OrderEvent); !ok || d.Amount != amount {
		return "", nil, fmt.Errorf("%s v%d: unexpected %#v", ev.Stream, ev.Version, ev.Data)
	}
	return entry, []readmodel.Op{readmodel.IncrBy("n", 1), readmodel.IncrBy("sum", amount), readmodel.AddMember("orders", member),
		readmodel.KeepLatest("top", ev.Stream.ID+"/"+strconv.FormatUint(ev.Version, 10), score, chaosKeep)}, nil
}

// chaosHandler applies the orders to the rollup, a batch per read.
func chaosHandler(r *readmodel.Rollup) projection.BatchHandler {
	return projection.Writes(func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error {
		entry, ops, err := chaosOps(ev)
		if err != nil {
			return projection.Permanent(err)
		}
		return b.Apply(r, entry, ev.Stream, ev.Version, ops...)
	})
}

func chaosRunner(s *eventstore.Store, r *readmodel.Rollup, instance string) (*projection.Runner, error) {
	return projection.NewRunner(s, projection.Projection{Name: chaosProjection, Categories: []string{chaosCategory}, Handler: chaosHandler(r)},
		projection.WithInstanceID(instance), projection.WithLeaseTTL(2*time.Second), projection.WithBlock(200*time.Millisecond),
		projection.WithLogger(discard()))
}

// rollupProjectorMain runs the chaos projection until killed (or SIGTERM).
func rollupProjectorMain() int {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: strings.Split(os.Getenv(rollupAddrsEnv), ","),
		ForceSingleClient: os.Getenv(rollupClusterEnv) == "", DisableCache: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	ns := os.Getenv(rollupNSEnv)
	s, err := chaosStore(c, ns)
	if err == nil {
		var r *readmodel.Rollup
		if r, err = readmodel.NewRollup(c, ns, chaosProjection); err == nil {
			var run *projection.Runner
			if run, err = chaosRunner(s, r, os.Getenv(rollupProjectorEnv)); err == nil {
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
				defer stop()
				err = run.Run(ctx)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rollup projector:", err)
		return 1
	}
	return 0
}

// chaosFold is the truth: every entry's fold of the events routed to it.
type chaosFold struct {
	n, sum int64
	orders map[string]bool
	top    []readmodel.Scored
}

func chaosTruth() map[string]*chaosFold {
	out := map[string]*chaosFold{}
	for i := range chaosStreams {
		for v := uint64(1); v <= chaosPerStream; v++ {
			entry, amount, member, score := chaosRoute(i, v)
			f := out[entry]
			if f == nil {
				f = &chaosFold{orders: map[string]bool{}}
				out[entry] = f
			}
			f.n++
			f.sum += amount
			f.orders[member] = true
			f.top = append(f.top, readmodel.Scored{Member: "o" + strconv.Itoa(i) + "/" + strconv.FormatUint(v, 10), Score: score})
		}
	}
	for _, f := range out {
		slices.SortFunc(f.top, func(a, b readmodel.Scored) int {
			if a.Score != b.Score {
				if a.Score > b.Score {
					return -1
				}
				return 1
			}
			return -strings.Compare(a.Member, b.Member)
		})
		f.top = f.top[:min(len(f.top), chaosKeep)]
	}
	return out
}

// checkChaos compares every entry with the truth and returns the number of
// events lost and counted twice (by the entries' event counts).
func checkChaos(t *testing.T, ctx context.Context, r *readmodel.Rollup) (lost, doubled int64) {
	t.Helper()
	bad := 0
	for id, f := range chaosTruth() {
		e, err := r.GetFresh(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(e.Fields["n"], 10, 64)
		sum, _ := strconv.ParseInt(e.Fields["sum"], 10, 64)
		if n < f.n {
			lost += f.n - n
		} else {
			doubled += n - f.n
		}
		orders, err := r.MembersFresh(ctx, id, "orders")
		if err != nil {
			t.Fatal(err)
		}
		top, err := r.LatestFresh(ctx, id, "top")
		if err != nil {
			t.Fatal(err)
		}
		if n != f.n || e.Events != uint64(f.n) || sum != f.sum || len(orders) != len(f.orders) || !slices.Equal(top, f.top) {
			if bad++; bad <= 5 {
				t.Errorf("%s: n=%d events=%d sum=%d orders=%d top=%v; the fold: n=%d sum=%d orders=%d top=%v",
					id, n, e.Events, sum, len(orders), top, f.n, f.sum, len(f.orders), f.top)
			}
		}
	}
	return lost, doubled
}

// TestRollupChaos: 50,000 events of 1,000 orders into 50 customer entries
// (counters, a sum, a set, a latest-5 list), appended while two projector
// processes share the partitions and are SIGKILLed and restarted in turn
// (crashes with batches half applied, redeliveries, lease moves between
// them); then every entry must equal the fold of the events routed to it,
// none lost, none counted twice. Then the same rollup is rebuilt from the
// entity streams into schema version 2 (entity by entity, 64 at a time, so
// in no log order), and must equal the fold too.
func TestRollupChaos(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		const kills = chaosKills
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		start := time.Now()
		s, err := chaosStore(tg.Client, tg.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateCategory(ctx, chaosCategory); err != nil {
			t.Fatal(err)
		}
		r, err := readmodel.NewRollup(tg.Client, tg.Namespace, chaosProjection)
		if err != nil {
			t.Fatal(err)
		}

		// Appends, in as many rounds as kills: round k appends events
		// 5k+1..5k+5 of every order (one Append each, from 64 goroutines),
		// so every kill finds work in flight.
		var appended atomic.Int64
		last := map[int]eventstore.AppendResult{}
		var mu sync.Mutex
		appendRound := func(k int) error {
			var wg sync.WaitGroup
			var next atomic.Int64
			var firstErr atomic.Pointer[error]
			from := uint64(k*chaosChunk) + 1
			for range 64 {
				wg.Go(func() {
					for {
						i := int(next.Add(1) - 1)
						if i >= chaosStreams || firstErr.Load() != nil {
							return
						}
						evs := make([]eventstore.Event, 0, chaosChunk)
						for v := from; v < from+chaosChunk; v++ {
							_, amount, _, _ := chaosRoute(i, v)
							evs = append(evs, eventstore.Event{Data: OrderEvent{Amount: amount}})
						}
						res, err := s.Append(ctx, eventstore.Stream(chaosCategory, "o"+strconv.Itoa(i)), eventstore.Exact(from-1), evs...)
						if err != nil {
							firstErr.CompareAndSwap(nil, &err)
							return
						}
						appended.Add(int64(len(evs)))
						mu.Lock()
						if cur, ok := last[res.Partition]; !ok || cur.LastPosition().Compare(res.LastPosition()) < 0 {
							last[res.Partition] = res
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if err := firstErr.Load(); err != nil {
				return *err
			}
			return nil
		}

		procs := map[string]*exec.Cmd{}
		spawn := func(instance string) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), rollupProjectorEnv+"="+instance, rollupAddrsEnv+"="+strings.Join(tg.Addrs, ","), rollupNSEnv+"="+tg.Namespace)
			if tg.Cluster {
				cmd.Env = append(cmd.Env, rollupClusterEnv+"=1")
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			procs[instance] = cmd
		}
		t.Cleanup(func() {
			for _, cmd := range procs {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		spawn("chaos-a")
		spawn("chaos-b")
		applied := func() int64 { // events in the entries so far, whoever applied them
			var n int64
			for i := range chaosEntries {
				e, err := r.GetFresh(ctx, "c"+strconv.Itoa(i))
				if err == nil {
					n += int64(e.Events)
				}
			}
			return n
		}
		for k := range kills {
			before := applied()
			appendErr := make(chan error, 1)
			go func() { appendErr <- appendRound(k) }()
			// Kill one once the projection has moved since the last kill,
			// some way into a batch.
			for applied() == before && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond) // polling another process's progress
			}
			time.Sleep(time.Duration(10+rand.IntN(100)) * time.Millisecond)
			victim := []string{"chaos-a", "chaos-b"}[k%2]
			cmd := procs[victim]
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			spawn(victim) // the same instance id: it takes its leases back at once
			if err := <-appendErr; err != nil {
				t.Fatal(err)
			}
		}
		appendTime := time.Since(start)
		// The survivors run on; wait until they have applied the last
		// event of every partition, from this process.
		w, err := chaosRunner(s, r, "chaos-waiter")
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range last {
			if err := w.WaitFor(ctx, res); err != nil {
				st, _ := projection.Status(context.Background(), s, chaosProjection, chaosCategory)
				for _, p := range st {
					t.Logf("partition %d: %+v (last appended %v)", p.Partition, p, last[p.Partition].LastPosition())
				}
				t.Fatalf("wait for partition %d %v: %v", res.Partition, res.LastPosition(), err)
			}
		}
		for _, cmd := range procs {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		procs = map[string]*exec.Cmd{}
		lost, doubled := checkChaos(t, ctx, r)
		var dead int64
		st, _ := projection.Status(ctx, s, chaosProjection, chaosCategory)
		for _, p := range st {
			dead += p.DeadLetters
		}
		var sources int64
		for i := range chaosEntries {
			n, _ := r.Sources(ctx, "c"+strconv.Itoa(i))
			sources += n
		}
		t.Logf("%s: events %d, source streams %d, entries %d, kills %d, lost %d, doubled %d, dead letters %d, source versions kept %d (%.0f per entry); appends and kills done %v, projected %v",
			tg.Name, appended.Load(), chaosStreams, chaosEntries, kills, lost, doubled, dead, sources, float64(sources)/chaosEntries,
			appendTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if lost != 0 || doubled != 0 || dead != 0 || t.Failed() {
			t.Fatalf("lost %d, doubled %d, dead letters %d", lost, doubled, dead)
		}

		// Rebuild into schema version 2 from the entity streams.
		r2, err := readmodel.NewRollup(tg.Client, tg.Namespace, chaosProjection, readmodel.WithSchemaVersion(2))
		if err != nil {
			t.Fatal(err)
		}
		rb := time.Now()
		p2 := projection.Projection{Name: chaosProjection + "-v2", Categories: []string{chaosCategory}, Handler: chaosHandler(r2)}
		if _, err := projection.Rebuild(ctx, s, p2, 64); err != nil {
			t.Fatal(err)
		}
		lost, doubled = checkChaos(t, ctx, r2)
		st2 := r2.Stats()
		t.Logf("%s: rebuilt in %v: lost %d, doubled %d, applied %d, skipped %d", tg.Name, time.Since(rb).Round(time.Millisecond), lost, doubled, st2.Applied, st2.Skipped)
		if lost != 0 || doubled != 0 || st2.Applied != chaosStreams*chaosPerStream || st2.Skipped != 0 {
			t.Fatalf("rebuild: lost %d, doubled %d, stats %+v", lost, doubled, st2)
		}
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
