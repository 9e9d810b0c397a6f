package integration_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

// TestClusterResharding moves the hash slots of live partitions (partition
// logs, entity streams, the projection's lease and dead-letter keys) between
// the masters of a dedicated 3-master cluster, the way redis-cli --cluster
// reshard does (SETSLOT IMPORTING/MIGRATING, MIGRATE a few keys at a time,
// SETSLOT NODE), while 32 writers append (creating new streams all along)
// and a projection runner applies the events to a read model.
//
// While a slot migrates, a script whose keys are split between the two nodes
// or missing on the importing one is refused with TRYAGAIN, and one whose
// keys are all gone from the source is redirected with ASK: Redis ran
// nothing. The store and the runner retry such refusals inside the caller's
// deadline, so no caller sees an error, and nothing is lost or duplicated.
//
// The durable variant runs on a cluster with a replica per master and asks
// every append for a replica's acknowledgement (WAIT in the same round trip,
// which must go wherever the script is redirected: checkRedirectedWait).
func TestClusterResharding(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testResharding(t, false) })
	t.Run("durable", func(t *testing.T) { testResharding(t, true) })
}

func testResharding(t *testing.T, durable bool) {
	ctx := context.Background()
	opt, storeOpts, args := redistest.WithCluster(), []eventstore.Option(nil), []string(nil)
	if durable {
		opt = redistest.WithClusterReplicas()
		args = append(args, "--enable-debug-command", "yes") // DEBUG SLEEP a replica
		storeOpts = append(storeOpts, eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: 2 * time.Second}))
	}
	cl := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), opt, redistest.WithArgs(args...))
	masters := cl.Addrs()[:3]
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: masters})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const ns, category = "reshard", "acct"
	store := newStore(t, c, ns, storeOpts...)
	m := newReadModel(t, c, ns, "fold")
	logs := newLogCounter()
	var counters projection.Counters
	r, err := projection.NewRunner(store, projection.Projection{Name: "fold", Categories: []string{category}, Handler: tickFold(m)},
		projection.WithInstanceID("resharder"), projection.WithLeaseTTL(2*time.Second), projection.WithBlock(100*time.Millisecond),
		projection.WithLogger(logs.logger()),
		projection.WithMiddleware(projection.Metrics(&counters), projection.Retry(projection.RetryPolicy{Attempts: 20, Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond})))
	if err != nil {
		t.Fatal(err)
	}

	w := &growingWorkload{workload: workload{store: store, category: category, workers: 32, timeout: 10 * time.Second, pad: 32}, newEvery: 6}
	stop := make(chan struct{})
	done := make(chan int, 1)
	go func() { done <- w.run(stop, 20*time.Second) }()
	// The first append creates the category, which a runner only reads.
	waitFor(t, 20*time.Second, "the first append", func() bool { return w.ackedCount() > 0 })
	stopRunner, exited := startRunner(t, r)
	waitFor(t, 20*time.Second, "appends before the resharding", func() bool { return w.ackedCount() >= 500 })

	// Info on the streams written so far, all along: a read-only script
	// over a stream and its tombstone, refused like the appends.
	var infos, infoErrs atomic.Int64
	infoStop := make(chan struct{})
	infoDone := make(chan struct{})
	go func() {
		defer close(infoDone)
		for i := 0; ; i++ {
			select {
			case <-infoStop:
				return
			default:
			}
			ids := w.streamIDs()
			ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := store.Info(ictx, ids[i%len(ids)])
			cancel()
			infos.Add(1)
			if err != nil {
				infoErrs.Add(1)
				t.Errorf("Info during the resharding: %v", err)
			}
		}
	}()

	rs := newResharder(t, masters)
	parts, err := store.Partitions(ctx, category)
	if err != nil {
		t.Fatal(err)
	}
	slots := make([]int64, parts)
	for p := range parts {
		slots[p] = rs.keySlot(store.Keys().Log(category, p))
	}
	// Every partition's slot moves to the next master, three rounds: each
	// slot visits every master and comes home.
	started := time.Now()
	migrations, keysMoved := 0, 0
	var longest time.Duration
	for range 3 {
		for _, slot := range slots {
			from := rs.owner(slot)
			to := masters[(indexOf(masters, from)+1)%len(masters)]
			t0 := time.Now()
			keysMoved += rs.migrate(slot, from, to)
			longest = max(longest, time.Since(t0))
			migrations++
		}
	}
	resharding := time.Since(started)
	close(infoStop)
	<-infoDone
	base := w.ackedCount()
	waitFor(t, 20*time.Second, "appends after the resharding", func() bool { return w.ackedCount() >= base+200 })
	close(stop)
	if left := <-done; left != 0 {
		t.Errorf("%d appends still unacknowledged after the drain", left)
	}
	select {
	case <-exited:
		t.Fatalf("the runner stopped by itself: %v", stopRunner())
	default:
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, res := range w.lastPerPartition() {
		if err := r.WaitFor(wctx, res); err != nil {
			t.Fatalf("WaitFor %s p%d: %v (runner log: %s)", res.Stream, res.Partition, err, logs.kinds())
		}
	}
	if err := stopRunner(); err != nil {
		t.Errorf("run: %v", err)
	}
	v := w.verify(t, store)
	folds, wrongFolds := checkSumFold(t, store, c, m, w.streamIDs())
	dead, err := deadLetterCount(ctx, store, "fold", category)
	if err != nil {
		t.Fatal(err)
	}
	refusals := logs.errorsContaining("TRYAGAIN")
	refusals = append(refusals, logs.errorsContaining("ASK ")...)
	refusals = append(refusals, logs.errorsContaining("MOVED ")...)
	summary(t, "durable", durable, "attempted", w.attempted.Load(), "acknowledged", w.ackedCount(), "streams", len(w.streamIDs()), "calls", w.calls.Load(),
		"failed_calls", w.errs.Load(), "errors", w.errorKinds(), "max_failed_wait", time.Duration(w.maxErrWait.Load()).Round(time.Millisecond),
		"max_append", time.Duration(w.maxCall.Load()).Round(time.Millisecond),
		"lost", v.lost, "duplicated", v.duplicated, "log_duplicated", v.logDuplicated, "mismatched", v.mismatched, "gaps", v.gaps,
		"replayed", w.replayed.Load(), "migrations", migrations, "keys_moved", keysMoved, "resharding", resharding.Round(time.Millisecond),
		"longest_migration", longest.Round(time.Millisecond), "read_models", folds, "wrong_read_models", wrongFolds, "dead_letters", dead,
		"handled", counters.Handled.Load(), "infos", infos.Load(), "info_errors", infoErrs.Load(),
		"redis_refusals", rs.refusals(), "not_durable", w.notDurable.Load(), "runner_refusals_logged", len(refusals), "runner_log", logs.kinds())
	if w.errs.Load() != 0 {
		t.Errorf("%d append calls failed during the resharding (%s); none may", w.errs.Load(), w.errorKinds())
	}
	if v.lost != 0 || v.duplicated != 0 || v.logDuplicated != 0 || v.gaps != 0 || v.mismatched != 0 || w.conflicts.Load() != 0 {
		t.Errorf("resharding: %+v, writers saw %d conflicts", v, w.conflicts.Load())
	}
	if wrongFolds != 0 || dead != 0 {
		t.Errorf("%d read models differ from the fold of their stream, %d dead letters", wrongFolds, dead)
	}
	if durable {
		checkRedirectedWait(t, c, masters, cl.Addrs()[3:])
	}
	if len(refusals) != 0 {
		t.Errorf("the runner logged %d refusals Redis made without running the call (it must retry them): %q", len(refusals), refusals[:min(3, len(refusals))])
	}
}

