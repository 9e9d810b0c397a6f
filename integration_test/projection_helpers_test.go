package integration_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
)

// tickAmount is the deterministic payload of event v of entity id, so the
// expected fold is known without keeping the events.
func tickAmount(id string, v uint64) int64 {
	h := int64(0)
	for _, c := range id {
		h = h*31 + int64(c)
	}
	return (h+int64(v)*7919)%1000 + 1
}

func tickSum(id string, n uint64) int64 {
	var s int64
	for v := uint64(1); v <= n; v++ {
		s += tickAmount(id, v)
	}
	return s
}

// tickFold is the read model of the projection tests: per entity, the
// number of events applied ("n") and the sum of their amounts ("sum"),
// version-guarded. Anything but a Tick is a permanent failure.
func tickFold(m *readmodel.Model) projection.HandlerFunc {
	return func(ctx context.Context, ev eventstore.RecordedEvent) error {
		d, ok := ev.Data.(Tick)
		if !ok {
			return projection.Permanent(fmt.Errorf("unexpected event %q (%T)", ev.Type, ev.Data))
		}
		_, err := m.Patch(ctx, ev.Stream.ID, ev.Version, readmodel.IncrBy("n", 1), readmodel.IncrBy("sum", d.N))
		return err
	}
}

func newReadModel(t testing.TB, c rueidis.Client, ns, name string) *readmodel.Model {
	t.Helper()
	m, err := readmodel.New(c, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkTickFold compares every entity's entry with the fold of its want[id]
// events. It returns the events missing and applied more than once.
func checkTickFold(t testing.TB, c rueidis.Client, m *readmodel.Model, want map[string]uint64) (lost, doubled int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	bad := 0
	for _, id := range ids {
		kv, err := c.Do(ctx, c.B().Hgetall().Key(m.Key(id)).Build()).AsStrMap()
		if err != nil {
			t.Fatalf("read model %s: %v", id, err)
		}
		n, _ := strconv.ParseUint(kv["n"], 10, 64)
		sum, _ := strconv.ParseInt(kv["sum"], 10, 64)
		v, _ := strconv.ParseUint(kv["_v"], 10, 64)
		w := want[id]
		if n < w {
			lost += int(w - n)
		} else {
			doubled += int(n - w)
		}
		if n != w || v != w || sum != tickSum(id, w) {
			bad++
			if bad <= 5 {
				t.Errorf("%s: n=%d v=%d sum=%d, want n=v=%d sum=%d", id, n, v, sum, w, tickSum(id, w))
			}
		}
	}
	return lost, doubled
}

// feeder appends tickAmount events, one per call, to entities prefix0..N-1
// from several goroutines (each owns its entities). A failed call has an
// unknown outcome: it is retried with the same event and expected version,
// which the store answers as a replay if the first call was applied.
type feeder struct {
	store    *eventstore.Store
	category string
	prefix   string
	workers  int
	entities int // per worker
	timeout  time.Duration

	acked     atomic.Int64
	errs      atomic.Int64
	conflicts atomic.Int64 // WrongVersion: acknowledged events lost by the store

	mu       sync.Mutex
	versions map[string]uint64               // acknowledged version per entity
	last     map[int]eventstore.AppendResult // highest position per partition
}

func (f *feeder) run(stop <-chan struct{}, drain time.Duration) int {
	f.mu.Lock()
	f.versions, f.last = map[string]uint64{}, map[int]eventstore.AppendResult{}
	f.mu.Unlock()
	var left atomic.Int64
	var wg sync.WaitGroup
	for g := range f.workers {
		wg.Go(func() { left.Add(int64(f.worker(g, stop, drain))) })
	}
	wg.Wait()
	return int(left.Load())
}

func (f *feeder) worker(g int, stop <-chan struct{}, drain time.Duration) int {
	type entity struct {
		id      string
		version uint64
		pending *eventstore.Event
	}
	ents := make([]*entity, f.entities)
	for i := range ents {
		ents[i] = &entity{id: fmt.Sprintf("%s%d-%d", f.prefix, g, i)}
	}
	return driveEntities(stop, drain, len(ents), func(x int) bool { return ents[x].pending != nil }, func(i, x int) {
		e := ents[x]
		if e.pending == nil {
			ev := eventstore.NewEvent(Tick{N: tickAmount(e.id, e.version+1)})
			e.pending = &ev
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		res, err := f.store.Append(ctx, eventstore.Stream(f.category, e.id), eventstore.Exact(e.version), *e.pending)
		cancel()
		var wv *eventstore.WrongVersionError
		switch {
		case err == nil:
			e.version, e.pending = res.Version, nil
			f.acked.Add(1)
			f.mu.Lock()
			f.versions[e.id] = res.Version
			if cur, ok := f.last[res.Partition]; !ok || cur.LastPosition().Compare(res.LastPosition()) < 0 {
				f.last[res.Partition] = res
			}
			f.mu.Unlock()
		case errors.As(err, &wv):
			f.conflicts.Add(1)
			e.version, e.pending = wv.Actual, nil
			f.mu.Lock()
			f.versions[e.id] = wv.Actual
			f.mu.Unlock()
		default:
			f.errs.Add(1)
			time.Sleep(time.Duration(5+i%10) * time.Millisecond) // the server is down or busy
		}
	})
}

func (f *feeder) snapshot() (map[string]uint64, []eventstore.AppendResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var last []eventstore.AppendResult
	for _, r := range f.last {
		last = append(last, r)
	}
	return maps.Clone(f.versions), last
}

// logCounter is a slog.Handler that counts the runner's warnings and errors
// by message (and keeps a few of their errors), so a test can bound them.
type logCounter struct {
	mu    sync.Mutex
	byMsg map[string]int
	errs  []string
	total atomic.Int64
	echo  *slog.Logger // optional: also log here
}

func newLogCounter() *logCounter { return &logCounter{byMsg: map[string]int{}} }

func (l *logCounter) logger() *slog.Logger { return slog.New(l) }

func (l *logCounter) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }

func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.total.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byMsg[strings.TrimPrefix(r.Message, "projection: ")]++
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" && len(l.errs) < 200 {
			l.errs = append(l.errs, a.Value.String())
		}
		return true
	})
	return nil
}

