package projection

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/refusal"
)

var (
	//go:embed lua/lease.lua
	leaseLua string
	//go:embed lua/read.lua
	readLua string
	//go:embed lua/claim.lua
	claimLua string
	//go:embed lua/deadletter.lua
	deadLetterLua string
	//go:embed lua/members.lua
	membersLua string
	//go:embed lua/status.lua
	statusLua string
)

// scripts are stateless; each Runner (and DeadLetters) holds its own set.
// Calls Redis refuses without running them are retried (see script).
type scripts struct {
	lease, read, claim, deadLetter, members script
}

// The maintenance round's scripts (lease, claim, members) give up after a
// quarter of the lease TTL, so that one refused partition does not hold up
// the renewal of the others. A partition's own reads and dead-letter writes
// wait up to the whole TTL: nothing else of that partition can progress
// meanwhile, and a slot migration on a busy machine can refuse its keys for
// longer than a quarter TTL (878 ms seen with a 2 s TTL).
func newScripts(leaseTTL time.Duration) scripts {
	short := leaseTTL / 4
	return scripts{
		lease:      newScript(leaseLua, short),
		read:       newScript(readLua, leaseTTL),
		claim:      newScript(claimLua, short),
		deadLetter: newScript(deadLetterLua, leaseTTL),
		members:    newScript(membersLua, short),
	}
}

// unit is one partition of one category.
type unit struct {
	cat string
	p   int
}

// Runner runs one projection in this process: it competes with the
// projection's other instances for partition leases, reads the partitions it
// holds through the projection's consumer groups and hands the events to
// the handler. Create it with NewRunner, start it with Run.
type Runner struct {
	store   *eventstore.Store
	client  rueidis.Client
	proj    Projection
	handler Handler
	batch   BatchHandler // p.Handler when it is one (see BatchHandler)
	opts    options
	tel     telemetry
	keys    keys
	sc      scripts
	log     *slog.Logger

	running atomic.Bool

	mu    sync.Mutex
	units []unit
	parts map[unit]*partition

	workers []chan task

	// acked is closed and replaced whenever acks reach Redis (WaitFor).
	ackMu sync.Mutex
	acked chan struct{}

	// Healing a Redis that lost the projection's state (see heal).
	healMu     sync.Mutex
	healWarned time.Time   // last WARN of a heal
	healWanted atomic.Bool // a partition found its lease state lost
	failOnce   sync.Once
	failed     chan struct{} // closed by fail: Run stops and returns failErr
	failErr    error

	warns    warnLimiter
	lastHeld []unit // maintain's goroutine only: see logHeld
}

// NewRunner returns a runner of p over store.
func NewRunner(store *eventstore.Store, p Projection, opts ...Option) (*Runner, error) {
	if store == nil {
		return nil, invalid("nil store")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	h := Chain(Chain(p.Handler, Recover()), o.middleware...)
	bh, _ := p.Handler.(BatchHandler)
	r := &Runner{
		store:   store,
		client:  store.Client(),
		proj:    p,
		handler: h,
		batch:   bh,
		opts:    o,
		keys:    keys{ks: store.Keys(), name: p.Name},
		sc:      newScripts(o.leaseTTL),
		log:     o.logger.With("projection", p.Name, "instance", o.instance),
		parts:   map[unit]*partition{},
		acked:   make(chan struct{}),
	}
	if err := r.tel.init(r, o); err != nil {
		return nil, err
	}
	return r, nil
}

// Instance returns this runner's instance id.
func (r *Runner) Instance() string { return r.opts.instance }

// Projection returns the projection the runner runs.
func (r *Runner) Projection() Projection { return r.proj }

// Run runs the projection until ctx ends, then stops gracefully: it stops
// reading, lets in-flight events finish (bounded by WithShutdownTimeout),
// acks them and releases its leases, and returns nil. A category that does
// not exist yet is waited for (one WARN names the known ones): the runner
// starts on it once an append (or Store.CreateCategory) creates it, and
// never creates one itself. It returns an error when it cannot start (Redis
// unreachable), and a *StateLostError, after the same
// graceful stop, when Redis lost the projection's state and the runner
// cannot recreate it (see the package doc, "An emptied Redis").
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	r.failOnce, r.failed, r.failErr = sync.Once{}, make(chan struct{}), nil
	units, err := r.setup(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for a category
		}
		return err
	}
	r.mu.Lock()
	r.units = units
	r.mu.Unlock()
	r.lastHeld = nil
	r.log.Info("projection: runner started", "categories", strings.Join(r.proj.Categories, ","), "partitions", len(units),
		"workers", r.opts.workers, "lease_ttl", r.opts.leaseTTL)

	r.workers = make([]chan task, r.opts.workers)
	var wg sync.WaitGroup
	for i := range r.workers {
		ch := make(chan task, 64)
		r.workers[i] = ch
		wg.Go(func() {
			for t := range ch {
				t.run()
			}
		})
	}

	defer r.tel.observe(r)()
	tick := time.NewTicker(maintainEvery(r.opts.leaseTTL))
	defer tick.Stop()
	r.maintain(ctx)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-r.failed:
		case <-tick.C:
			r.maintain(ctx)
		}
	}

	// Graceful stop: every partition finishes, acks and releases; then the
	// workers (whose queues are empty by then) end.
	r.mu.Lock()
	parts := make([]*partition, 0, len(r.parts))
	for _, p := range r.parts {
		parts = append(parts, p)
	}
	r.mu.Unlock()
	for _, p := range parts {
		p.requestStop()
	}
	for _, p := range parts {
		<-p.done
	}
	for _, ch := range r.workers {
		close(ch)
	}
	wg.Wait()
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = r.sc.members.Exec(bg, r.client, []string{r.keys.members()}, []string{r.opts.instance, "0"}).Error()
	r.mu.Lock()
	r.parts = map[unit]*partition{}
	r.mu.Unlock()
	select {
	case <-r.failed:
		return r.failErr
	default:
		return nil
	}
}

