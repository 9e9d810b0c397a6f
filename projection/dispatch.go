package projection

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/fnv1a"
	"github.com/streamfold/streamfold/readmodel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Dispatch: the reader decodes what it read and hands it to the runner's
// workers, by entity (an entity's events always go to the same worker, so
// they are applied in log order); a worker runs its tasks one at a time.

type taskKind uint8

const (
	taskEvent taskKind = iota
	taskRetry          // retry an entity's dead letters, in version order
	taskSkip           // drop one dead letter
	taskBatch          // events of several entities for a BatchHandler
)

// task is a unit of work on a worker: an event, or a retry/skip request
// (which runs on the entity's worker, so it is ordered with its live events).
type task struct {
	p         *partition
	kind      taskKind
	pos       string // log entry id (events)
	entry     rueidis.XRangeSlice
	ev        eventstore.RecordedEvent
	decodeErr error
	entity    string
	foreign   bool   // not the entity's event (decodeErr says why): dead-lettered without parking it
	conflict  string // the store's event, after a foreign entry was taken for it (see verify): dead-lettered, parking its entity
	// letterKind is the dead letter's kind when decodeErr is set and the
	// entry is not foreign ("" = KindCorrupt).
	letterKind  string
	skipUnknown bool   // an unregistered type, acked unhandled (UnknownSkip)
	letterID    string // skip
	ctlID       string // control request to delete when done
	batch       []task // taskBatch: its events, each entity's in log order
}

func (t task) run() {
	p := t.p
	switch t.kind {
	case taskEvent:
		p.finish(t.handleEvent())
	case taskBatch:
		p.finishMany(t.handleBatch(), len(t.batch))
	case taskRetry:
		t.retry()
		t.ctlDone()
		p.finish("")
	case taskSkip:
		t.skip()
		t.ctlDone()
		p.finish("")
	}
}

// handleEvent applies one event and returns the id to ack, or "" when
// nothing may be acked (lease lost: the next holder redelivers it) or when
// the dead-letter script already acked it.
func (t task) handleEvent() string {
	p := t.p
	if p.lost.Load() || p.isHeld(t.entity) {
		return ""
	}
	if t.entity != "" && !t.foreign && p.isParked(t.entity) {
		t.park(KindParked, "waiting behind an earlier dead-lettered event of the entity", 0)
		return ""
	}
	if t.skipUnknown && t.decodeErr == nil && t.conflict == "" {
		p.log.Debug("projection: event of an unregistered type skipped", "stream", t.ev.Stream, "version", t.ev.Version, "type", t.ev.Type)
		return t.pos
	}
	err := t.decodeErr
	kind := KindCorrupt
	switch {
	case t.foreign:
		kind = KindForeign
	case t.letterKind != "":
		kind = t.letterKind
	}
	if err == nil && t.conflict != "" {
		kind, err = KindFailed, errors.New(t.conflict)
	}
	if err == nil {
		kind = KindFailed
		err = p.r.handle(p.hctx, p, t.ev)
	}
	if err == nil {
		return t.pos
	}
	if p.lost.Load() || p.hctx.Err() != nil {
		// The failure may be our own cancellation, or not: either way it
		// stays pending for the next holder, and so must the entity's
		// later events (whatever the cause), or they would be applied
		// before it.
		if !t.foreign {
			p.hold(t.entity)
		}
		return ""
	}
	attempts := 1
	var re *RetryError
	if errors.As(err, &re) {
		attempts = re.Attempts
	}
	p.log.Warn("projection: event dead-lettered", "stream", t.ev.Stream, "version", t.ev.Version, "position", t.pos, "err", err)
	if t.entity != "" && !t.foreign {
		// Before the script: the entity's next events, already queued on
		// this worker, must be parked even if the script has to be retried.
		p.setParked(t.entity, true)
	}
	t.park(kind, err.Error(), attempts)
	return ""
}

// handleBatch applies a worker's share of a read with one HandleBatch call
// and returns the ids to ack. A batch with a corrupt entry or a parked
// entity, and a batch whose HandleBatch fails, go through handleEvent one
// event at a time, in order: the parked/dead-letter sequencing is exactly
// the per-event path's, and the events a failed batch did apply are skipped
// by the version guard when applied again.
func (t task) handleBatch() []string {
	p := t.p
	if p.lost.Load() {
		return nil
	}
	simple := true
	for i := range t.batch {
		if e := &t.batch[i]; e.decodeErr != nil || e.conflict != "" || e.skipUnknown || (e.entity != "" && (p.isParked(e.entity) || p.isHeld(e.entity))) {
			simple = false
			break
		}
	}
	if simple {
		evs := make([]eventstore.RecordedEvent, len(t.batch))
		for i := range t.batch {
			evs[i] = t.batch[i].ev
		}
		err := p.r.handleBatch(p.hctx, p, evs)
		if err == nil {
			acks := make([]string, len(t.batch))
			for i := range t.batch {
				acks[i] = t.batch[i].pos
			}
			return acks
		}
		if p.lost.Load() || p.hctx.Err() != nil {
			// Cancelled (or failed while cancelled): leave them pending,
			// and their entities' later events too (see handleEvent).
			for i := range t.batch {
				p.hold(t.batch[i].entity)
			}
			return nil
		}
		p.log.Warn("projection: batch failed; applying its events one by one", "events", len(evs), "err", err)
	}
	acks := make([]string, 0, len(t.batch))
	for _, e := range t.batch {
		if id := e.handleEvent(); id != "" {
			acks = append(acks, id)
		}
	}
	return acks
}

