package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
	"github.com/streamfold/streamfold/retention/shred"
	"github.com/streamfold/streamfold/snapshot"
	"pgregory.net/rapid"
)

const (
	category     = "acct"
	partitions   = 2
	stateVersion = 1
	rmName       = "bal"
	opTimeout    = 15 * time.Second
)

// entityIDs are four ids, three of them in partition 0 so that multi-stream
// appends and group-commit batches across entities are possible.
var entityIDs = func() []string {
	var p0, p1 []string
	for i := 0; len(p0) < 3 || len(p1) < 1; i++ {
		id := fmt.Sprintf("e%d", i)
		if eventstore.PartitionOf(id, partitions) == 0 && len(p0) < 3 {
			p0 = append(p0, id)
		} else if eventstore.PartitionOf(id, partitions) == 1 && len(p1) < 1 {
			p1 = append(p1, id)
		}
	}
	return append(p0, p1...)
}()

var accountType = func() *aggregate.Type[Account] {
	t := aggregate.NewType(category, apply, aggregate.StateVersion(stateVersion))
	aggregate.MustRegisterEvent[Deposited](t, "deposited")
	return t
}()

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// logger: STREAMFOLD_LIFECYCLE_LOG=1 shows the library's own logs.
func logger() *slog.Logger {
	if os.Getenv("STREAMFOLD_LIFECYCLE_LOG") != "" {
		return slog.Default()
	}
	return quiet
}

func TestLifecycle(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		t.Logf("lifecycle on %s: %d entities %v, %d partitions", tg.Name, len(entityIDs), entityIDs, partitions)
		nodes := nodeClients(t, tg)
		var seq atomic.Int64
		var steps atomic.Int64
		start := time.Now()
		rapid.Check(t, func(rt *rapid.T) {
			h := newHarness(t, rt, tg, nodes, seq.Add(1))
			rt.Repeat(h.actions())
			h.checkAll(rt, true)
			steps.Add(int64(h.steps))
		})
		t.Logf("lifecycle on %s: %d sequences, %d steps in %v", tg.Name, seq.Load(), steps.Load(), time.Since(start).Round(time.Millisecond))
	})
}

// nodeClients returns one client per server node (every master of a
// cluster), for SCANs that must see every key.
func nodeClients(t *testing.T, tg *redistest.Target) []rueidis.Client {
	if !tg.Cluster {
		return []rueidis.Client{tg.Client}
	}
	var out []rueidis.Client
	for _, a := range tg.Addrs {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{a}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		out = append(out, c)
	}
	return out
}

// harness is one sequence: the system under test in its own namespace, and
// the model of it.
type harness struct {
	tg    *redistest.Target
	nodes []rueidis.Client
	ns    string

	es, gc    *eventstore.Store // gc: a second store, appends issued concurrently
	keys      *shred.Keys
	snaps     *snapshot.Store
	repoSnap  *aggregate.Repository[Account]
	repoPlain *aggregate.Repository[Account]

	rmVersion int // schema version of the read model being served
	rmNext    int
	model     *readmodel.Model
	rollup    *readmodel.Rollup // fed by every entity (rollup_test.go)
	runner    *runner
	runners   int

	archiveDir string

	ents       []*entity
	captures   []capture
	appends    []pastAppend
	logTrimmed bool
	notes      int
	steps      int

	rmDirty      map[int]bool // entities whose read model must be checked
	privacyDirty bool

	forged map[eventstore.Position]bool // log entries written by hand (actForge)
}

// pastAppend is an acknowledged single-stream append, for retries.
type pastAppend struct {
	ent      int
	expected eventstore.ExpectedVersion
	events   []eventstore.Event
	model    []*event
}

