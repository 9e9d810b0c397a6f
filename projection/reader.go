package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/rediserr"
)

// partition is one partition whose lease this instance holds. Its reader
// goroutine (run) reads through the consumer group and dispatches entries to
// the runner's workers; workers report back with acks, which the reader sends
// with its next read (one script call: lease check + XACK + XREADGROUP).
type partition struct {
	r     *Runner // for what concerns the whole runner: heal, fail, workers, the handler
	u     unit
	k     partKeys
	lease string // "<token>:<owner>"
	log   logger

	// What the partition uses of its runner.
	client   rueidis.Client
	store    *eventstore.Store
	sc       scripts
	opts     *options
	group    string // the consumer group: the projection's name
	consumer string // this instance's id
	warns    *warnLimiter

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
		log:      r.log.With("category", u.cat, "partition", u.p),
		client:   r.client,
		store:    r.store,
		sc:       r.sc,
		opts:     &r.opts,
		group:    r.proj.Name,
		consumer: r.opts.instance,
		warns:    &r.warns,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		parked:   map[string]bool{},
		seen:     map[string]seenEvent{},
		held:     map[string]bool{},
		wake:     make(chan struct{}, 1),
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

// run is the partition's reader: it prepares the partition (parked set,
// claim, prune), drains its own pending entries, then reads new ones until
// stopped, and finally acks what finished and releases the lease.
func (p *partition) run() {
	defer close(p.done)
	defer p.hcancel()
	err := p.prepare()
	if rediserr.IsNoGroup(err) {
		// The group is gone though the lease was free to take: Redis lost
		// it (see Runner.heal). Recreate it and prepare again; still
		// missing, it cannot be healed.
		if err = p.r.heal(p.rctx, causeNoGroup); err == nil {
			if err = p.prepare(); rediserr.IsNoGroup(err) {
				p.r.fail(&StateLostError{Projection: p.group, Reason: fmt.Sprintf("group on %s/%d missing after it was recreated", p.u.cat, p.u.p), Err: err})
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
	ids, err := p.client.Do(ctx, p.client.B().Hkeys().Key(p.k.parked).Build()).AsStrSlice()
	if err != nil {
		return err
	}
	for _, id := range ids {
		p.setParked(id, true)
	}
	q := claimRequest{k: p.k, lease: p.lease, group: p.group, consumer: p.consumer, op: claimClaim, cursor: "0-0", count: 1000}
	for {
		next, dead, err := parseClaim(p.sc.claim.Exec(ctx, p.client, q.keys(), q.args()))
		if err != nil {
			return err
		}
		if dead > 0 {
			p.log.Warn("projection: pending entries trimmed from the log were dead-lettered", "count", dead)
		}
		if next == "0-0" || next == "" {
			break
		}
		q.cursor = next
	}
	prune := claimRequest{k: p.k, lease: p.lease, group: p.group, consumer: p.consumer, op: claimPrune, minIdle: p.opts.pruneIdle}
	return parsePrune(p.sc.claim.Exec(ctx, p.client, prune.keys(), prune.args()))
}

// read acks acks, then reads up to count entries after id, fenced.
func (p *partition) read(ctx context.Context, acks []string, count int, id string) (readResult, error) {
	q := readRequest{k: p.k, lease: p.lease, group: p.group, consumer: p.consumer, count: count, id: id, acks: acks}
	res, err := parseRead(p.sc.read.Exec(ctx, p.client, q.keys(), q.args()))
	if err != nil {
		return readResult{}, err
	}
	if len(acks) > 0 {
		p.r.notifyAcked()
	}
	return res, nil
}

// readerState is where the reader stands: draining its own pending
// entries from cursor, or reading new ones (">"); how far the group has
// delivered (where a blocking read waits from); the last control request
// seen and when to look for more.
type readerState struct {
	cursor    string
	draining  bool
	delivered string
	lastCtl   string
	nextCtl   time.Time
	backoff   time.Duration
}

// minReadBackoff is the first pause after a failed read.
const minReadBackoff = 50 * time.Millisecond

// readID is the id a read starts after.
func (s *readerState) readID() string {
	if s.draining {
		return s.cursor
	}
	return ">"
}

// drainFromStart makes the next read drain the pending list from its start.
func (s *readerState) drainFromStart() { s.cursor, s.draining = "0", true }

// loop reads until the partition stops: its own pending entries first,
// then new ones, dispatching them to the workers with the acks of what
// finished riding along each read.
func (p *partition) loop() {
	s := readerState{cursor: "0", draining: true, lastCtl: "0-0", backoff: minReadBackoff}
	for !p.stopping() {
		// Wait for room rather than read a few entries at a time: workers
		// free room as they finish, and acks ride along with the next read.
		// Reading (or flushing acks) on every completion would cost one
		// script call per event.
		// At least one entry of room: a read of COUNT 0 returns nothing,
		// which a drain would take for an empty pending list.
		if room := p.opts.maxInFlight - p.inFlight(); room < max(1, min(p.opts.batch, p.opts.maxInFlight/2)) && p.inFlight() > 0 {
			p.waitWake(p.opts.block)
			continue
		}
		acks := p.takeAcks()
		count := min(p.opts.batch, p.opts.maxInFlight-p.inFlight())
		res, err := p.read(p.rctx, acks, count, s.readID())
		if err != nil {
			p.putBackAcks(acks)
			if !p.readFailed(&s, err) {
				return
			}
			continue
		}
		s.backoff = minReadBackoff
		if res.dead > 0 {
			p.log.Warn("projection: pending entries trimmed from the log were dead-lettered", "count", res.dead)
		}
		if !p.dispatch(res.entries) {
			continue // stopping: what was read stays pending for the next holder
		}
		if s.draining {
			if res.last == "" {
				s.draining = false
			} else {
				s.cursor = res.last
			}
			continue
		}
		p.readNew(&s, res, count)
	}
}

// readFailed handles a failed read: false when the reader must end (fenced,
// stopping), else it has waited before the next read, which drains the
// pending list from its start.
func (p *partition) readFailed(s *readerState, err error) bool {
	if errors.Is(err, ErrFenced) {
		p.lose("fenced on read")
		return false
	}
	if p.stopping() {
		return false
	}
	if rediserr.IsNoGroup(err) && p.r.heal(p.rctx, causeNoGroup) == nil {
		// Lost while we held the lease (XGROUP DESTROY, a restore):
		// recreated at the log's start, read from our (empty) pending
		// list on.
		s.drainFromStart()
		return true
	}
	p.warns.warn(p.log, "read", "projection: read failed", "err", err)
	p.sleep(s.backoff)
	s.backoff = min(2*s.backoff, 2*time.Second)
	// The read's outcome is unknown: Redis may have moved entries into
	// this consumer's pending list and lost the reply (a crash after the
	// AOF write, a dropped connection). Reading ">" again would leave them
	// there while the entity's later events are applied. So let the
	// in-flight work finish (its acks go out with the next read, before it
	// reads), then drain the pending list from the start: what is left in
	// it was never handled.
	for p.inFlight() > 0 && !p.stopping() {
		p.waitIdle(time.Second)
	}
	s.drainFromStart()
	return true
}

// readNew follows a read of new entries (res, of at most count): it notes
// how far the group delivered, polls the control requests now and then,
// and waits when the log was drained.
func (p *partition) readNew(s *readerState, res readResult, count int) {
	if res.last != "" {
		s.delivered = res.last // a ">" read moves the group's last-delivered id to it
	} else if res.delivered != "" {
		s.delivered = res.delivered
	}
	if len(res.entries) == 0 || time.Now().After(s.nextCtl) {
		s.lastCtl = p.pollControl(s.lastCtl)
		s.nextCtl = time.Now().Add(time.Second)
	}
	// A short read means the log was drained at that moment: rather than a
	// read that would come back empty (a script call), wait for the
	// in-flight work or for new entries.
	switch {
	case count > 0 && len(res.entries) >= count:
		// More may be waiting: read again.
	case p.inFlight() > 0:
		// The tail of a burst: let the in-flight work finish (or
		// ackCoalesce pass) so its acks go out in one call, rather than
		// one call per completion; then read again. Blocking in XREAD here
		// would hold the acks back for up to the block time.
		p.waitIdle(ackCoalesce)
	case p.hasAcks():
		// Finished while the read was in flight: ack them now, not after
		// a block of up to WithBlock (WaitFor would wait for it).
	case s.delivered != "":
		p.block(s.delivered, s.lastCtl)
	}
}

// block waits in XREAD until the log grows past delivered or a control
// request arrives, the block time passes, or the partition stops. The
// command is marked UnblockOnCancel: a stop sends CLIENT UNBLOCK rather
// than closing the connection.
func (p *partition) block(delivered, lastCtl string) {
	c := p.client
	cmd := c.B().Xread().Count(1).Block(p.opts.block.Milliseconds()).Streams().
		Key(p.k.log, p.k.ctl).Id(delivered, lastCtl).Build().UnblockOnCancel()
	err := c.Do(p.rctx, cmd).Error()
	if err != nil && !rueidis.IsRedisNil(err) && !p.stopping() {
		p.warns.warn(p.log, "block", "projection: blocking read failed", "err", err)
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

// shutdown waits for the in-flight tasks (at most the shutdown timeout, then
// cancels them), acks what finished and releases the lease.
func (p *partition) shutdown() {
	deadline := time.NewTimer(p.opts.shutdownTimeout)
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