// fail makes Run stop gracefully and return err (the first one).
func (r *Runner) fail(err error) {
	r.failOnce.Do(func() {
		r.failErr = err
		r.log.Error("projection: stopping", "err", err)
		close(r.failed)
	})
}

// setup resolves the partitions of the categories and creates the consumer
// groups, BUSYGROUP-safe.
func (r *Runner) setup(ctx context.Context) ([]unit, error) {
	var units []unit
	start := "0"
	if r.opts.start == FromNow {
		start = "$"
	}
	for _, cat := range r.proj.Categories {
		n, err := r.partitions(ctx, cat)
		if err != nil {
			return nil, fmt.Errorf("projection %s: %w", r.proj.Name, err)
		}
		cmds := make(rueidis.Commands, 0, n)
		for p := range n {
			cmds = append(cmds, r.client.B().XgroupCreate().Key(r.keys.ks.Log(cat, p)).Group(r.proj.Name).Id(start).Mkstream().Build())
			units = append(units, unit{cat, p})
		}
		for i, res := range r.client.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil && !isBusyGroup(err) {
				return nil, fmt.Errorf("projection %s: create group on %s/%d: %w", r.proj.Name, cat, i, err)
			}
		}
	}
	return units, nil
}

// partitions returns the partition count of cat, waiting for the category
// to be created when it does not exist yet: a projection deployed before the
// first event of its category (a fresh system) starts when that event comes,
// and the runner never creates a category itself (only an append or
// Store.CreateCategory does). Waiting logs one WARN naming the categories
// that exist, so that a mistyped one is seen. It returns ctx's error when
// ctx ends first.
func (r *Runner) partitions(ctx context.Context, cat string) (int, error) {
	warned := false
	wait := 50 * time.Millisecond
	for {
		n, err := r.store.Partitions(ctx, cat)
		var uc *eventstore.UnknownCategoryError
		if !errors.As(err, &uc) {
			return n, err
		}
		if !warned {
			r.log.Warn("projection: waiting for its category to be created by a first append (or Store.CreateCategory); is the name right?",
				"category", cat, "known", uc.Known)
			warned = true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func isBusyGroup(err error) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "BUSYGROUP")
}

// isNoGroup reports Redis' refusal of a group command (in a script, too)
// because the log or its consumer group does not exist.
func isNoGroup(err error) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re) && strings.Contains(re.Error(), "NOGROUP")
}

// healQuiet is how long after a heal's WARN further heals (the other
// partitions noticing the same loss) stay at INFO.
const healQuiet = 10 * time.Second

// Causes of a heal.
const (
	causeLeaseLost = "lease state lost"
	causeNoGroup   = "consumer group missing"
)