type runner struct {
	r      *projection.Runner
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, rt *rapid.T, tg *redistest.Target, nodes []rueidis.Client, seq int64) *harness {
	h := &harness{tg: tg, nodes: nodes, ns: fmt.Sprintf("%sq%d", tg.Namespace, seq), rmVersion: 1, rmNext: 2, rmDirty: map[int]bool{}, forged: map[eventstore.Position]bool{}}
	dir, err := os.MkdirTemp(t.TempDir(), "archive")
	if err != nil {
		rt.Fatal(err)
	}
	h.archiveDir = dir
	rt.Cleanup(h.close)
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Deposited](reg, "deposited")
	base := []eventstore.Option{eventstore.WithNamespace(h.ns), eventstore.WithRegistry(reg), eventstore.WithPartitions(partitions), eventstore.WithLogger(logger())}
	plain, err := eventstore.New(tg.Client, base...)
	if err != nil {
		rt.Fatal(err)
	}
	h.keys = shred.NewKeys(plain)
	codec := eventstore.WithCodec(shred.NewCodec(eventstore.Msgpack{}, h.keys))
	if h.es, err = eventstore.New(tg.Client, append(base, codec, eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: 1, InFlight: 1}))...); err != nil {
		rt.Fatal(err)
	}
	if h.gc, err = eventstore.New(tg.Client, append(base, codec, eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: 16, InFlight: 1}))...); err != nil {
		rt.Fatal(err)
	}
	// Runners may start before the first append: create the category they
	// follow (reads and runners never create one).
	if _, err := h.es.CreateCategory(context.Background(), category); err != nil {
		rt.Fatal(err)
	}
	// Never: snapshots are written only by the test's own delayed saves.
	if h.snaps, err = snapshot.New(h.es, snapshot.WithPolicy(snapshot.Never()), snapshot.WithLogger(logger())); err != nil {
		rt.Fatal(err)
	}
	retry := aggregate.WithRetry(aggregate.Retry{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond})
	if h.repoSnap, err = aggregate.NewRepository(h.es, accountType, aggregate.WithSnapshots(h.snaps), retry, aggregate.WithLogger(logger())); err != nil {
		rt.Fatal(err)
	}
	if h.repoPlain, err = aggregate.NewRepository(h.es, accountType, retry, aggregate.WithLogger(logger())); err != nil {
		rt.Fatal(err)
	}
	for _, id := range entityIDs {
		h.ents = append(h.ents, newEntity(id, eventstore.PartitionOf(id, partitions)))
	}
	if h.model, err = h.newModel(h.rmVersion); err != nil {
		rt.Fatal(err)
	}
	if h.rollup, err = h.newRollup(h.rmVersion); err != nil {
		rt.Fatal(err)
	}
	h.startRunner(rt)
	return h
}

func (h *harness) close() {
	h.stopRunner()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_ = h.snaps.Close(ctx)
	for _, n := range h.nodes {
		for _, k := range scanKeys(ctx, n, h.ns) {
			n.Do(ctx, n.B().Unlink().Key(k).Build())
		}
	}
}

func ctxT() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// ---- read model and runner ----

func (h *harness) newModel(v int) (*readmodel.Model, error) {
	return readmodel.New(h.tg.Client, h.ns, rmName, readmodel.WithSchemaVersion(v), readmodel.WithLoader(h.loader))
}

// loader is the cache-aside loader: the aggregate's fold.
func (h *harness) loader(ctx context.Context, id string) (readmodel.Entry, error) {
	a, err := h.repoSnap.Load(ctx, id)
	if err != nil {
		return readmodel.Entry{}, err
	}
	if a.IsNew() {
		return readmodel.Entry{}, readmodel.ErrNotFound
	}
	s := a.State()
	return readmodel.Entry{ID: id, Version: a.Version(), Fields: map[string]string{"balance": strconv.FormatInt(s.Balance, 10), "count": strconv.Itoa(s.Count)}}, nil
}

func (h *harness) projection(v int, m *readmodel.Model, ru *readmodel.Rollup) projection.Projection {
	return projection.Projection{Name: fmt.Sprintf("%s-v%d", rmName, v), Categories: []string{category},
		Handler: projection.Writes(func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error {
			switch ev.Type {
			case eventstore.DeletedType:
				if err := b.Delete(m, ev.Stream.ID, ev.Version); err != nil {
					return err
				}
				return rollupWrites(b, ru, ev, 0)
			case eventstore.ForgottenType: // nothing personal here; the version moves on
				return b.Patch(m, ev.Stream.ID, ev.Version, readmodel.SetField("forgotten", "1"))
			}
			d, ok := ev.Data.(Deposited)
			if !ok {
				return fmt.Errorf("event %s v%d: data %T", ev.Stream, ev.Version, ev.Data)
			}
			if err := b.Patch(m, ev.Stream.ID, ev.Version, readmodel.IncrBy("balance", d.Amount), readmodel.IncrBy("count", 1)); err != nil {
				return err
			}
			return rollupWrites(b, ru, ev, d.Amount)
		})}
}