// inlineBatch is the largest read the reader applies itself (see dispatch).
const inlineBatch = 32

// startWorkers starts the runner's workers; the function returned closes
// their queues and waits for them to end.
func (r *Runner) startWorkers() (stop func()) {
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
	return func() {
		for _, ch := range r.workers {
			close(ch)
		}
		wg.Wait()
	}
}

// worker returns the queue of the worker that handles entity id of cat.
func (r *Runner) worker(cat, id string) chan task {
	return r.workers[r.workerIndex(cat, id)]
}

// workerIndex hashes cat, a 0 byte and id (FNV-1a, no allocation).
func (r *Runner) workerIndex(cat, id string) int {
	h := fnv1a.Add(fnv1a.AddByte(fnv1a.Add(fnv1a.Offset, cat), 0), id)
	return int(h % uint32(len(r.workers)))
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
		ts[i] = p.decode(e)
	}
	if !p.verify(ts) {
		return false
	}
	if p.r.batch == nil || len(entries) <= 1 {
		for _, t := range ts {
			p.enqueue(t)
		}
		return true
	}
	buckets := make([][]task, len(p.r.workers))
	for _, t := range ts {
		w := p.r.workerIndex(p.u.cat, t.entity)
		buckets[w] = append(buckets[w], t)
	}
	if len(entries) <= inlineBatch && p.inFlight() == 0 {
		p.applyInline(buckets)
		return true
	}
	for w, b := range buckets {
		switch len(b) {
		case 0:
		case 1:
			p.enqueue(b[0])
		default:
			p.addInFlight(len(b))
			p.r.workers[w] <- task{p: p, kind: taskBatch, batch: b}
		}
	}
	return true
}

// decode makes the task of a log entry: its event, or why it is a dead
// letter.
func (p *partition) decode(e rueidis.XRangeSlice) task {
	t := task{p: p, kind: taskEvent, pos: e.ID, entry: e}
	ev, err := p.store.Decode(p.hctx, p.k.log, e)
	var unknown *eventstore.UnknownEventTypeError
	if err != nil && !errors.As(err, &unknown) {
		// Corrupt: dead-lettered, parking its entity if the entry
		// names one, unless it is foreign (verify).
		t.decodeErr = err
		if s := entryField(e, "s"); eventstore.ValidateEntityID(s) == nil {
			t.entity = s
		}
		return t
	}
	t.ev, t.entity = ev, ev.Stream.ID
	if unknown != nil {
		switch p.r.proj.UnknownTypes {
		case UnknownDeadLetter:
			t.decodeErr, t.letterKind = p.r.unknownTypeError(err), KindUnknownType
		case UnknownSkip:
			t.skipUnknown = true
		} // UnknownDeliver: to the handler, Data nil and Raw set
	}
	return t
}

// applyInline applies a small read with nothing else in flight for the
// partition (no event, no retry/skip of its entities) here, as one batch,
// saving the hand-off to the workers (latency at low rates). Nothing of
// these entities is queued anywhere, so order holds.
func (p *partition) applyInline(buckets [][]task) {
	var all []task
	for _, b := range buckets {
		all = append(all, b...)
	}
	p.addInFlight(len(all))
	task{p: p, kind: taskBatch, batch: all}.run()
}

func (p *partition) addInFlight(n int) {
	p.mu.Lock()
	p.inflight += n
	p.mu.Unlock()
}

func (p *partition) enqueue(t task) {
	p.addInFlight(1)
	// May block when the worker's queue is full: backpressure on the reader.
	// Workers never wait for readers, so this cannot deadlock.
	p.r.worker(p.u.cat, t.entity) <- t
}

// handle runs the (decorated) handler on one event, traced and counted.
func (r *Runner) handle(ctx context.Context, p *partition, ev eventstore.RecordedEvent) error {
	ctx, span := r.tel.start(ctx, p, ev)
	err := r.handler.Handle(readmodel.WithSource(ctx, ev.Stream), ev)
	r.tel.end(ctx, span, err, 1)
	return err
}

// handleBatch runs the BatchHandler on evs, with one span per event (each a
// child of its own event's trace context) ended with the batch's outcome. A
// panic becomes a *PanicError. A failed batch is not counted: its events are
// counted when the per-event fallback handles them.
func (r *Runner) handleBatch(ctx context.Context, p *partition, evs []eventstore.RecordedEvent) (err error) {
	spans := make([]trace.Span, len(evs))
	for i, ev := range evs {
		_, spans[i] = r.tel.start(ctx, p, ev)
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
		for _, s := range spans {
			if err != nil {
				s.RecordError(err)
				s.SetStatus(codes.Error, "batch failed; retried event by event")
			}
			s.End()
		}
		if err == nil {
			r.tel.events.Add(ctx, int64(len(evs)), r.tel.okAttrs)
		}
	}()
	return r.batch.HandleBatch(ctx, evs)
}

func asUnknown(err error, target **eventstore.UnknownEventTypeError) bool {
	return errors.As(err, target)
}
