package projection

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// partition is one partition whose lease this instance holds. Its reader
// goroutine (run) reads through the consumer group and dispatches entries to
// the runner's workers; workers report back with acks, which the reader sends
// with its next read (one script call: lease check + XACK + XREADGROUP).
type partition struct {
	r     *Runner
	u     unit
	k     partKeys
	lease string // "<token>:<owner>"
	log   logger

	renewedAt atomic.Int64 // unix nanos of the last successful renewal

	stopOnce sync.Once
	stop     chan struct{} // graceful stop requested
	lost     atomic.Bool   // lease lost: nothing may be acked any more

	hctx    context.Context // handlers' context: ends on loss or shutdown timeout
	hcancel context.CancelFunc
	rctx    context.Context // blocking reads' context: ends on any stop
	rcancel context.CancelFunc

	done chan struct{} // closed when run returns

	mu       sync.Mutex
	acks     []string
	inflight int
	parked   map[string]bool
	held     map[string]bool // entities left pending after a failure under cancellation (see hold)
	wake     chan struct{}   // capacity 1: something finished

	seen map[string]seenEvent // reader goroutine only: see verify
}

type logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

func newPartition(r *Runner, u unit, k partKeys, lease string) *partition {
	p := &partition{
		r: r, u: u, k: k, lease: lease,
		log:    r.log.With("category", u.cat, "partition", u.p),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		parked: map[string]bool{},
		seen:   map[string]seenEvent{},
		held:   map[string]bool{},
		wake:   make(chan struct{}, 1),
	}
	p.renewedAt.Store(time.Now().UnixNano())
	p.hctx, p.hcancel = context.WithCancel(context.Background())
	p.rctx, p.rcancel = context.WithCancel(context.Background())
	return p
}

func (p *partition) requestStop() {
	p.stopOnce.Do(func() {
		close(p.stop)
		p.rcancel()
	})
}

func (p *partition) stopping() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// lose stops the partition without acking anything more: another instance
// owns it (or may, soon). Its unacked entries stay pending and are claimed by
// the next holder.
func (p *partition) lose(why string) {
	if p.lost.CompareAndSwap(false, true) {
		if p.stateLost() {
			// Redis lost the lease with its fence counter (emptied): the
			// runner heals, with one WARN for all its partitions.
			p.log.Info("projection: partition lost with the lease state Redis lost", "reason", why)
			p.r.healWanted.Store(true)
		} else {
			p.r.warns.warn(p.log, "lost", "projection: partition lost", "reason", why)
		}
	}
	p.hcancel()
	p.requestStop()
}

// stateLost reports whether the partition's fence counter is below the
// token of the lease held: only a Redis that lost it (FLUSHALL, a restart
// without persistence) goes back, since the counter never expires and
// only grows.
func (p *partition) stateLost() bool {
	tok, _, _ := strings.Cut(p.lease, ":")
	held, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c := p.r.client
	fence, err := c.Do(ctx, c.B().Get().Key(p.k.fence).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return true
	}
	return err == nil && fence < held
}

func (p *partition) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// finish is called by a worker when a task of this partition is done.
func (p *partition) finish(ackID string) {
	p.mu.Lock()
	if ackID != "" {
		p.acks = append(p.acks, ackID)
	}
	p.inflight--
	p.mu.Unlock()
	p.signal()
}

// finishMany is finish for a batch task of n events.
func (p *partition) finishMany(ackIDs []string, n int) {
	p.mu.Lock()
	p.acks = append(p.acks, ackIDs...)
	p.inflight -= n
	p.mu.Unlock()
	p.signal()
}

func (p *partition) hasAcks() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acks) > 0
}

func (p *partition) takeAcks() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.acks
	p.acks = nil
	return a
}

func (p *partition) putBackAcks(a []string) {
	if len(a) == 0 {
		return
	}
	p.mu.Lock()
	p.acks = append(a, p.acks...)
	p.mu.Unlock()
}

func (p *partition) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

func (p *partition) isParked(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parked[id]
}

