package projection_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) {
	if os.Getenv(projectorEnv) != "" {
		os.Exit(projectorMain())
	}
	redistest.Main(m)
}

// Deposited is the test event.
type Deposited struct{ Amount int64 }

const category = "acct"

func newRegistry() *eventstore.Registry {
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Deposited](reg, "deposited")
	return reg
}

// newStore returns a store with the tests' category created, as a
// deployment does before it starts projections (a runner of a category that
// does not exist fails).
func newStore(t testing.TB, c rueidis.Client, ns string, partitions int) *eventstore.Store {
	t.Helper()
	s, err := eventstore.New(c, eventstore.WithNamespace(ns), eventstore.WithRegistry(newRegistry()), eventstore.WithPartitions(partitions))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateCategory(context.Background(), category); err != nil {
		t.Fatal(err)
	}
	return s
}

// amount is the deterministic payload of event v of entity i, so the
// expected fold is known without keeping the events.
func amount(entity string, v uint64) int64 {
	h := int64(0)
	for _, c := range entity {
		h = h*31 + int64(c)
	}
	return (h+int64(v)*7919)%1000 + 1
}

func expectedSum(entity string, n uint64) int64 {
	var s int64
	for v := uint64(1); v <= n; v++ {
		s += amount(entity, v)
	}
	return s
}

// counting returns the handler of the tests' read model: per entity, the
// number of events applied and the sum of their amounts, version-guarded.
func counting(m *readmodel.Model) projection.HandlerFunc {
	return func(ctx context.Context, ev eventstore.RecordedEvent) error {
		d, ok := ev.Data.(Deposited)
		if !ok {
			return projection.Permanent(fmt.Errorf("unexpected %T", ev.Data))
		}
		_, err := m.Patch(ctx, ev.Stream.ID, ev.Version, readmodel.IncrBy("n", 1), readmodel.IncrBy("sum", d.Amount))
		return err
	}
}

// countingBatch is counting as a BatchHandler: the same version-guarded
// Patch per event, queued on one readmodel.Batch per batch.
func countingBatch(m *readmodel.Model) projection.BatchHandler {
	return projection.Writes(func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error {
		d, ok := ev.Data.(Deposited)
		if !ok {
			return projection.Permanent(fmt.Errorf("unexpected %T", ev.Data))
		}
		return b.Patch(m, ev.Stream.ID, ev.Version, readmodel.IncrBy("n", 1), readmodel.IncrBy("sum", d.Amount))
	})
}

