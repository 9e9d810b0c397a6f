package projection

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

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
		t.park("parked", "waiting behind an earlier dead-lettered event of the entity", 0)
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

// park writes the dead letter and acks the entry in one fenced script,
// retrying while Redis fails. If it never succeeds (lease lost, stop) the
// entry stays pending and is handled again by the next holder.
func (t task) park(kind, reason string, attempts int) {
	p := t.p
	ver := ""
	env := ""
	for _, fv := range t.entry.FieldValues {
		switch fv.Field {
		case "v":
			ver = fv.Value
		case "e":
			env = fv.Value
		}
	}
	if len(reason) > 4096 {
		reason = reason[:4096]
	}
	args := []string{p.lease, p.r.proj.Name, "park", t.pos, t.entity, ver, kind, reason, strconv.Itoa(attempts), env}
	backoff := 50 * time.Millisecond
	for !p.lost.Load() && p.hctx.Err() == nil {
		arr, err := p.r.sc.deadLetter.Exec(p.hctx, p.r.client, p.dlKeys(), args).ToArray()
		if err == nil {
			if st, _ := arr[0].AsInt64(); st != 1 {
				p.lose("fenced while dead-lettering")
				return
			}
			p.r.notifyAcked()
			return
		}
		p.log.Warn("projection: dead-lettering failed; retrying", "position", t.pos, "err", err)
		sleepCtx(p.hctx, backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (p *partition) dlKeys() []string {
	return []string{p.k.lease, p.k.log, p.k.dlq, p.k.parked, p.k.ctl}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// retry applies the entity's dead letters in version order, resolving each
// that succeeds; it stops at the first failure (the entity stays parked).
func (t task) retry() {
	p := t.p
	if p.lost.Load() || t.entity == "" {
		return
	}
	letters, err := readLetters(p.hctx, p.r.client, p.r.store, p.r.proj.Name, p.u.cat, p.u.p, p.k.dlq)
	if err != nil {
		p.log.Warn("projection: retry: reading dead letters failed", "entity", t.entity, "err", err)
		return
	}
	var mine []DeadLetter
	for _, l := range letters {
		// Foreign letters are not the entity's events: never applied, only
		// skipped.
		if l.Stream.ID == t.entity && l.Kind != KindTrimmed && l.Kind != KindForeign {
			mine = append(mine, l)
		}
	}
	// Version order, not queue order: after a Redis failure while parking,
	// an entity's letters can be queued out of order.
	slices.SortStableFunc(mine, func(a, b DeadLetter) int { return cmp.Compare(a.Version, b.Version) })
	left := int64(-1)
	for _, l := range mine {
		if l.decodeErr != nil {
			p.log.Warn("projection: retry: dead letter cannot be decoded; skip it", "letter", l.ID, "err", l.decodeErr)
			return
		}
		if l.unknown && p.r.proj.UnknownTypes == UnknownDeadLetter {
			p.log.Warn("projection: retry: the letter's event type is still not registered here; entity stays parked", "letter", l.ID, "type", l.Event.Type)
			return
		}
		if err := p.r.handle(p.hctx, p, l.Event); err != nil {
			p.log.Warn("projection: retry failed; entity stays parked", "entity", t.entity, "version", l.Version, "err", err)
			return
		}
		if left, err = t.resolve(l.ID); err != nil {
			return
		}
	}
	if left == 0 || len(mine) == 0 {
		t.unparkIfClear()
	}
}

func (t task) skip() {
	if t.letterID == "" {
		return
	}
	left, err := t.resolve(t.letterID)
	if err == nil && left == 0 && t.entity != "" {
		t.unparkIfClear()
	}
}

// unparkIfClear unparks the entity in memory when Redis agrees it has no
// dead letters left.
func (t task) unparkIfClear() {
	p := t.p
	n, err := p.r.client.Do(p.hctx, p.r.client.B().Hexists().Key(p.k.parked).Field(t.entity).Build()).AsBool()
	if err == nil && !n {
		p.setParked(t.entity, false)
		p.r.notifyAcked()
	}
}

func (t task) resolve(letterID string) (int64, error) {
	p := t.p
	arr, err := p.r.sc.deadLetter.Exec(p.hctx, p.r.client, p.dlKeys(),
		[]string{p.lease, p.r.proj.Name, "resolve", letterID, t.entity}).ToArray()
	if err != nil {
		p.log.Warn("projection: resolving dead letter failed", "letter", letterID, "err", err)
		return 0, err
	}
	if st, _ := arr[0].AsInt64(); st != 1 {
		p.lose("fenced while resolving a dead letter")
		return 0, ErrFenced
	}
	left, _ := arr[1].AsInt64()
	return left, nil
}

func (t task) ctlDone() {
	p := t.p
	if t.ctlID == "" || p.lost.Load() {
		return
	}
	if err := p.r.sc.deadLetter.Exec(p.hctx, p.r.client, p.dlKeys(),
		[]string{p.lease, p.r.proj.Name, "ctldone", t.ctlID}).Error(); err != nil {
		p.log.Warn("projection: deleting a handled control request failed; it will run again", "id", t.ctlID, "err", err)
	}
}