func (h *harness) startRunner(rt *rapid.T) {
	h.runners++
	r, err := projection.NewRunner(h.es, h.projection(h.rmVersion, h.model, h.rollup),
		projection.WithInstanceID(fmt.Sprintf("%s-r%d", h.ns, h.runners)), projection.WithLogger(logger()),
		projection.WithWorkers(4), projection.WithBlock(500*time.Millisecond), projection.WithShutdownTimeout(5*time.Second))
	if err != nil {
		rt.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.runner = &runner{r: r, cancel: cancel, done: make(chan error, 1)}
	go func(run *runner) { run.done <- r.Run(ctx) }(h.runner)
	for i := range h.ents {
		h.rmDirty[i] = true
	}
}

func (h *harness) stopRunner() {
	if h.runner == nil {
		return
	}
	h.runner.cancel()
	select {
	case <-h.runner.done:
	case <-time.After(opTimeout):
	}
	h.runner = nil
}

// ---- events ----

func (h *harness) newEvents(rt *rapid.T, n int) ([]eventstore.Event, []*event) {
	var evs []eventstore.Event
	var ms []*event
	for range n {
		h.notes++
		amount := rapid.Int64Range(1, 9).Draw(rt, "amount")
		note := fmt.Sprintf("PII~%s~%d~", h.ns, h.notes)
		ev := eventstore.NewEvent(Deposited{Amount: amount, Note: note})
		evs = append(evs, ev)
		ms = append(ms, &event{id: ev.ID, amount: amount, note: note})
	}
	return evs, ms
}

func copies(ms []*event) []*event {
	out := make([]*event, len(ms))
	for i, m := range ms {
		c := *m
		c.forgotten = false
		out[i] = &c
	}
	return out
}

func ids(evs []eventstore.Event) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// expected draws an expected version of the given kind for e.
func (h *harness) expected(rt *rapid.T, e *entity, kind string) eventstore.ExpectedVersion {
	switch kind {
	case "exact":
		if !e.live {
			return eventstore.Exact(0)
		}
		return eventstore.Exact(e.version)
	case "exact-wrong":
		right := uint64(0)
		if e.live {
			right = e.version
		}
		cands := []uint64{right + 1, right + 3}
		if right > 0 {
			cands = append(cands, right-1)
		}
		if e.deletedAt > 1 && e.deletedAt-1 != right {
			cands = append(cands, e.deletedAt-1) // the old life's last version
		}
		return eventstore.Exact(rapid.SampledFrom(cands).Draw(rt, "wrong"))
	case "any":
		return eventstore.Any
	case "nostream":
		return eventstore.NoStream
	case "exists":
		return eventstore.StreamExists
	}
	panic(kind)
}

var expectKinds = []string{"exact", "exact-wrong", "any", "nostream", "exists"}

// checkAppend compares one stream's append outcome with the model's
// prediction and applies it to the model.
func (h *harness) checkAppend(rt *rapid.T, what string, e *entity, want expectation, res eventstore.AppendResult, err error, ms []*event) {
	rt.Helper()
	n := uint64(len(ms))
	if want.damaged {
		// A stream whose tail an operator removed: an append would leave a
		// hole no load can fold, so nothing may be written.
		var wv *eventstore.WrongVersionError
		switch {
		case errors.Is(err, eventstore.ErrStreamDamaged):
		case !want.ok && errors.As(err, &wv) && wv.Actual == want.actual:
		case want.replayed && err == nil && res.Replayed && res.Version == want.first+n-1:
		default:
			rt.Fatalf("%s: got result %+v err %v; the stream's tail was removed by hand, the model expects %s", what, res, err, want)
		}
		return
	}
	if !want.ok {
		var wv *eventstore.WrongVersionError
		if !errors.As(err, &wv) || wv.Actual != want.actual {
			rt.Fatalf("%s: got result %+v err %v; the model expects %s", what, res, err, want)
		}
		return
	}
	if err != nil {
		rt.Fatalf("%s: failed with %v; the model expects %s", what, err, want)
	}
	if res.Replayed != want.replayed || res.Version != want.first+n-1 {
		rt.Fatalf("%s: got Version %d Replayed %v; the model expects %s (last version %d)", what, res.Version, res.Replayed, want, want.first+n-1)
	}
	if want.replayed {
		return
	}
	if len(res.Positions) != len(ms) {
		rt.Fatalf("%s: %d positions for %d events", what, len(res.Positions), len(ms))
	}
	e.appended(res, ms)
}

// ---- actions ----

func (h *harness) actions() map[string]func(*rapid.T) {
	a := map[string]func(*rapid.T){
		"":                 func(rt *rapid.T) { h.steps++; h.checkAll(rt, false) },
		"append":           h.actAppend,
		"appendMulti":      h.actAppendMulti,
		"retry":            h.actRetry,
		"concurrent":       h.actConcurrent,
		"delete":           h.actDelete,
		"update":           h.actUpdate,
		"captureSnapshot":  h.actCapture,
		"saveSnapshot":     h.actSaveSnapshot,
		"retention":        h.actRetention,
		"forget":           h.actForget,
		"restartRunner":    h.actRestartRunner,
		"rebuild":          h.actRebuild,
		"expireReadModel":  h.actExpire,
		"xdelTail":         h.actXdelTail,
		"unusableSnapshot": h.actUnusableSnapshot,
		"forge":            h.actForge,
	}
	return a
}

func (h *harness) drawEntity(rt *rapid.T) (int, *entity) {
	x := rapid.IntRange(0, len(h.ents)-1).Draw(rt, "entity")
	return x, h.ents[x]
}

func (h *harness) touched(x int) {
	h.rmDirty[x] = true
	h.privacyDirty = true
}

func (h *harness) actAppend(rt *rapid.T) {
	x, e := h.drawEntity(rt)
	kind := rapid.SampledFrom(expectKinds).Draw(rt, "expected")
	exp := h.expected(rt, e, kind)
	evs, ms := h.newEvents(rt, rapid.IntRange(1, 3).Draw(rt, "events"))
	st, via := h.es, "store"
	if rapid.Bool().Draw(rt, "groupCommitStore") {
		st, via = h.gc, "group-commit store"
	}
	want := e.expect(exp, ids(evs))
	ctx, cancel := ctxT()
	defer cancel()
	res, err := st.Append(ctx, e.stream, exp, evs...)
	what := fmt.Sprintf("Append(%s, %s, %d events) via %s", e.id, exp, len(evs), via)
	rt.Logf("%s -> v%d replayed=%v err=%v (model: %s)", what, res.Version, res.Replayed, err, want)
	h.checkAppend(rt, what, e, want, res, err, ms)
	if want.ok && !want.replayed {
		h.appends = append(h.appends, pastAppend{ent: x, expected: exp, events: evs, model: ms})
	}
	h.touched(x)
}

func (h *harness) actRetry(rt *rapid.T) {
	if len(h.appends) == 0 {
		rt.Skip("nothing to retry")
	}
	p := h.appends[rapid.IntRange(0, len(h.appends)-1).Draw(rt, "append")]
	e := h.ents[p.ent]
	want := e.expect(p.expected, ids(p.events))
	ctx, cancel := ctxT()
	defer cancel()
	st, via := h.es, "store"
	if rapid.Bool().Draw(rt, "groupCommitStore") {
		st, via = h.gc, "group-commit store"
	}
	res, err := st.Append(ctx, e.stream, p.expected, p.events...)
	what := fmt.Sprintf("retry Append(%s, %s, %d events of %s) via %s", e.id, p.expected, len(p.events), p.events[0].ID, via)
	rt.Logf("%s -> v%d replayed=%v err=%v (model: %s)", what, res.Version, res.Replayed, err, want)
	// Appended again (a new life, or Any): the same ids at new versions.
	h.checkAppend(rt, what, e, want, res, err, copies(p.model))
	h.touched(p.ent)
}

// partition0 are the entities of partition 0.
func (h *harness) partition0() []int {
	var out []int
	for i, e := range h.ents {
		if e.partition == 0 {
			out = append(out, i)
		}
	}
	return out
}

func (h *harness) drawPartition0(rt *rapid.T) []int {
	p0 := h.partition0()
	picked := rapid.SliceOfNDistinct(rapid.SampledFrom(p0), 2, len(p0), rapid.ID[int]).Draw(rt, "entities")
	return picked
}

func (h *harness) actAppendMulti(rt *rapid.T) {
	picked := h.drawPartition0(rt)
	var sas []eventstore.StreamAppend
	var wants []expectation
	var mss [][]*event
	for _, x := range picked {
		e := h.ents[x]
		kind := rapid.SampledFrom([]string{"exact", "exact-wrong", "any", "nostream"}).Draw(rt, "expected")
		exp := h.expected(rt, e, kind)
		evs, ms := h.newEvents(rt, rapid.IntRange(1, 2).Draw(rt, "events"))
		sas = append(sas, eventstore.StreamAppend{Stream: e.stream, Expected: exp, Events: evs})
		wants = append(wants, e.expect(exp, ids(evs)))
		mss = append(mss, ms)
	}
	ok, damaged := true, false
	for _, w := range wants {
		ok = ok && w.ok && !w.replayed && !w.damaged
		damaged = damaged || w.damaged
	}
	ctx, cancel := ctxT()
	defer cancel()
	res, err := h.es.AppendMulti(ctx, sas...)
	what := fmt.Sprintf("AppendMulti(%s)", describeMulti(sas))
	rt.Logf("%s -> %d results err=%v (model: %v)", what, len(res), err, wants)
	if damaged {
		var wv *eventstore.WrongVersionError
		if !errors.Is(err, eventstore.ErrStreamDamaged) && !errors.As(err, &wv) {
			rt.Fatalf("%s: got %+v err %v; a stream's tail was removed by hand, the model expects ErrStreamDamaged (or WrongVersionError), nothing written: %v", what, res, err, wants)
		}
		return
	}
	if !ok {
		var wv *eventstore.WrongVersionError
		if !errors.As(err, &wv) {
			rt.Fatalf("%s: got %+v err %v; the model expects a WrongVersionError (all or nothing): %v", what, res, err, wants)
		}
		for i, sa := range sas {
			if sa.Stream == wv.Stream && (wants[i].ok || wv.Actual != wants[i].actual) {
				rt.Fatalf("%s: WrongVersionError for %s with Actual %d; the model expects %s for it", what, wv.Stream, wv.Actual, wants[i])
			}
		}
		return
	}
	if err != nil || len(res) != len(sas) {
		rt.Fatalf("%s: got %d results err %v; the model expects success: %v", what, len(res), err, wants)
	}
	for i, x := range picked {
		h.checkAppend(rt, what, h.ents[x], wants[i], res[i], nil, mss[i])
		h.touched(x)
	}
}

func describeMulti(sas []eventstore.StreamAppend) string {
	s := ""
	for i, sa := range sas {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s@%s×%d", sa.Stream.ID, sa.Expected, len(sa.Events))
	}
	return s
}

// actConcurrent issues appends to distinct entities of one partition at
// once through the group-commit store, so that they can share a script
// call: each caller must get its own true outcome.
func (h *harness) actConcurrent(rt *rapid.T) {
	picked := h.drawPartition0(rt)
	type call struct {
		x    int
		exp  eventstore.ExpectedVersion
		evs  []eventstore.Event
		ms   []*event
		want expectation
		res  eventstore.AppendResult
		err  error
	}
	calls := make([]*call, len(picked))
	for i, x := range picked {
		e := h.ents[x]
		exp := h.expected(rt, e, rapid.SampledFrom(expectKinds).Draw(rt, "expected"))
		evs, ms := h.newEvents(rt, rapid.IntRange(1, 2).Draw(rt, "events"))
		calls[i] = &call{x: x, exp: exp, evs: evs, ms: ms, want: e.expect(exp, ids(evs))}
	}
	ctx, cancel := ctxT()
	defer cancel()
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			c.res, c.err = h.gc.Append(ctx, h.ents[c.x].stream, c.exp, c.evs...)
		}()
	}
	close(gate)
	wg.Wait()
	for _, c := range calls {
		e := h.ents[c.x]
		what := fmt.Sprintf("concurrent Append(%s, %s, %d events) via group-commit store", e.id, c.exp, len(c.evs))
		rt.Logf("%s -> v%d replayed=%v err=%v (model: %s)", what, c.res.Version, c.res.Replayed, c.err, c.want)
	}
	for _, c := range calls {
		e := h.ents[c.x]
		what := fmt.Sprintf("concurrent Append(%s, %s, %d events) via group-commit store", e.id, c.exp, len(c.evs))
		h.checkAppend(rt, what, e, c.want, c.res, c.err, c.ms)
		if c.want.ok && !c.want.replayed {
			h.appends = append(h.appends, pastAppend{ent: c.x, expected: c.exp, events: c.evs, model: c.ms})
		}
		h.touched(c.x)
	}
}