// heal recreates what Redis lost of the projection's state: every missing
// consumer group of the runner's partitions is created again at the start
// of its log (whatever WithStart says: what the lost group had delivered is
// unknown, so everything still in the log is delivered again, and the
// version guard skips what was applied); leases are re-acquired by
// maintain as for free partitions. Called when a partition finds its group
// missing (NOGROUP) or its lease state gone with the fence counter (lost).
// One WARN per loss (healQuiet). A refusal by Redis other than a
// connection failure, or a category whose partition count no longer
// matches the runner's, cannot be healed here: Run stops with a
// *StateLostError.
func (r *Runner) heal(ctx context.Context, why string) error {
	r.healMu.Lock()
	defer r.healMu.Unlock()
	r.mu.Lock()
	units := r.units
	r.mu.Unlock()
	counts := map[string]int{}
	for _, u := range units {
		counts[u.cat]++
	}
	for cat, want := range counts {
		// The store writes a lost count again on its next append; a
		// different count written meanwhile by another process routes
		// entities to partitions this runner does not read.
		n, err := r.store.Partitions(ctx, cat)
		if err != nil {
			return err // Redis unreachable: the next heal tries again
		}
		if n != want {
			err := &StateLostError{Projection: r.proj.Name, Reason: fmt.Sprintf(
				"category %s now has %d partitions in Redis, the runner reads %d: restart the runner", cat, n, want)}
			r.fail(err)
			return err
		}
	}
	cmds := make(rueidis.Commands, len(units))
	for i, u := range units {
		cmds[i] = r.client.B().XgroupCreate().Key(r.keys.ks.Log(u.cat, u.p)).Group(r.proj.Name).Id("0").Mkstream().Build()
	}
	created := 0
	for i, res := range r.client.DoMulti(ctx, cmds...) {
		err := res.Error()
		switch {
		case err == nil:
			created++
		case isBusyGroup(err):
		default:
			if _, redisErr := rueidis.IsRedisErr(err); !redisErr || refusal.Is(err) {
				return err // not reached Redis, or refused for now: the next heal tries again
			}
			err := &StateLostError{Projection: r.proj.Name, Reason: fmt.Sprintf("recreate group on %s/%d", units[i].cat, units[i].p), Err: err}
			r.fail(err)
			return err
		}
	}
	if created == 0 && why != causeLeaseLost {
		return nil // recreated meanwhile, by another partition or instance
	}
	if time.Since(r.healWarned) > max(healQuiet, 2*r.opts.leaseTTL) {
		r.healWarned = time.Now()
		r.log.Warn("projection: Redis lost this projection's state (emptied, or restarted without persistence?); recreated it: consumer groups from the start of their logs, leases taken again",
			"cause", why, "groups_recreated", created, "partitions", len(units))
	} else {
		r.log.Info("projection: recreated lost state", "cause", why, "groups_recreated", created)
	}
	return nil
}

// maintainEvery is the maintenance period: TTL/3, at most a second, so that
// partitions handed back by an instance that stops gracefully are taken by
// the others within about a second (at TTL/3 = 3.3 s by default, writes to
// them waited that long to be applied).
func maintainEvery(ttl time.Duration) time.Duration { return min(ttl/3, time.Second) }

// maintain runs every maintainEvery: heartbeat, lease renewal, reaping of stopped
// partitions, and rebalancing (each live instance aims at its fair share
// of the partitions, ceil(partitions/instances)).
func (r *Runner) maintain(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	ttl := r.opts.leaseTTL
	live, err := r.sc.members.Exec(ctx, r.client, []string{r.keys.members()},
		[]string{r.opts.instance, fmt.Sprint(ttl.Milliseconds())}).AsInt64()
	heartbeat := err
	if err != nil && ctx.Err() == nil {
		r.warns.warn(r.log, "heartbeat", "projection: heartbeat failed; taking no partition until it succeeds", "err", err)
	}
	if live < 1 {
		live = 1
	}
	defer r.logHeld(live)

	r.mu.Lock()
	var held []*partition
	for u, p := range r.parts {
		select {
		case <-p.done:
			delete(r.parts, u)
			continue
		default:
		}
		if !p.stopping() {
			held = append(held, p)
		}
	}
	units := r.units
	r.mu.Unlock()

	r.renew(ctx, held)
	if r.healWanted.Swap(false) {
		// Before acquiring: the partitions taken next find their groups.
		if err := r.heal(ctx, causeLeaseLost); err != nil {
			r.healWanted.Store(true)
			if ctx.Err() == nil {
				r.log.Warn("projection: recreating lost state failed; trying again", "err", err)
			}
			return
		}
	}
	if heartbeat != nil {
		// An instance the others cannot count must not take partitions:
		// it would count itself alone, aim at all of them, and re-acquire
		// its own leases as they lapse (a half-closed client whose reads
		// fail while its lease scripts still run did exactly that), so
		// the live instances could never take them over.
		return
	}

	target := (len(units) + int(live) - 1) / int(live)
	n := 0
	for _, p := range held {
		if !p.stopping() {
			n++
		}
	}
	// Preference order: rotated by a hash of the instance id, so instances
	// starting together do not all race for partition 0 first.
	off := int(fnv32(r.opts.instance) % uint32(max(len(units), 1)))
	if n > target {
		// Hand back the surplus, last in preference order first.
		for i := len(units) - 1; i >= 0 && n > target; i-- {
			u := units[(i+off)%len(units)]
			r.mu.Lock()
			p := r.parts[u]
			r.mu.Unlock()
			if p != nil && !p.stopping() {
				r.log.Debug("projection: handing back partition", "category", u.cat, "partition", u.p, "live", live)
				p.requestStop()
				n--
			}
		}
		return
	}
	for i := 0; i < len(units) && n < target; i++ {
		u := units[(i+off)%len(units)]
		r.mu.Lock()
		_, have := r.parts[u]
		r.mu.Unlock()
		if have {
			continue
		}
		p, err := r.acquire(ctx, u)
		if err != nil {
			if ctx.Err() == nil {
				r.warns.warn(r.log, "acquire", "projection: acquire failed", "category", u.cat, "partition", u.p, "err", err)
			}
			continue
		}
		if p == nil {
			continue
		}
		r.mu.Lock()
		r.parts[u] = p
		r.mu.Unlock()
		n++
		go p.run()
	}
}