// growingWorkload is a workload whose writers keep creating streams: every
// newEvery-th call of a writer goes to a new entity (NoStream), so streams
// are created in slots being migrated.
type growingWorkload struct {
	workload
	newEvery int

	maxCall atomic.Int64 // longest acknowledged call, ns

	lastMu sync.Mutex
	last   map[int]eventstore.AppendResult // highest position per partition
}

func (w *growingWorkload) run(stop <-chan struct{}, drain time.Duration) int {
	w.mu.Lock()
	w.acked = map[uuid.UUID]ackedEvent{}
	w.errKind = map[string]int{}
	w.streams = map[eventstore.StreamID]bool{}
	w.mu.Unlock()
	w.last = map[int]eventstore.AppendResult{}
	var left atomic.Int64
	var wg sync.WaitGroup
	for g := range w.workers {
		wg.Go(func() { left.Add(int64(w.writer(g, stop, drain))) })
	}
	wg.Wait()
	return int(left.Load())
}

func (w *growingWorkload) writer(g int, stop <-chan struct{}, drain time.Duration) int {
	type entity struct {
		id      eventstore.StreamID
		version uint64
		pending []eventstore.Event
	}
	var ents []*entity
	add := func() {
		e := &entity{id: eventstore.Stream(w.category, fmt.Sprintf("w%d-e%d", g, len(ents)))}
		ents = append(ents, e)
		w.mu.Lock()
		w.streams[e.id] = true
		w.mu.Unlock()
	}
	add()
	pad := strings.Repeat("x", w.pad)
	rng := rand.New(rand.NewPCG(uint64(g), 7))
	var drainUntil time.Time
	for i := 0; ; i++ {
		if drainUntil.IsZero() {
			select {
			case <-stop:
				drainUntil = time.Now().Add(drain)
			default:
			}
		}
		var e *entity
		if drainUntil.IsZero() {
			if i%w.newEvery == 0 && i > 0 {
				add()
				e = ents[len(ents)-1]
			} else {
				e = ents[rng.IntN(len(ents))]
			}
		} else {
			left := 0
			for _, x := range ents {
				if x.pending != nil {
					left++
					e = x
				}
			}
			if left == 0 || time.Now().After(drainUntil) {
				return left
			}
		}
		// An entity with a failed call is retried with the same events
		// before it gets new ones.
		for _, x := range ents {
			if x.pending != nil && drainUntil.IsZero() {
				e = x
				break
			}
		}
		if e.pending == nil {
			n := 1 + i%3
			for j := range n {
				e.pending = append(e.pending, eventstore.NewEvent(Tick{N: int64(rng.IntN(1000)) + int64(j), Pad: pad}))
			}
			w.attempted.Add(int64(n))
		}
		expected := eventstore.Exact(e.version)
		if e.version == 0 {
			expected = eventstore.NoStream
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		start := time.Now()
		res, err := w.store.Append(ctx, e.id, expected, e.pending...)
		cancel()
		w.calls.Add(1)
		var wv *eventstore.WrongVersionError
		switch {
		case err == nil:
			if d := int64(time.Since(start)); d > w.maxCall.Load() {
				w.maxCall.Store(d)
			}
			w.mu.Lock()
			for j, ev := range e.pending {
				w.acked[ev.ID] = ackedEvent{stream: e.id, version: res.FirstVersion() + uint64(j)}
			}
			w.mu.Unlock()
			if res.Replayed {
				w.replayed.Add(1)
			}
			w.lastMu.Lock()
			if cur, ok := w.last[res.Partition]; !ok || cur.LastPosition().Compare(res.LastPosition()) < 0 {
				w.last[res.Partition] = res
			}
			w.lastMu.Unlock()
			e.version, e.pending = res.Version, nil
		case errors.As(err, &wv):
			// Only this writer writes e: the store lost acknowledged events.
			w.conflicts.Add(1)
			e.version, e.pending = wv.Actual, nil
		default:
			w.failed(err, start)
			time.Sleep(time.Duration(5+i%10) * time.Millisecond)
		}
	}
}

func (w *growingWorkload) lastPerPartition() []eventstore.AppendResult {
	w.lastMu.Lock()
	defer w.lastMu.Unlock()
	var out []eventstore.AppendResult
	for _, r := range w.last {
		out = append(out, r)
	}
	return out
}

func (w *growingWorkload) streamIDs() []eventstore.StreamID {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]eventstore.StreamID, 0, len(w.streams))
	for id := range w.streams {
		out = append(out, id)
	}
	return out
}