func (h *harness) actDelete(rt *rapid.T) {
	x, e := h.drawEntity(rt)
	kind := rapid.SampledFrom([]string{"any", "exact", "exact-wrong"}).Draw(rt, "expected")
	exp := h.expected(rt, e, kind)
	ctx, cancel := ctxT()
	defer cancel()
	res, err := h.es.Delete(ctx, e.stream, exp)
	what := fmt.Sprintf("Delete(%s, %s)", e.id, exp)
	rt.Logf("%s -> v%d err=%v (live=%v version=%d)", what, res.Version, err, e.live, e.version)
	switch {
	case exp == eventstore.NoStream: // Exact(0): refused, a delete needs a stream
		if !errors.Is(err, eventstore.ErrInvalidEvent) {
			rt.Fatalf("%s: got %+v err %v; want ErrInvalidEvent (NoStream makes no sense for a delete)", what, res, err)
		}
		return
	case !e.live:
		if !errors.Is(err, eventstore.ErrStreamNotFound) {
			rt.Fatalf("%s of a stream that is not live: got %+v err %v; want ErrStreamNotFound", what, res, err)
		}
		return
	case exp >= 0 && uint64(exp) != e.version:
		var wv *eventstore.WrongVersionError
		if !errors.As(err, &wv) || wv.Actual != e.version {
			rt.Fatalf("%s: got %+v err %v; want WrongVersionError{Actual: %d}", what, res, err, e.version)
		}
		return
	}
	if err != nil || res.Version != e.version+1 || len(res.Positions) != 1 {
		rt.Fatalf("%s: got %+v err %v; want the marker at v%d", what, res, err, e.version+1)
	}
	e.deleted(res)
	h.touched(x)
}