func (p *partition) setParked(id string, v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v {
		p.parked[id] = true
	} else {
		delete(p.parked, id)
	}
}

// hold leaves the entity's later events of this partition pending: one of
// its events failed while the handlers' context was cancelled (shutdown
// timeout, lease lost) and stays pending, so handling a later one here
// would let the next holder apply the failed event after it. The context
// never comes back, so the entity stays held until the partition stops.
func (p *partition) hold(entity string) {
	if entity == "" {
		return
	}
	p.mu.Lock()
	p.held[entity] = true
	p.mu.Unlock()
}

func (p *partition) isHeld(entity string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[entity]
}

// readResult is the reply of read.lua.
type readResult struct {
	last      string // last id read ("" when nothing)
	delivered string // group's last-delivered-id, when nothing new was read
	dead      int64  // entries dead-lettered as trimmed
	entries   []rueidis.XRangeSlice
}

// read acks acks, then reads up to count entries after id, fenced.
func (p *partition) read(ctx context.Context, acks []string, count int, id string) (readResult, error) {
	args := make([]string, 0, 6+len(acks))
	args = append(args, p.lease, p.r.proj.Name, p.r.opts.instance, strconv.Itoa(count), id, strconv.Itoa(len(acks)))
	args = append(args, acks...)
	arr, err := p.r.sc.read.Exec(ctx, p.r.client, []string{p.k.lease, p.k.log, p.k.dlq, p.k.ckpt}, args).ToArray()
	if err != nil {
		return readResult{}, err
	}
	if st, _ := arr[0].AsInt64(); st != 1 {
		return readResult{}, ErrFenced
	}
	if len(arr) != 5 {
		return readResult{}, fmt.Errorf("read script: %d elements", len(arr))
	}
	var res readResult
	res.last, _ = arr[1].ToString()
	res.delivered, _ = arr[2].ToString()
	res.dead, _ = arr[3].AsInt64()
	es, err := arr[4].ToArray()
	if err != nil && !rueidis.IsRedisNil(err) {
		return readResult{}, err
	}
	res.entries = make([]rueidis.XRangeSlice, 0, len(es))
	for i := range es {
		e, err := es[i].AsXRangeSlice()
		if err != nil {
			return readResult{}, err
		}
		res.entries = append(res.entries, e)
	}
	if len(acks) > 0 {
		p.r.notifyAcked()
	}
	return res, nil
}

// run is the partition's reader: it prepares the partition (parked set,
// claim, prune), drains its own pending entries, then reads new ones until
// stopped, and finally acks what finished and releases the lease.
func (p *partition) run() {
	defer close(p.done)
	defer p.hcancel()
	err := p.prepare()
	if isNoGroup(err) {
		// The group is gone though the lease was free to take: Redis lost
		// it (see Runner.heal). Recreate it and prepare again; still
		// missing, it cannot be healed.
		if err = p.r.heal(p.rctx, causeNoGroup); err == nil {
			if err = p.prepare(); isNoGroup(err) {
				p.r.fail(&StateLostError{Projection: p.r.proj.Name, Reason: fmt.Sprintf("group on %s/%d missing after it was recreated", p.u.cat, p.u.p), Err: err})
			}
		}
	}
	if err != nil {
		if errors.Is(err, ErrFenced) {
			p.lose("fenced while preparing")
		} else if !p.stopping() {
			p.log.Error("projection: cannot prepare partition; giving it up", "err", err)
		}
		p.requestStop()
		p.release()
		return
	}
	p.loop()
	p.shutdown()
}