func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }

func (l *logCounter) kinds() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.byMsg) == 0 {
		return "none"
	}
	var parts []string
	for k, n := range l.byMsg {
		parts = append(parts, fmt.Sprintf("%q:%d", k, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byMsg[msg]
}

func (l *logCounter) errorsContaining(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.errs {
		if strings.Contains(e, s) {
			out = append(out, e)
		}
	}
	return out
}

// startRunner runs r until the returned stop is called (also at cleanup);
// stop reports Run's error. exited is closed if Run returns by itself.
func startRunner(t testing.TB, r *projection.Runner) (stop func() error, exited <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = r.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("runner %s did not stop", r.Instance())
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop, done
}

// deadLetterCount sums the dead letters of name over the categories.
func deadLetterCount(ctx context.Context, store *eventstore.Store, name string, cats ...string) (int64, error) {
	st, err := projection.Status(ctx, store, name, cats...)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range st {
		n += p.DeadLetters
	}
	return n, nil
}

// gateProxy forwards TCP to a Redis and can stop forwarding in both
// directions (Pause), like a frozen process or a stalled network would: the
// connections stay open, nothing arrives. Only for one standalone node.
type gateProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	closed atomic.Bool
	conns  []net.Conn
}

func newGateProxy(t testing.TB, target string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *gateProxy) Addr() string { return p.ln.Addr().String() }

func (p *gateProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *gateProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.paused && !p.closed.Load() {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: dst is closed by the defer
		}
	}
}

func (p *gateProxy) Pause() { p.mu.Lock(); p.paused = true; p.mu.Unlock() }

func (p *gateProxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *gateProxy) close() {
	p.closed.Store(true)
	p.Resume()
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}