func (h *harness) actUpdate(rt *rapid.T) {
	x, e := h.drawEntity(rt)
	withSnaps := rapid.Bool().Draw(rt, "withSnapshots")
	repo := h.repoPlain
	if withSnaps {
		repo = h.repoSnap
	}
	_, ms := h.newEvents(rt, 1)
	m := ms[0]
	ctx, cancel := ctxT()
	defer cancel()
	a, err := repo.Update(ctx, e.id, func(a *aggregate.Aggregate[Account]) error {
		a.Raise(Deposited{Amount: m.amount, Note: m.note})
		return nil
	})
	what := fmt.Sprintf("Repository.Update(%s, +%d) snapshots=%v", e.id, m.amount, withSnaps)
	if e.updateRefused(withSnaps) {
		rt.Logf("%s -> err=%v (model: history gap)", what, err)
		// A tail removed by hand may also be reported by the store itself.
		damaged := e.xdeled[e.version] && errors.Is(err, eventstore.ErrStreamDamaged)
		if !errors.Is(err, aggregate.ErrHistoryGap) && !damaged {
			rt.Fatalf("%s: got err %v; the model expects aggregate.ErrHistoryGap (info %+v, snapshot %+v, load %+v)", what, err, e.info(), e.snap, e.load(withSnaps))
		}
		return
	}
	next := e.start
	if e.live {
		next = e.version + 1
	}
	if err != nil {
		rt.Fatalf("%s: %v; the model expects v%d", what, err, next)
	}
	rt.Logf("%s -> v%d (model: v%d)", what, a.Version(), next)
	if a.Version() != next {
		rt.Fatalf("%s: aggregate at v%d; the model expects v%d", what, a.Version(), next)
	}
	// Read the event back for its id and log position.
	var rec *eventstore.RecordedEvent
	for ev, err := range h.es.Read(ctx, e.stream, next, eventstore.Limit(1)) {
		if err != nil {
			rt.Fatalf("%s: read back v%d: %v", what, next, err)
		}
		rec = &ev
	}
	if rec == nil || rec.Version != next {
		rt.Fatalf("%s: v%d not in the stream after the update", what, next)
	}
	m.id = rec.ID
	e.appended(eventstore.AppendResult{Stream: e.stream, Partition: e.partition, Version: next, Positions: []eventstore.Position{rec.Position}}, []*event{m})
	if st := a.State(); !slices.Contains(e.folds(), st) {
		rt.Fatalf("%s: state after update %+v; the model's fold %+v", what, st, e.folds())
	}
	h.touched(x)
}

