package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/versionid"
)

// seenCap bounds how many entities a partition reader remembers (verify).
const seenCap = 1 << 14

// seenEvent is the last event of an entity that a partition reader took as
// the store's.
type seenEvent struct {
	version uint64
	id      uuid.UUID
}

// verify marks the tasks whose log entries are not the events the store
// wrote into their entity streams (foreign), and the real events that show
// an earlier entry taken as the entity's was not (conflict). It returns
// false when the partition is stopping before it could ask Redis.
//
// The store writes an event to its entity stream (entry "<v>-0" whose field
// p is the log entry's id) and to the partition log in one script, so a log
// entry is the store's exactly when the stream's entry at the version it
// claims names it. Asking costs an XRANGE per event (~5 µs of Redis on a
// 100-event stream, measured: half again the whole per-event read and
// apply), so it is asked, in one round trip per read, only on anomalies:
//
//   - the first entry of an entity this reader sees (after a start, a lease
//     move, or after the entity left the reader's bounded memory);
//   - a version that does not follow the last one seen (a gap, an older one);
//   - the last version seen again with another event id;
//   - an entry that cannot be decoded.
//
// The next version of an entity already seen is taken without asking. An
// entry forged at exactly that version before the real event is therefore
// handed to the handler; when the real event then arrives (same version,
// another event id, the store's), it is dead-lettered and its entity parked,
// with a message saying that the read model must be rebuilt: loud, never
// silent.
func (p *partition) verify(ts []task) bool {
	checks := p.toCheck(ts)
	if len(checks) == 0 {
		return true
	}
	cmds, vers := p.lookups(ts, checks)
	res, ok := p.ask(cmds)
	if !ok {
		return false
	}
	return p.judge(ts, checks, vers, res)
}

// toCheck returns the indexes of the tasks to check against their entity
// streams (see verify); the others are the next events of entities seen.
func (p *partition) toCheck(ts []task) []int {
	var checks []int
	checking := map[string]bool{} // entities with an entry checked in this read: their later ones are checked too
	for i := range ts {
		t := &ts[i]
		if t.entity == "" {
			continue // corrupt, naming no entity: dead-lettered, nobody parked
		}
		if t.decodeErr == nil && !checking[t.entity] {
			if last, ok := p.seen[t.entity]; ok && (t.ev.Version == last.version+1 ||
				t.ev.Version == last.version && t.ev.ID == last.id) {
				p.remember(t.entity, t.ev.Version, t.ev.ID)
				continue
			}
		}
		checking[t.entity] = true
		checks = append(checks, i)
	}
	return checks
}

// lookups returns the XRANGEs of the entity streams' entries at the
// versions the checked entries claim, with those versions (by index into
// checks). An entry that names no version, or an entity of another
// partition, is marked foreign at once and gets no lookup.
func (p *partition) lookups(ts []task, checks []int) (rueidis.Commands, []uint64) {
	n, err := p.store.Partitions(p.rctx, p.u.cat)
	if err != nil {
		n = 0 // cached for a category being read; if Redis cannot say, the partition check below is skipped and the stream lookup still decides
	}
	ks := p.store.Keys()
	cmds := make(rueidis.Commands, 0, len(checks))
	vers := make([]uint64, len(checks))
	for j, i := range checks {
		t := &ts[i]
		vid := entryField(t.entry, "v")
		v, ok := versionid.Parse(vid)
		switch {
		case !ok:
			t.markForeign(fmt.Sprintf("log entry %s names no event of %s/%s (version %q): it was not written by the store", t.pos, p.u.cat, t.entity, vid))
			continue
		case n > 0 && eventstore.PartitionOf(t.entity, n) != p.u.p:
			t.markForeign(fmt.Sprintf("log entry %s in partition %d names %s/%s, which lives in partition %d: it was not written by the store", t.pos, p.u.p, p.u.cat, t.entity, eventstore.PartitionOf(t.entity, n)))
			continue
		}
		vers[j] = v
		key := ks.Stream(eventstore.Stream(p.u.cat, t.entity), p.u.p)
		cmds = append(cmds, p.client.B().Xrange().Key(key).Start(vid).End(vid).Build())
	}
	return cmds, vers
}

// judge marks the checked tasks by what their entity streams hold (res,
// one XRANGE reply per task not already foreign). It returns false when
// the partition is stopping before a stream's life could be read.
func (p *partition) judge(ts []task, checks []int, vers []uint64, res [][]rueidis.XRangeSlice) bool {
	lives := map[string]eventstore.StreamInfo{}
	k := 0
	for j, i := range checks {
		t := &ts[i]
		if t.foreign {
			continue
		}
		stored := res[k]
		k++
		if len(stored) == 1 {
			p.judgeStored(t, stored[0], vers[j])
			continue
		}
		// Nothing stored at that version: tell by the stream's life.
		info, seen := lives[t.entity]
		if !seen {
			var ok bool
			if info, ok = p.life(eventstore.Stream(p.u.cat, t.entity)); !ok {
				return false
			}
			lives[t.entity] = info
		}
		p.judgeByLife(t, vers[j], info)
	}
	return true
}

