package lifecycle_test

import (
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/streamfold/streamfold/eventstore"
)

// This file is the reference model: plain Go, no Redis, no concurrency.
// It says what the store must hold after each step, following the semantics
// decided for issue 11 (versions continue across lives, snapshots are tied to
// a life, loads never return a silently shorter fold).

// Deposited is the one event type. Note carries a unique marker per event
// and is personal: it must never be readable in the clear after Forget.
type Deposited struct {
	Amount int64
	Note   string `shred:"personal"`
}

// Account is the aggregate state. LastNote puts a personal field into
// snapshots on purpose (a snapshot is the state, msgpack-encoded).
type Account struct {
	Balance  int64
	Count    int
	LastNote string
}

// event is one event the store acknowledged.
type event struct {
	id        uuid.UUID
	version   uint64
	amount    int64
	note      string // the marker as appended
	pos       eventstore.Position
	deleted   bool // a $deleted marker (log only)
	forgetEv  bool // a $forgotten event (Forget appends one to a live stream)
	forgotten bool // Forget ran after it was appended: Note reads back empty
}

// readNote is the note as a reader sees it.
func (e *event) readNote() string {
	if e.forgotten {
		return ""
	}
	return e.note
}

// snap is the snapshot the model believes is stored for an entity.
type snap struct {
	version uint64
	schema  int
	life    uint64 // Start of the life it was taken in
	state   Account
}

// capture is a snapshot offer taken at one step and written at a later one.
type capture struct {
	ent         int
	version     uint64
	life        uint64
	state       Account
	forgetEpoch int // the entity's Forget count when captured
}

// entity is the model of one entity stream.
type entity struct {
	id        string
	stream    eventstore.StreamID
	partition int

	live      bool     // the stream exists: written since it was last deleted
	version   uint64   // last version written in the current life (xdel'd ones included)
	start     uint64   // first version of the current (or next) life
	deletedAt uint64   // version of the last $deleted marker; 0: never deleted
	events    []*event // the current life's acknowledged events, in version order
	through   uint64   // events up to this version were truncated
	xdeled    map[uint64]bool
	snap      *snap  // nil: no snapshot stored
	forgets   int    // how many times Forget ran
	snapFloor uint64 // snapshots at or below it are refused: taken before a Forget

	// history is every event and $deleted marker ever acknowledged, in all
	// lives (the partition log keeps them; for the log check and Forget).
	history []*event
	// last is the result of the last append or delete, for WaitFor.
	last    eventstore.AppendResult
	hasLast bool
}

func newEntity(id string, partition int) *entity {
	return &entity{id: id, stream: eventstore.Stream(category, id), partition: partition, start: 1, xdeled: map[uint64]bool{}}
}

// stored reports whether version v of the current life is still in the stream.
func (e *entity) stored(v uint64) bool {
	return e.live && v >= e.start && v > e.through && v <= e.version && !e.xdeled[v]
}

// storedEvents are the current life's events still in the entity stream.
func (e *entity) storedEvents() []*event {
	var out []*event
	for _, ev := range e.events {
		if e.stored(ev.version) {
			out = append(out, ev)
		}
	}
	return out
}

// info is what Store.Info must report.
func (e *entity) info() eventstore.StreamInfo {
	i := eventstore.StreamInfo{Stream: e.stream, Start: e.start, DeletedAt: e.deletedAt, Deleted: !e.live && e.deletedAt > 0}
	if e.live {
		i.Version = e.version
		if s := e.storedEvents(); len(s) > 0 {
			i.First, i.Last = s[0].version, s[len(s)-1].version
		}
		// Damaged: its last event was removed by hand (Redis 7 tells so
		// also when nothing is left stored).
		i.Damaged = e.xdeled[e.version]
	}
	return i
}

// truncated: the oldest events of the current life are gone from the stream.
func (e *entity) truncated() bool { return e.info().Truncated() }

// anyXdel: an operator removed an event of the current life by hand.
func (e *entity) anyXdel() bool { return len(e.xdeled) > 0 }

// fold is the state after the current life's events up to version upTo,
// leaving out the events an operator removed except those in with.
func (e *entity) fold(upTo uint64, with map[uint64]bool) Account {
	var s Account
	for _, ev := range e.events {
		if ev.version > upTo || ev.forgetEv || (e.xdeled[ev.version] && !with[ev.version]) {
			continue
		}
		apply(&s, Deposited{Amount: ev.amount, Note: ev.readNote()})
	}
	return s
}