func fnv32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// acquire tries to take u's lease; nil when another instance holds it.
func (r *Runner) acquire(ctx context.Context, u unit) (*partition, error) {
	k := r.keys.part(u.cat, u.p)
	arr, err := r.sc.lease.Exec(ctx, r.client, []string{k.lease, k.fence},
		[]string{"acquire", r.opts.instance, fmt.Sprint(r.opts.leaseTTL.Milliseconds()), ""}).ToArray()
	if err != nil {
		return nil, err
	}
	if len(arr) != 2 {
		return nil, fmt.Errorf("bad lease reply")
	}
	ok, _ := arr[0].AsInt64()
	if ok != 1 {
		return nil, nil
	}
	val, err := arr[1].ToString()
	if err != nil {
		return nil, err
	}
	r.log.Debug("projection: partition acquired", "category", u.cat, "partition", u.p, "lease", val)
	return newPartition(r, u, k, val), nil
}

// renew extends the leases held, in one pipelined round. A lease found taken
// over stops its partition at once; one not renewed for TTL - TTL/4 (Redis
// unreachable) is given up too, since a standby may take it when it expires.
func (r *Runner) renew(ctx context.Context, held []*partition) {
	if len(held) == 0 {
		return
	}
	ttl := fmt.Sprint(r.opts.leaseTTL.Milliseconds())
	execs := make([]rueidis.LuaExec, len(held))
	for i, p := range held {
		execs[i] = rueidis.LuaExec{Keys: []string{p.k.lease, p.k.fence}, Args: []string{"renew", r.opts.instance, ttl, p.lease}}
	}
	sent := time.Now()
	for i, res := range r.sc.lease.ExecMulti(ctx, r.client, execs...) {
		p := held[i]
		n, err := res.AsInt64()
		switch {
		case err == nil && n == 1:
			p.renewedAt.Store(sent.UnixNano())
		case err == nil:
			p.lose("lease taken over")
		default:
			if time.Since(time.Unix(0, p.renewedAt.Load())) > r.opts.leaseTTL-r.opts.leaseTTL/4 {
				p.lose("lease not renewed in time: " + err.Error())
			} else if ctx.Err() == nil {
				r.warns.warn(r.log, "renew", "projection: lease renewal failed", "category", p.u.cat, "partition", p.u.p, "err", err)
			}
		}
	}
}

// notifyAcked wakes WaitFor callers.
func (r *Runner) notifyAcked() {
	r.ackMu.Lock()
	close(r.acked)
	r.acked = make(chan struct{})
	r.ackMu.Unlock()
}

func (r *Runner) ackSignal() <-chan struct{} {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	return r.acked
}

// Held returns the partitions this instance currently holds, as
// "category/partition".
func (r *Runner) Held() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for u, p := range r.parts {
		if !p.stopping() {
			out = append(out, fmt.Sprintf("%s/%d", u.cat, u.p))
		}
	}
	return out
}

// worker returns the queue of the worker that handles entity id of cat.
func (r *Runner) worker(cat, id string) chan task {
	return r.workers[r.workerIndex(cat, id)]
}

func (r *Runner) workerIndex(cat, id string) int {
	h := uint32(2166136261) // FNV-1a of cat, 0, id (no allocation)
	for i := 0; i < len(cat); i++ {
		h = (h ^ uint32(cat[i])) * 16777619
	}
	h *= 16777619
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return int(h % uint32(len(r.workers)))
}