func (h *harness) actCapture(rt *rapid.T) {
	x, e := h.drawEntity(rt)
	if !e.live {
		rt.Skip("not live")
	}
	c := capture{ent: x, version: e.version, life: e.start, state: e.fold(e.version, nil), forgetEpoch: e.forgets}
	rt.Logf("capture snapshot of %s at v%d (life from v%d): %+v", e.id, c.version, c.life, c.state)
	h.captures = append(h.captures, c)
}

func (h *harness) actSaveSnapshot(rt *rapid.T) {
	if len(h.captures) == 0 {
		rt.Skip("no capture")
	}
	i := rapid.IntRange(0, len(h.captures)-1).Draw(rt, "capture")
	c := h.captures[i]
	e := h.ents[c.ent]
	stale := !e.live || c.life != e.start || c.version <= e.snapFloor
	h.captures = slices.Delete(h.captures, i, i+1)
	state, err := eventstore.Msgpack{}.Marshal(&c.state)
	if err != nil {
		rt.Fatal(err)
	}
	ctx, cancel := ctxT()
	defer cancel()
	wrote, err := h.snaps.Save(ctx, e.stream, snapshot.Snapshot{Version: c.version, SchemaVersion: stateVersion, State: state})
	want := e.saveSnapshot(snap{version: c.version, schema: stateVersion, life: c.life, state: c.state})
	what := fmt.Sprintf("snapshot.Save(%s, v%d captured in the life from v%d)", e.id, c.version, c.life)
	rt.Logf("%s -> wrote=%v err=%v (model: write=%v; stale=%v)", what, wrote, err, want, stale)
	if want && (err != nil || !wrote) {
		rt.Fatalf("%s: wrote=%v err=%v; the model expects it written", what, wrote, err)
	}
	if !want && wrote {
		rt.Fatalf("%s: written; the model expects it refused (stale=%v, stored %+v)", what, stale, e.snap)
	}
	if stale && !errors.Is(err, snapshot.ErrStale) {
		rt.Fatalf("%s: wrote=%v err=%v; the model expects snapshot.ErrStale (stream live=%v, life from v%d, version %d, snapshot floor %d)", what, wrote, err, e.live, e.start, e.version, e.snapFloor)
	}
	if !stale && err != nil {
		rt.Fatalf("%s: %v", what, err)
	}
	h.privacyDirty = true
}