// foldsUpTo are the states a fold up to upTo may have: without the events an
// operator removed by hand, or with any of them (the history changed behind
// the library's back; a snapshot or a read model may still hold them).
func (e *entity) foldsUpTo(upTo uint64) []Account {
	var removed []uint64
	for v := range e.xdeled {
		removed = append(removed, v)
	}
	var out []Account
	for mask := 0; mask < 1<<len(removed); mask++ {
		with := map[uint64]bool{}
		for i, v := range removed {
			if mask&(1<<i) != 0 {
				with[v] = true
			}
		}
		if s := e.fold(upTo, with); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// apply is the aggregate's fold function.
func apply(s *Account, ev any) {
	if d, ok := ev.(Deposited); ok {
		s.Balance += d.Amount
		s.Count++
		s.LastNote = d.Note
	}
}

// folds are the states the current life's fold may have (see foldsUpTo).
func (e *entity) folds() []Account { return e.foldsUpTo(e.version) }

// lastKept is the version of the current life's last event not removed by
// hand (truncated or not): what a fold of the stream reached.
func (e *entity) lastKept() uint64 {
	var v uint64
	for _, ev := range e.events {
		if !e.xdeled[ev.version] {
			v = ev.version
		}
	}
	return v
}

// usableSnap: a snapshot of the current schema from the current life.
func (e *entity) usableSnap() bool {
	return e.snap != nil && e.snap.schema == stateVersion && e.snap.life == e.start && e.live && e.snap.version <= e.version
}

// loaded is what Repository.Load must return.
type loaded struct {
	gap     bool // an error matching aggregate.ErrHistoryGap
	version uint64
	states  []Account // the acceptable states (see folds)
}

// load simulates a whole load: from the usable snapshot (with snapshots)
// or the start of the life, every stored event must follow the one before.
// A jump (events truncated behind an unusable snapshot, or a hole an
// operator's XDEL left before a later append) is ErrHistoryGap, and so is
// a live stream with nothing to fold. A stream whose tail was XDEL'd loads
// at its last stored event (Info.Last): Update refuses it (ErrHistoryGap).
func (e *entity) load(withSnapshots bool) loaded {
	if !e.live {
		return loaded{states: []Account{{}}}
	}
	base := e.start - 1
	if withSnapshots && e.usableSnap() {
		base = e.snap.version
	}
	for _, ev := range e.storedEvents() {
		if ev.version <= base {
			continue
		}
		if ev.version != base+1 {
			return loaded{gap: true}
		}
		base = ev.version
	}
	if base == e.start-1 {
		return loaded{gap: true} // a live stream with nothing to fold
	}
	return loaded{version: base, states: e.foldsUpTo(base)}
}

// updateRefused: Repository.Update must fail with ErrHistoryGap (the load
// does, or it stops short of the stream's version: a tail removed by hand).
func (e *entity) updateRefused(withSnapshots bool) bool {
	l := e.load(withSnapshots)
	// A stream whose last event was removed by hand stays damaged, even
	// when a snapshot covers the removed event: its save is refused.
	return l.gap || (e.live && l.version != e.version) || (e.live && e.xdeled[e.version])
}

// expectation is the predicted outcome of one stream's part of an append.
type expectation struct {
	ok       bool   // appended (or replayed)
	replayed bool   // recognised as a retry: nothing written
	first    uint64 // version of the first event appended (or replayed)
	actual   uint64 // for a WrongVersionError: the version it must report
	// damaged: the stream's tail was removed by hand; the append must write
	// nothing: ErrStreamDamaged, or the outcome below if it writes nothing.
	damaged bool
}

func (x expectation) String() string {
	if x.damaged {
		return "ErrStreamDamaged (or a write-free " + expectation{ok: x.ok, replayed: x.replayed, first: x.first, actual: x.actual}.String() + ")"
	}
	switch {
	case x.replayed:
		return fmt.Sprintf("replayed at v%d", x.first)
	case x.ok:
		return fmt.Sprintf("appended from v%d", x.first)
	}
	return fmt.Sprintf("WrongVersionError{Actual: %d}", x.actual)
}

// replayAt reports whether the events with ids are stored at versions
// from, from+1, ... of the current life.
func (e *entity) replayAt(from uint64, ids []uuid.UUID) bool {
	if from == 0 {
		return false
	}
	for i, id := range ids {
		v := from + uint64(i)
		if !e.stored(v) || e.eventAt(v).id != id {
			return false
		}
	}
	return true
}

func (e *entity) eventAt(v uint64) *event {
	for _, ev := range e.events {
		if ev.version == v {
			return ev
		}
	}
	return nil
}

// expect predicts a single-stream append of events with ids.
//
//   - Exact(v > 0): appends when the live stream is at v; a retry when the
//     ids are stored right after v; else WrongVersion.
//   - NoStream: appends when there is no live stream (the new life starts
//     at Start); a retry when the ids begin the current life.
//   - Any, StreamExists: a retry when the ids are the last events stored;
//     else Any appends, StreamExists appends only to a live stream.
func (e *entity) expect(exp eventstore.ExpectedVersion, ids []uuid.UUID) expectation {
	x := e.expectWhole(exp, ids)
	x.damaged = e.live && e.xdeled[e.version]

	return x
}

// expectWhole predicts an append to a stream whose tail is whole.
func (e *entity) expectWhole(exp eventstore.ExpectedVersion, ids []uuid.UUID) expectation {
	n := uint64(len(ids))
	next := e.start
	if e.live {
		next = e.version + 1
	}
	actual := uint64(0)
	if e.live {
		actual = e.version
	}
	// The tail is what the stream stores last (below its version when an
	// operator removed its last events).
	last := e.info().Last
	tail := e.live && last >= n && e.replayAt(last-n+1, ids)
	switch {
	case exp > 0:
		v := uint64(exp)
		switch {
		case !e.live:
			return expectation{actual: 0}
		case e.version == v:
			return expectation{ok: true, first: next}
		case e.replayAt(v+1, ids):
			return expectation{ok: true, replayed: true, first: v + 1}
		}
		return expectation{actual: actual}
	case exp == eventstore.NoStream:
		if !e.live {
			return expectation{ok: true, first: next}
		}
		if e.replayAt(e.start, ids) {
			return expectation{ok: true, replayed: true, first: e.start}
		}
		return expectation{actual: actual}
	case exp == eventstore.StreamExists && !e.live:
		return expectation{actual: 0}
	}
	if tail {
		return expectation{ok: true, replayed: true, first: last - n + 1}
	}
	return expectation{ok: true, first: next}
}

// appended records an acknowledged append of evs, the last at res.Version.
func (e *entity) appended(res eventstore.AppendResult, evs []*event) {
	if !e.live {
		e.live = true
		e.events, e.through = nil, 0
		e.xdeled = map[uint64]bool{}
	}
	first := res.Version - uint64(len(evs)) + 1
	for i, ev := range evs {
		ev.version = first + uint64(i)
		if i < len(res.Positions) {
			ev.pos = res.Positions[i]
		}
		e.events = append(e.events, ev)
		e.history = append(e.history, ev)
	}
	e.version = res.Version
	e.last, e.hasLast = res, true
}

// deleted records an acknowledged Delete (marker at res.Version). The old
// life's events leave the stream but stay in the partition log (history).
func (e *entity) deleted(res eventstore.AppendResult) {
	m := &event{version: res.Version, deleted: true}
	if len(res.Positions) > 0 {
		m.pos = res.Positions[0]
	}
	e.history = append(e.history, m)
	e.live, e.version, e.events, e.through = false, 0, nil, 0
	e.xdeled = map[uint64]bool{}
	e.deletedAt, e.start = res.Version, res.Version+1
	e.snap = nil
	e.last, e.hasLast = res, true
}

// forget marks every event of every life as unreadable and drops the snapshot.
func (e *entity) forget() {
	for _, h := range e.history {
		h.forgotten = true
	}
	e.snap = nil
	e.forgets++
	// Forget refuses every snapshot taken before it (snapshot.Invalidate).
	floor := e.deletedAt
	if e.live {
		floor = e.version
	}
	e.snapFloor = max(e.snapFloor, floor)
}

// data is the payload a reader decodes for ev.
func (ev *event) data() any {
	if ev.forgetEv {
		return eventstore.Forgotten{}
	}
	return Deposited{Amount: ev.amount, Note: ev.readNote()}
}

// forgottenNotes are the markers that must not be readable anywhere: those
// of events appended before a Forget, unless the same event was appended
// again after it (a retry re-sends its personal data; documented).
func (e *entity) forgottenNotes() []string {
	again := map[string]bool{}
	for _, h := range e.history {
		if !h.forgotten {
			again[h.note] = true
		}
	}
	var out []string
	for _, h := range e.history {
		if h.forgotten && h.note != "" && !again[h.note] {
			out = append(out, h.note)
		}
	}
	return out
}

// saveSnapshot applies an accepted Snapshot.Save to the model, and says
// whether the store must have written it.
func (e *entity) saveSnapshot(s snap) bool {
	if s.version <= e.snapFloor || s.life != e.start || !e.live || s.version > e.version || s.version < e.start {
		return false // stale: from another life, never saved
	}
	if e.snap != nil && e.snap.schema == s.schema && e.snap.version >= s.version {
		return false
	}
	e.snap = &s
	return true
}

// truncate applies a retention truncation pass to the model: behind a
// snapshot of the current life (of schema, 0: any), keeping keep events.
func (e *entity) truncate(keep int, schema int) {
	if !e.live || e.snap == nil || (schema != 0 && e.snap.schema != schema) {
		return
	}
	if e.snap.life != e.start || e.snap.version > e.version || e.snap.version <= uint64(keep) {
		return
	}
	if e.xdeled[e.version] {
		return // damaged: retention leaves it whole (Skipped["damaged stream"])
	}
	through := e.snap.version - uint64(keep)
	if through > e.through {
		e.through = through
	}
}