// prepare loads the parked entities, claims every pending entry of the
// group (the lease proves the other consumers dead or fenced) and prunes
// consumers left with nothing pending.
func (p *partition) prepare() error {
	ctx := p.rctx
	c := p.r.client
	ids, err := c.Do(ctx, c.B().Hkeys().Key(p.k.parked).Build()).AsStrSlice()
	if err != nil {
		return err
	}
	for _, id := range ids {
		p.setParked(id, true)
	}
	cursor := "0-0"
	for {
		arr, err := p.r.sc.claim.Exec(ctx, c, []string{p.k.lease, p.k.log, p.k.dlq},
			[]string{p.lease, p.r.proj.Name, p.r.opts.instance, "claim", cursor, "1000"}).ToArray()
		if err != nil {
			return err
		}
		if st, _ := arr[0].AsInt64(); st != 1 {
			return ErrFenced
		}
		cursor, _ = arr[1].ToString()
		if dead, _ := arr[3].AsInt64(); dead > 0 {
			p.log.Warn("projection: pending entries trimmed from the log were dead-lettered", "count", dead)
		}
		if cursor == "0-0" || cursor == "" {
			break
		}
	}
	arr, err := p.r.sc.claim.Exec(ctx, c, []string{p.k.lease, p.k.log, p.k.dlq},
		[]string{p.lease, p.r.proj.Name, p.r.opts.instance, "prune", strconv.FormatInt(p.r.opts.pruneIdle.Milliseconds(), 10)}).ToArray()
	if err != nil {
		return err
	}
	if st, _ := arr[0].AsInt64(); st != 1 {
		return ErrFenced
	}
	return nil
}

func (p *partition) loop() {
	o := &p.r.opts
	cursor, draining := "0", true
	lastCtl, delivered := "0-0", ""
	nextCtl := time.Time{}
	backoff := 50 * time.Millisecond
	for !p.stopping() {
		// Wait for room rather than read a few entries at a time: workers
		// free room as they finish, and acks ride along with the next read.
		// Reading (or flushing acks) on every completion would cost one
		// script call per event.
		// At least one entry of room: a read of COUNT 0 returns nothing,
		// which a drain would take for an empty pending list.
		if room := o.maxInFlight - p.inFlight(); room < max(1, min(o.batch, o.maxInFlight/2)) && p.inFlight() > 0 {
			p.waitWake(o.block)
			continue
		}
		acks := p.takeAcks()
		count := min(o.batch, o.maxInFlight-p.inFlight())
		id := ">"
		if draining {
			id = cursor
		}
		res, err := p.read(p.rctx, acks, count, id)
		if err != nil {
			p.putBackAcks(acks)
			if errors.Is(err, ErrFenced) {
				p.lose("fenced on read")
				return
			}
			if p.stopping() {
				return
			}
			if isNoGroup(err) {
				// Lost while we held the lease (XGROUP DESTROY, a restore):
				// recreated at the log's start, read from our (empty)
				// pending list on.
				if herr := p.r.heal(p.rctx, causeNoGroup); herr == nil {
					cursor, draining = "0", true
					continue
				}
			}
			p.r.warns.warn(p.log, "read", "projection: read failed", "err", err)
			p.sleep(backoff)
			backoff = min(2*backoff, 2*time.Second)
			// The read's outcome is unknown: Redis may have moved entries
			// into this consumer's pending list and lost the reply (a crash
			// after the AOF write, a dropped connection). Reading ">" again
			// would leave them there while the entity's later events are
			// applied. So let the in-flight work finish (its acks go out
			// with the next read, before it reads), then drain the pending
			// list from the start: what is left in it was never handled.
			for p.inFlight() > 0 && !p.stopping() {
				p.waitIdle(time.Second)
			}
			cursor, draining = "0", true
			continue
		}
		backoff = 50 * time.Millisecond
		if res.dead > 0 {
			p.log.Warn("projection: pending entries trimmed from the log were dead-lettered", "count", res.dead)
		}
		if !p.dispatch(res.entries) {
			continue // stopping: what was read stays pending for the next holder
		}
		if draining {
			if res.last == "" {
				draining = false
			} else {
				cursor = res.last
			}
			continue
		}
		if res.last != "" {
			delivered = res.last // a ">" read moves the group's last-delivered id to it
		} else if res.delivered != "" {
			delivered = res.delivered
		}
		if len(res.entries) == 0 || time.Now().After(nextCtl) {
			lastCtl = p.pollControl(lastCtl)
			nextCtl = time.Now().Add(time.Second)
		}
		if count > 0 && len(res.entries) >= count {
			continue // more may be waiting
		}
		// A short read means the log was drained at that moment: rather
		// than a read that would come back empty (a script call), wait for
		// the in-flight work or for new entries.
		if p.inFlight() > 0 {
			// The tail of a burst: let the in-flight work finish (or
			// ackCoalesce pass) so its acks go out in one call, rather than
			// one call per completion; then read again. Blocking in XREAD
			// here would hold the acks back for up to the block time.
			p.waitIdle(ackCoalesce)
			continue
		}
		if p.hasAcks() {
			// Finished while the read was in flight: ack them now, not
			// after a block of up to WithBlock (WaitFor would wait for it).
			continue
		}
		if delivered != "" {
			p.block(delivered, lastCtl)
		}
	}
}