// appendAll appends perEntity events to each of entities entities from
// workers goroutines (pipelined by rueidis), and returns, per partition, the
// append result with the highest position.
func appendAll(t testing.TB, ctx context.Context, s *eventstore.Store, prefix string, entities, perEntity, workers int) map[int]eventstore.AppendResult {
	t.Helper()
	last, err := appendEvents(ctx, s, prefix, entities, 0, perEntity, workers)
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// appendEvents appends events from+1 .. from+perEntity to each entity; safe
// to call from any goroutine.
func appendEvents(ctx context.Context, s *eventstore.Store, prefix string, entities int, from uint64, perEntity, workers int) (map[int]eventstore.AppendResult, error) {
	var mu sync.Mutex
	last := map[int]eventstore.AppendResult{}
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	// Work item k: entity k%entities, its (k/entities+1)-th event; each
	// entity's events are appended in order by taking them round-robin and
	// appending with an exact expected version.
	vers := make([]atomic.Uint64, entities)
	for i := range vers {
		vers[i].Store(from)
	}
	locks := make([]sync.Mutex, entities)
	total := int64(entities * perEntity)
	for range workers {
		wg.Go(func() {
			for {
				k := next.Add(1) - 1
				if k >= total || firstErr.Load() != nil {
					return
				}
				i := int(k % int64(entities))
				id := prefix + strconv.Itoa(i)
				locks[i].Lock()
				v := vers[i].Load()
				res, err := s.Append(ctx, eventstore.Stream(category, id), eventstore.Exact(v), eventstore.Event{Data: Deposited{Amount: amount(id, v+1)}})
				if err == nil {
					vers[i].Store(v + 1)
				}
				locks[i].Unlock()
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%w", err)) // one concrete type, as atomic.Value wants
					return
				}
				mu.Lock()
				if cur, ok := last[res.Partition]; !ok || cur.LastPosition().Compare(res.LastPosition()) < 0 {
					last[res.Partition] = res
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	return last, nil
}

// checkFold verifies every entity's entry: n events applied, their sum,
// and the last version. It returns lost and doubled event counts.
func checkFold(t testing.TB, ctx context.Context, m *readmodel.Model, prefix string, entities, perEntity int) (lost, doubled int) {
	t.Helper()
	c := mClient(m)
	cmds := make(rueidis.Commands, entities)
	for i := range entities {
		cmds[i] = c.B().Hgetall().Key(m.Key(prefix + strconv.Itoa(i))).Build()
	}
	bad := 0
	for i, res := range c.DoMulti(ctx, cmds...) {
		id := prefix + strconv.Itoa(i)
		kv, err := res.AsStrMap()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(kv["n"])
		sum, _ := strconv.ParseInt(kv["sum"], 10, 64)
		v, _ := strconv.Atoi(kv["_v"])
		if n < perEntity {
			lost += perEntity - n
		} else {
			doubled += n - perEntity
		}
		if n != perEntity || v != perEntity || sum != expectedSum(id, uint64(perEntity)) {
			bad++
			if bad <= 5 {
				t.Errorf("%s: n=%d v=%d sum=%d, want n=v=%d sum=%d", id, n, v, sum, perEntity, expectedSum(id, uint64(perEntity)))
			}
		}
	}
	return lost, doubled
}

var clients sync.Map // *readmodel.Model -> rueidis.Client

func newModel(t testing.TB, c rueidis.Client, ns, name string, opts ...readmodel.Option) *readmodel.Model {
	m, err := readmodel.New(c, ns, name, opts...)
	if err != nil {
		if t == nil {
			panic(err) // the projector subprocess; never on user input
		}
		t.Fatal(err)
	}
	clients.Store(m, c)
	return m
}

func mClient(m *readmodel.Model) rueidis.Client {
	c, _ := clients.Load(m)
	return c.(rueidis.Client)
}

// runRunner starts r.Run and returns a stop function that cancels it and
// waits for it to return.
func runRunner(t testing.TB, r *projection.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("runner did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitAll(t testing.TB, ctx context.Context, r *projection.Runner, last map[int]eventstore.AppendResult) {
	t.Helper()
	for _, res := range last {
		if err := r.WaitFor(ctx, res); err != nil {
			t.Fatalf("wait for %v: %v", res.LastPosition(), err)
		}
	}
}

func quiet() projection.Option {
	return projection.WithLogger(slogDiscard())
}

// readUnacked creates group on log at its start and reads n entries as
// consumer without acking them: a previous life of that instance that
// crashed before acking, leaving them in its own pending list.
func readUnacked(t testing.TB, ctx context.Context, c rueidis.Client, log, group, consumer string, n int) {
	t.Helper()
	if err := c.Do(ctx, c.B().XgroupCreate().Key(log).Group(group).Id("0").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Do(ctx, c.B().Xreadgroup().Group(group, consumer).Count(int64(n)).Streams().Key(log).Id(">").Build()).AsXRead()
	if err != nil || len(got[log]) != n {
		t.Fatalf("read as %s: %d entries, %v", consumer, len(got[log]), err)
	}
}

// aclUser is a Redis ACL user on every node of a test's deployment, with
// its own password, deleted with the test.
type aclUser struct {
	tg         *redistest.Target
	name, pass string
}

// newACLUser creates the user "<prefix>-<namespace>" with rules (after "on"
// and its password) on every node.
func newACLUser(t testing.TB, ctx context.Context, tg *redistest.Target, prefix string, rules ...string) *aclUser {
	t.Helper()
	u := &aclUser{tg: tg, name: prefix + "-" + tg.Namespace, pass: "p-" + tg.Namespace}
	u.set(t, ctx, append([]string{"on", ">" + u.pass}, rules...)...)
	t.Cleanup(func() { _ = u.delete(context.Background()) })
	return u
}

// set applies ACL SETUSER rules to the user on every node.
func (u *aclUser) set(t testing.TB, ctx context.Context, rules ...string) {
	t.Helper()
	for addr, n := range u.tg.Client.Nodes() {
		if err := n.Do(ctx, n.B().Arbitrary("ACL").Args(append([]string{"SETUSER", u.name}, rules...)...).Build()).Error(); err != nil {
			t.Fatalf("ACL SETUSER %s on %s: %v", u.name, addr, err)
		}
	}
}

// delete removes the user from every node, which disconnects its clients
// and refuses them from then on.
func (u *aclUser) delete(ctx context.Context) error {
	for addr, n := range u.tg.Client.Nodes() {
		if err := n.Do(ctx, n.B().AclDeluser().Username(u.name).Build()).Error(); err != nil {
			return fmt.Errorf("ACL DELUSER %s on %s: %w", u.name, addr, err)
		}
	}
	return nil
}

// client returns a client of the deployment authenticated as the user.
func (u *aclUser) client(t testing.TB) rueidis.Client {
	return u.tg.NewClient(t, func(o *rueidis.ClientOption) { o.Username, o.Password = u.name, u.pass })
}