// checkSumFold compares every stream's read-model entry with the fold of
// the events stored in the stream. It returns how many entries it checked
// and how many differ.
func checkSumFold(t testing.TB, store *eventstore.Store, c rueidis.Client, m *readmodel.Model, ids []eventstore.StreamID) (checked, wrong int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range ids {
		var n, sum int64
		var version uint64
		for ev, err := range store.Read(ctx, id, 0) {
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				break
			}
			if err != nil {
				t.Fatalf("read %s: %v", id, err)
			}
			n++
			sum += ev.Data.(Tick).N
			version = ev.Version
		}
		if n == 0 {
			continue
		}
		kv, err := c.Do(ctx, c.B().Hgetall().Key(m.Key(id.ID)).Build()).AsStrMap()
		if err != nil {
			t.Fatalf("read model %s: %v", id, err)
		}
		checked++
		if kv["n"] != fmt.Sprint(n) || kv["sum"] != fmt.Sprint(sum) || kv["_v"] != fmt.Sprint(version) {
			wrong++
			if wrong <= 5 {
				t.Errorf("%s: read model n=%s sum=%s v=%s, fold of the stream n=%d sum=%d v=%d", id, kv["n"], kv["sum"], kv["_v"], n, sum, version)
			}
		}
	}
	return checked, wrong
}