// inlineBatch is the largest read the reader applies itself (see dispatch).
const inlineBatch = 32

// ackCoalesce bounds how long finished events of a burst's tail wait to be
// acked together (it delays WaitFor by at most that much).
const ackCoalesce = 2 * time.Millisecond

// waitIdle waits until nothing is in flight, d passes, or a stop.
func (p *partition) waitIdle(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for p.inFlight() > 0 {
		select {
		case <-p.wake:
		case <-t.C:
			return
		case <-p.stop:
			return
		}
	}
}

// block waits in XREAD until the log grows past delivered or a control
// request arrives, the block time passes, or the partition stops. The
// command is marked UnblockOnCancel: a stop sends CLIENT UNBLOCK rather
// than closing the connection.
func (p *partition) block(delivered, lastCtl string) {
	c := p.r.client
	cmd := c.B().Xread().Count(1).Block(p.r.opts.block.Milliseconds()).Streams().
		Key(p.k.log, p.k.ctl).Id(delivered, lastCtl).Build().UnblockOnCancel()
	err := c.Do(p.rctx, cmd).Error()
	if err != nil && !rueidis.IsRedisNil(err) && !p.stopping() {
		p.r.warns.warn(p.log, "block", "projection: blocking read failed", "err", err)
		p.sleep(100 * time.Millisecond)
	}
}

func (p *partition) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.stop:
	}
}

// waitWake waits until a task finishes, d passes (0: no limit) or a stop.
func (p *partition) waitWake(d time.Duration) {
	var tc <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-p.wake:
	case <-tc:
	case <-p.stop:
	}
}

// dispatch decodes entries and queues them on their entities' workers: one
// task per event, or, with a BatchHandler, one task per worker holding that
// worker's events of the read (so per-entity order is the same either way).
//
// An entry that is not the event the store wrote into its entity stream
// (see verify) is a foreign letter: dead-lettered without parking its
// entity, whose real events go on, and never handed to the handler. It
// returns false, dispatching nothing, when the partition is stopping before
// every entry could be checked.
func (p *partition) dispatch(entries []rueidis.XRangeSlice) bool {
	ts := make([]task, len(entries))
	for i, e := range entries {
		t := task{p: p, kind: taskEvent, pos: e.ID, entry: e}
		ev, err := p.r.store.DecodeLogEntry(p.k.log, p.u.cat, e)
		var unknown *eventstore.UnknownEventTypeError
		if err == nil || errors.As(err, &unknown) {
			t.ev, t.entity = ev, ev.Stream.ID
			if unknown != nil {
				switch p.r.proj.UnknownTypes {
				case UnknownDeadLetter:
					t.decodeErr, t.letterKind = p.r.unknownTypeError(err), KindUnknownType
				case UnknownSkip:
					t.skipUnknown = true
				} // UnknownDeliver: to the handler, Data nil and Raw set
			}
		} else {
			// Corrupt: dead-lettered, parking its entity if the entry
			// names one, unless it is foreign (verify).
			t.decodeErr = err
			if s := entryField(e, "s"); eventstore.ValidateEntityID(s) == nil {
				t.entity = s
			}
		}
		ts[i] = t
	}
	if !p.verify(ts) {
		return false
	}
	var buckets [][]task
	if p.r.batch != nil && len(entries) > 1 {
		buckets = make([][]task, len(p.r.workers))
	}
	for _, t := range ts {
		if buckets != nil {
			w := p.r.workerIndex(p.u.cat, t.entity)
			buckets[w] = append(buckets[w], t)
			continue
		}
		p.enqueue(t)
	}
	if buckets != nil && len(entries) <= inlineBatch && p.inFlight() == 0 {
		// A small read with nothing else in flight for the partition (no
		// event, no retry/skip of its entities): apply it here as one
		// batch, saving the hand-off to the workers (latency at low rates).
		// Nothing of these entities is queued anywhere, so order holds.
		var all []task
		for _, b := range buckets {
			all = append(all, b...)
		}
		p.mu.Lock()
		p.inflight += len(all)
		p.mu.Unlock()
		task{p: p, kind: taskBatch, batch: all}.run()
		return true
	}
	for w, b := range buckets {
		switch len(b) {
		case 0:
		case 1:
			p.enqueue(b[0])
		default:
			p.mu.Lock()
			p.inflight += len(b)
			p.mu.Unlock()
			p.r.workers[w] <- task{p: p, kind: taskBatch, batch: b}
		}
	}
	return true
}