// actUnusableSnapshot stores a snapshot of another schema (a state type
// changed since): loads ignore it, truncation with SnapshotSchema 0 trusts it.
func (h *harness) actUnusableSnapshot(rt *rapid.T) {
	_, e := h.drawEntity(rt)
	if !e.live {
		rt.Skip("not live")
	}
	ctx, cancel := ctxT()
	defer cancel()
	wrote, err := h.snaps.Save(ctx, e.stream, snapshot.Snapshot{Version: e.version, SchemaVersion: 99, State: []byte{0xc1}})
	want := e.saveSnapshot(snap{version: e.version, schema: 99, life: e.start})
	rt.Logf("snapshot.Save(%s, v%d, schema 99) -> wrote=%v err=%v (model: %v)", e.id, e.version, wrote, err, want)
	stale := e.version <= e.snapFloor // taken before a Forget
	if wrote != want || (stale && !errors.Is(err, snapshot.ErrStale)) || (!stale && err != nil) {
		rt.Fatalf("snapshot.Save(%s, v%d, schema 99): wrote=%v err=%v; the model expects wrote=%v stale=%v (snapshot floor %d)", e.id, e.version, wrote, err, want, stale, e.snapFloor)
	}
}

func (h *harness) actRetention(rt *rapid.T) {
	p := retention.Policy{Category: category}
	if rapid.Bool().Draw(rt, "truncate") {
		p.Truncate = true
		p.TruncateKeep = rapid.IntRange(0, 2).Draw(rt, "keep")
		p.SnapshotSchema = rapid.SampledFrom([]int{0, stateVersion}).Draw(rt, "snapshotSchema")
	}
	if rapid.Bool().Draw(rt, "compact") {
		p.CompactIdle = time.Nanosecond
	}
	if rapid.Bool().Draw(rt, "trimLogs") {
		p.LogMaxLen = int64(rapid.IntRange(1, 3).Draw(rt, "logMaxLen"))
	}
	archive := p.Truncate && rapid.Bool().Draw(rt, "archive")
	if !p.Truncate && p.CompactIdle == 0 && p.LogMaxLen == 0 {
		rt.Skip("empty policy")
	}
	opts := []retention.Option{retention.WithSnapshots(h.snaps), retention.WithLogger(logger())}
	if archive {
		opts = append(opts, retention.WithArchiver(&retention.FileArchiver{Dir: h.archiveDir}))
	}
	r, err := retention.New(h.es, []retention.Policy{p}, opts...)
	if err != nil {
		rt.Fatalf("retention.New(%+v): %v", p, err)
	}
	ctx, cancel := ctxT()
	defer cancel()
	rep, err := r.Apply(ctx, false)
	rt.Logf("retention %+v archive=%v -> truncated %d, compacted %d, logs %d, skipped %v, err=%v", p, archive, len(rep.Truncated), len(rep.Compacted), len(rep.Logs), rep.Skipped, err)
	if err != nil {
		rt.Fatalf("retention %+v: %v", p, err)
	}
	if p.Truncate {
		for _, e := range h.ents {
			e.truncate(p.TruncateKeep, p.SnapshotSchema)
		}
	}
	if p.LogMaxLen > 0 {
		h.logTrimmed = true
	}
	h.privacyDirty = true
}

