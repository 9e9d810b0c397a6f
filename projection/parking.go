package projection

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/redis/rueidis"
)

// The runner's side of dead letters (lua/deadletter.lua): an entity whose
// event is dead-lettered is parked, and its later events wait behind it as
// letters too, until a retry applies them in version order or skips
// resolve them. Retries and skips are control requests (DeadLetters.Retry,
// Skip) that the reader polls and runs on the entity's worker, ordered with
// its live events.

// Ops of a control request (its field "op").
const (
	ctlRetry = "retry"
	ctlSkip  = "skip"
)

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

// park writes the dead letter and acks the entry in one fenced script,
// retrying while Redis fails. If it never succeeds (lease lost, stop) the
// entry stays pending and is handled again by the next holder.
func (t task) park(kind, reason string, attempts int) {
	p := t.p
	if len(reason) > 4096 {
		reason = reason[:4096]
	}
	l := letter{pos: t.pos, entity: t.entity, version: entryField(t.entry, "v"), kind: kind, reason: reason,
		attempts: attempts, envelope: entryField(t.entry, "e")}
	q := p.deadLetters().park(l)
	backoff := 50 * time.Millisecond
	for !p.lost.Load() && p.hctx.Err() == nil {
		_, err := parseDeadLetter(p.sc.deadLetter.Exec(p.hctx, p.client, q.keys(), q.args()))
		if errors.Is(err, ErrFenced) {
			p.lose("fenced while dead-lettering")
			return
		}
		if err == nil {
			p.r.notifyAcked()
			return
		}
		p.log.Warn("projection: dead-lettering failed; retrying", "position", t.pos, "err", err)
		sleepCtx(p.hctx, backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// deadLetters is the base of the partition's calls of deadletter.lua.
func (p *partition) deadLetters() deadLetterRequest {
	return deadLetterRequest{k: p.k, lease: p.lease, group: p.group}
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
	letters, err := readLetters(p.hctx, p.client, p.store, p.group, p.u.cat, p.u.p, p.k.dlq)
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
	n, err := p.client.Do(p.hctx, p.client.B().Hexists().Key(p.k.parked).Field(t.entity).Build()).AsBool()
	if err == nil && !n {
		p.setParked(t.entity, false)
		p.r.notifyAcked()
	}
}

func (t task) resolve(letterID string) (int64, error) {
	p := t.p
	q := p.deadLetters().resolve(letterID, t.entity)
	left, err := parseDeadLetter(p.sc.deadLetter.Exec(p.hctx, p.client, q.keys(), q.args()))
	if errors.Is(err, ErrFenced) {
		p.lose("fenced while resolving a dead letter")
		return 0, ErrFenced
	}
	if err != nil {
		p.log.Warn("projection: resolving dead letter failed", "letter", letterID, "err", err)
		return 0, err
	}
	n, _ := left.AsInt64()
	return n, nil
}

func (t task) ctlDone() {
	p := t.p
	if t.ctlID == "" || p.lost.Load() {
		return
	}
	q := p.deadLetters().ctlDone(t.ctlID)
	if err := p.sc.deadLetter.Exec(p.hctx, p.client, q.keys(), q.args()).Error(); err != nil {
		p.log.Warn("projection: deleting a handled control request failed; it will run again", "id", t.ctlID, "err", err)
	}
}

// pollControl queues the retry/skip requests after lastCtl and returns the
// last id seen.
func (p *partition) pollControl(lastCtl string) string {
	c := p.client
	es, err := c.Do(p.rctx, c.B().Xrange().Key(p.k.ctl).Start("("+lastCtl).End("+").Count(100).Build()).AsXRangeSlices()
	if err != nil {
		if !p.stopping() {
			p.warns.warn(p.log, "control", "projection: reading control requests failed", "err", err)
		}
		return lastCtl
	}
	for _, e := range es {
		lastCtl = e.ID
		f := fieldMap(e.FieldValues)
		t := task{p: p, ctlID: e.ID, entity: f["s"], letterID: f["id"]}
		switch f["op"] {
		case ctlRetry:
			t.kind = taskRetry
		case ctlSkip:
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