func (p *partition) enqueue(t task) {
	p.mu.Lock()
	p.inflight++
	p.mu.Unlock()
	// May block when the worker's queue is full: backpressure on the reader.
	// Workers never wait for readers, so this cannot deadlock.
	p.r.worker(p.u.cat, t.entity) <- t
}

// shutdown waits for the in-flight tasks (at most the shutdown timeout, then
// cancels them), acks what finished and releases the lease.
func (p *partition) shutdown() {
	deadline := time.NewTimer(p.r.opts.shutdownTimeout)
	defer deadline.Stop()
	for p.inFlight() > 0 {
		select {
		case <-p.wake:
		case <-deadline.C:
			p.log.Warn("projection: shutdown timeout; cancelling in-flight handlers", "in_flight", p.inFlight())
			p.hcancel()
			for p.inFlight() > 0 {
				<-p.wake
			}
		}
	}
	if !p.lost.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if acks := p.takeAcks(); len(acks) > 0 {
			if _, err := p.read(ctx, acks, 0, ">"); err != nil {
				p.log.Warn("projection: final ack failed; entries stay pending", "err", err)
			}
		}
	}
	p.release()
}

func (p *partition) release() {
	if p.lost.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.r.sc.lease.Exec(ctx, p.r.client, []string{p.k.lease, p.k.fence},
		[]string{"release", p.r.opts.instance, "0", p.lease}).Error()
	if err != nil {
		p.log.Warn("projection: lease release failed; it will expire", "err", err)
		return
	}
	p.log.Debug("projection: partition released")
}

// pollControl queues the retry/skip requests after lastCtl and returns the
// last id seen.
func (p *partition) pollControl(lastCtl string) string {
	c := p.r.client
	es, err := c.Do(p.rctx, c.B().Xrange().Key(p.k.ctl).Start("("+lastCtl).End("+").Count(100).Build()).AsXRangeSlices()
	if err != nil {
		if !p.stopping() {
			p.r.warns.warn(p.log, "control", "projection: reading control requests failed", "err", err)
		}
		return lastCtl
	}
	for _, e := range es {
		lastCtl = e.ID
		f := fieldMap(e.FieldValues)
		t := task{p: p, ctlID: e.ID, entity: f["s"], letterID: f["id"]}
		switch f["op"] {
		case "retry":
			t.kind = taskRetry
		case "skip":
			t.kind = taskSkip
		default:
			p.log.Warn("projection: unknown control request dropped", "id", e.ID, "op", f["op"])
			t.kind = taskSkip
			t.letterID = ""
		}
		p.enqueue(t)
	}
	return lastCtl
}

func fieldMap(fvs []rueidis.XRangeFieldValue) map[string]string {
	m := make(map[string]string, len(fvs))
	for _, fv := range fvs {
		m[fv.Field] = fv.Value
	}
	return m
}