// resharder moves hash slots between the masters of a cluster as redis-cli
// --cluster reshard does.
type resharder struct {
	t     testing.TB
	nodes map[string]rueidis.Client // by address
	ids   map[string]string         // node id by address
}

func newResharder(t testing.TB, masters []string) *resharder {
	rs := &resharder{t: t, nodes: map[string]rueidis.Client{}, ids: map[string]string{}}
	for _, a := range masters {
		nc := nodeClient(t, a)
		id, err := nc.Do(context.Background(), nc.B().ClusterMyid().Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		rs.nodes[a], rs.ids[a] = nc, id
	}
	return rs
}

func (rs *resharder) any() rueidis.Client {
	for _, c := range rs.nodes {
		return c
	}
	return nil
}

func (rs *resharder) keySlot(key string) int64 {
	c := rs.any()
	n, err := c.Do(context.Background(), c.B().ClusterKeyslot().Key(key).Build()).AsInt64()
	if err != nil {
		rs.t.Fatal(err)
	}
	return n
}

// owner returns the address of the master serving slot, as the node that
// owns it says (CLUSTER COUNTKEYSINSLOT answers only on the owner in 7.0,
// so CLUSTER SLOTS of every node is consulted instead).
func (rs *resharder) owner(slot int64) string {
	for a, c := range rs.nodes {
		ranges, err := c.Do(context.Background(), c.B().ClusterSlots().Build()).ToArray()
		if err != nil {
			rs.t.Fatal(err)
		}
		for _, r := range ranges {
			f, _ := r.ToArray()
			lo, _ := f[0].AsInt64()
			hi, _ := f[1].AsInt64()
			if slot < lo || slot > hi {
				continue
			}
			m, _ := f[2].ToArray()
			host, _ := m[0].ToString()
			port, _ := m[1].AsInt64()
			if got := fmt.Sprintf("%s:%d", host, port); got == a {
				return a
			}
		}
	}
	rs.t.Fatalf("no master owns slot %d", slot)
	return ""
}

// migrate moves slot from one master to another, a few keys per MIGRATE
// with a short pause between, so that the slot stays open (and keys of one
// partition sit on both nodes) long enough for the writers to run into it.
// It returns the number of keys moved.
func (rs *resharder) migrate(slot int64, from, to string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, dst := rs.nodes[from], rs.nodes[to]
	must := func(c rueidis.Client, cmd rueidis.Completed) {
		rs.t.Helper()
		if err := c.Do(ctx, cmd).Error(); err != nil {
			rs.t.Fatalf("%s: %v", strings.Join(cmd.Commands(), " "), err)
		}
	}
	must(dst, dst.B().ClusterSetslot().Slot(slot).Importing().NodeId(rs.ids[from]).Build())
	must(src, src.B().ClusterSetslot().Slot(slot).Migrating().NodeId(rs.ids[to]).Build())
	host, port := splitAddr(rs.t, to)
	moved := 0
	for {
		keys, err := src.Do(ctx, src.B().ClusterGetkeysinslot().Slot(slot).Count(3).Build()).AsStrSlice()
		if err != nil {
			rs.t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		must(src, src.B().Migrate().Host(host).Port(port).Key("").DestinationDb(0).Timeout(5000).Keys(keys...).Build())
		moved += len(keys)
		time.Sleep(2 * time.Millisecond)
	}
	// As redis-cli: the new owner first, then the old one, then the rest.
	must(dst, dst.B().ClusterSetslot().Slot(slot).Node().NodeId(rs.ids[to]).Build())
	must(src, src.B().ClusterSetslot().Slot(slot).Node().NodeId(rs.ids[to]).Build())
	for a, c := range rs.nodes {
		if a != from && a != to {
			must(c, c.B().ClusterSetslot().Slot(slot).Node().NodeId(rs.ids[to]).Build())
		}
	}
	return moved
}

// refusals sums, over the masters, the error replies by which Redis
// refused a command without running it (INFO errorstats): what the store,
// the runner and rueidis retried or followed.
func (rs *resharder) refusals() string {
	sum := map[string]int64{}
	for _, c := range rs.nodes {
		info, err := c.Do(context.Background(), c.B().Info().Section("errorstats").Build()).ToString()
		if err != nil {
			rs.t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !strings.HasPrefix(k, "errorstat_") {
				continue
			}
			var n int64
			fmt.Sscanf(strings.TrimPrefix(v, "count="), "%d", &n)
			sum[strings.TrimPrefix(k, "errorstat_")] += n
		}
	}
	var parts []string
	for _, k := range []string{"TRYAGAIN", "ASK", "MOVED", "CLUSTERDOWN"} {
		parts = append(parts, fmt.Sprintf("%s:%d", k, sum[k]))
	}
	return strings.Join(parts, ",")
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// checkRedirectedWait: after a stream's slot moved to another master, the
// first durable append is redirected (MOVED). WAIT must follow the script to
// the new owner: with the new owner's replica asleep, the append is applied
// but not durable (ErrNotDurable). Sent by rueidis' cluster DoMulti, the
// script alone was redirected and WAIT, answered by the old owner, counted
// its replica: a false acknowledgement (this check failed so).
func checkRedirectedWait(t *testing.T, c rueidis.Client, masters, replicas []string) {
	ctx := context.Background()
	store := newStore(t, c, "reshardwait", eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: 300 * time.Millisecond}))
	id := eventstore.Stream("acct", "moved")
	first, err := store.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Tick{N: 1}))
	if err != nil {
		t.Fatal(err)
	}
	rs := newResharder(t, masters)
	_, key, err := storetest.Locate(ctx, store, id)
	if err != nil {
		t.Fatal(err)
	}
	slot := rs.keySlot(key)
	from := rs.owner(slot)
	to := (indexOf(masters, from) + 1) % len(masters)
	rs.migrate(slot, from, masters[to])
	// The new owner's replica stops acknowledging for a while.
	sleeper := nodeClient(t, replicas[to])
	slept := make(chan error, 1)
	go func() { slept <- sleeper.Do(ctx, sleeper.B().Arbitrary("DEBUG", "SLEEP").Args("1").Build()).Error() }()
	time.Sleep(100 * time.Millisecond)
	res, err := store.Append(ctx, id, eventstore.Exact(first.Version), eventstore.NewEvent(Tick{N: 2}))
	if err := <-slept; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	var de *eventstore.DurabilityError
	if !errors.As(err, &de) || de.Acked != 0 || len(de.Results) != 1 || de.Results[0].Version != 2 {
		t.Fatalf("durable append redirected to the slot's new owner, whose replica is asleep: got %v (result %+v), want a DurabilityError with 0 acks at version 2", err, res)
	}
}