// judgeStored judges t, whose entity stream holds stored at version ver:
// the store's event when stored names t's log entry.
func (p *partition) judgeStored(t *task, stored rueidis.XRangeSlice, ver uint64) {
	if pos := entryField(stored, "p"); pos != t.pos {
		t.markForeign(fmt.Sprintf("log entry %s names %s/%s v%d, but the event the store wrote at that version came with log entry %s: it was not written by the store", t.pos, p.u.cat, t.entity, ver, pos))
		return
	}
	if t.decodeErr != nil {
		return // the store's event, undecodable: corrupt, parks its entity
	}
	if last, ok := p.seen[t.entity]; ok && last.version == ver && last.id != t.ev.ID {
		t.conflict = fmt.Sprintf("an entry that was not written by the store was handed to the projection as %s/%s v%d (event %s) before this event, the store's: the read model may hold it; rebuild the read model (projection.Rebuild), then skip this letter", p.u.cat, t.entity, ver, last.id)
	}
	p.remember(t.entity, ver, t.ev.ID)
}

// judgeByLife judges t, whose entity stream holds nothing at version ver,
// by the stream's life.
func (p *partition) judgeByLife(t *task, ver uint64, info eventstore.StreamInfo) {
	switch {
	case ver < info.Start:
		// An event of an earlier life, or its deletion marker.
	case ver <= info.Version && (info.First == 0 || ver < info.First):
		// Truncated behind a snapshot.
	case info.Version == 0 && info.DeletedAt == 0:
		t.markForeign(fmt.Sprintf("log entry %s names %s/%s, which has never been written: it was not written by the store", t.pos, p.u.cat, t.entity))
	case ver > info.Version:
		t.markForeign(fmt.Sprintf("log entry %s names %s/%s v%d, but that stream is at version %d: it was not written by the store", t.pos, p.u.cat, t.entity, ver, info.Version))
	default:
		t.markForeign(fmt.Sprintf("log entry %s names %s/%s v%d, which its entity stream does not hold (removed by hand?): not applied", t.pos, p.u.cat, t.entity, ver))
	}
}

// markForeign makes t a foreign letter, saying why.
func (t *task) markForeign(why string) {
	t.foreign = true
	if t.decodeErr != nil {
		t.decodeErr = fmt.Errorf("%s; and it cannot be decoded: %w", why, t.decodeErr)
	} else {
		t.decodeErr = errors.New(why)
	}
}

// remember records ev as the last event of entity taken as the store's
// (only forward: the reader may see an older one again after a failed read).
func (p *partition) remember(entity string, version uint64, id uuid.UUID) {
	if last, ok := p.seen[entity]; ok && last.version > version {
		return
	}
	if _, ok := p.seen[entity]; !ok && len(p.seen) >= seenCap {
		for k := range p.seen { // forget one, at random
			delete(p.seen, k)
			break
		}
	}
	p.seen[entity] = seenEvent{version: version, id: id}
}

// ask sends cmds (XRANGEs) in one round trip, retrying until it succeeds or
// the partition stops.
func (p *partition) ask(cmds rueidis.Commands) ([][]rueidis.XRangeSlice, bool) {
	out := make([][]rueidis.XRangeSlice, len(cmds))
	return out, p.retryRead("checking log entries against their entity streams", func(ctx context.Context) error {
		for i, r := range p.client.DoMulti(ctx, cmds...) {
			es, err := r.AsXRangeSlices()
			if err != nil {
				return err
			}
			out[i] = es
		}
		return nil
	})
}

// life returns the stream's life (Store.Info), retrying like ask.
func (p *partition) life(stream eventstore.StreamID) (info eventstore.StreamInfo, ok bool) {
	ok = p.retryRead("reading the life of "+stream.String(), func(ctx context.Context) (err error) {
		info, err = p.store.Info(ctx, stream)
		return err
	})
	return info, ok
}

// retryRead runs f until it succeeds (true) or the partition stops (false),
// with a WARN per failure and a growing pause.
func (p *partition) retryRead(what string, f func(ctx context.Context) error) bool {
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(p.rctx, 5*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return true
		}
		if p.stopping() {
			return false
		}
		p.warns.warn(p.log, "verify", "projection: "+what+" failed; retrying", "err", err)
		p.sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

func entryField(e rueidis.XRangeSlice, field string) string {
	for _, fv := range e.FieldValues {
		if fv.Field == field {
			return fv.Value
		}
	}
	return ""
}