func (h *harness) actForget(rt *rapid.T) {
	x, e := h.drawEntity(rt)
	ctx, cancel := ctxT()
	defer cancel()
	res, err := h.keys.Forget(ctx, e.stream)
	rt.Logf("Forget(%s) -> v%d err=%v", e.id, res.Version, err)
	if e.live && e.xdeled[e.version] && errors.Is(err, eventstore.ErrStreamDamaged) {
		// F5: the key is gone, but no $forgotten event can be appended.
		e.forget()
		h.touched(x)
		return
	}
	if err != nil {
		rt.Fatalf("Forget(%s): %v", e.id, err)
	}
	e.forget()
	// A live stream gets a $forgotten event, for projections.
	if !e.live {
		if res.Version != 0 {
			rt.Fatalf("Forget(%s) of a stream that is not live appended v%d", e.id, res.Version)
		}
	} else {
		if res.Version != e.version+1 || res.Replayed || len(res.Positions) != 1 {
			rt.Fatalf("Forget(%s): appended %+v; the model expects the $forgotten event at v%d", e.id, res, e.version+1)
		}
		var rec *eventstore.RecordedEvent
		for ev, err := range h.es.Read(ctx, e.stream, res.Version, eventstore.Limit(1)) {
			if err != nil {
				rt.Fatalf("Forget(%s): read back v%d: %v", e.id, res.Version, err)
			}
			rec = &ev
		}
		if rec == nil || rec.Type != eventstore.ForgottenType {
			rt.Fatalf("Forget(%s): v%d is %+v, not a $forgotten event", e.id, res.Version, rec)
		}
		e.appended(res, []*event{{id: rec.ID, forgetEv: true}})
	}
	h.touched(x)
}

func (h *harness) actRestartRunner(rt *rapid.T) {
	rt.Logf("restart runner of %s-v%d", rmName, h.rmVersion)
	h.stopRunner()
	h.startRunner(rt)
}

func (h *harness) actRebuild(rt *rapid.T) {
	var truncated []string
	for _, e := range h.ents {
		if e.live && e.truncated() {
			truncated = append(truncated, e.id)
		}
	}
	v := h.rmNext
	h.rmNext++
	m, err := h.newModel(v)
	if err != nil {
		rt.Fatal(err)
	}
	ru, err := h.newRollup(v)
	if err != nil {
		rt.Fatal(err)
	}
	ctx, cancel := ctxT()
	defer cancel()
	p := h.projection(v, m, ru)
	st, err := projection.Rebuild(ctx, h.es, p, 2)
	rt.Logf("Rebuild(%s) -> %+v err=%v (truncated: %v)", p.Name, st, err, truncated)
	if len(truncated) > 0 {
		var ie *projection.IncompleteHistoryError
		if !errors.As(err, &ie) || !slices.Contains(truncated, ie.Stream.ID) {
			rt.Fatalf("Rebuild(%s) with truncated entities %v: err %v; want an IncompleteHistoryError naming one of them", p.Name, truncated, err)
		}
		return // keep serving the old version
	}
	if err != nil {
		rt.Fatalf("Rebuild(%s): %v", p.Name, err)
	}
	h.stopRunner()
	h.model, h.rollup, h.rmVersion = m, ru, v
	h.startRunner(rt)
}

// actExpire removes a read-model entry as its TTL would (DEL, or PEXPIRE
// and wait until it is gone): the Loader must rebuild it, and patches must
// not build it from an empty state.
func (h *harness) actExpire(rt *rapid.T) {
	x, e := h.drawEntity(rt)
	key := h.model.Key(e.id)
	c := h.tg.Client
	ctx, cancel := ctxT()
	defer cancel()
	if rapid.Bool().Draw(rt, "del") {
		c.Do(ctx, c.B().Del().Key(key).Build())
		rt.Logf("DEL read model %s", key)
	} else {
		c.Do(ctx, c.B().Pexpire().Key(key).Milliseconds(1).Build())
		rt.Logf("PEXPIRE read model %s 1ms", key)
		for {
			n, err := c.Do(ctx, c.B().Exists().Key(key).Build()).AsInt64()
			if err != nil {
				rt.Fatalf("EXISTS %s: %v", key, err)
			}
			if n == 0 {
				break
			}
			time.Sleep(2 * time.Millisecond) // awaiting the expiry, bounded by ctx
		}
	}
	h.rmDirty[x] = true
}

// actXdelTail removes a stream's last entry by hand, as an operator would
// remove a bad event. Its version stays consumed.
func (h *harness) actXdelTail(rt *rapid.T) {
	x, e := h.drawEntity(rt)
	if !e.live || !e.stored(e.version) {
		rt.Skip("no stored tail")
	}
	key := h.es.Keys().Stream(e.stream, e.partition)
	c := h.tg.Client
	ctx, cancel := ctxT()
	defer cancel()
	n, err := c.Do(ctx, c.B().Xdel().Key(key).Id(fmt.Sprintf("%d-0", e.version)).Build()).AsInt64()
	rt.Logf("XDEL %s %d-0 -> %d err=%v", key, e.version, n, err)
	if err != nil || n != 1 {
		rt.Fatalf("XDEL %s %d-0: %d %v", key, e.version, n, err)
	}
	e.xdeled[e.version] = true
	h.touched(x)
}
