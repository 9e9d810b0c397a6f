package readmodel

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/luascript"
)

// maxBatchCall bounds the writes of one script call (a script blocks the
// server while it runs): past it, new keys go to another call, sent in the
// same round trip. One key's writes are never split.
const maxBatchCall = 256

// Batch collects version-guarded writes (of one or more models over the same
// client) and sends them together: Exec runs one script call per hash slot
// (per up to 256 writes; on a standalone server every key is in "one slot"),
// all pipelined in one round trip. Each write keeps the guard of Model.Set,
// Patch and Delete, and the writes to one key apply in the order they were
// added, so a batch of several entities' events keeps per-entity order.
//
// The zero Batch is ready to use. It is not safe for concurrent use.
type Batch struct {
	client rueidis.Client
	writes []batchWrite
	err    error
	source string // see Source
}

type batchWrite struct {
	m       *Model  // a Model write, or
	r       *Rollup // a Rollup write (source is then its stream)
	id      string
	key     string
	version uint64
	ttl     int64
	op      writeOp // a Model write's (zero for a Rollup's)
	source  string
	args    []string
}

// Len returns the number of writes queued.
func (b *Batch) Len() int { return len(b.writes) }

// Reset empties the batch for reuse.
func (b *Batch) Reset() {
	clear(b.writes)
	b.writes, b.client, b.err, b.source = b.writes[:0], nil, nil, ""
}

// Source says that the writes queued from now on apply an event of stream
// (as WithSource does for single writes): Model entries refuse a write from
// another stream than the one that fed them, with a *MixedSourcesError.
// projection.Writes calls it before each event's WriteFunc. The zero
// StreamID clears it.
func (b *Batch) Source(stream eventstore.StreamID) {
	b.source = ""
	if stream.ID != "" {
		b.source = stream.String()
	}
}

func (b *Batch) add(m *Model, id string, version uint64, ttl int64, op writeOp, args []string) error {
	if b.err != nil {
		return b.err
	}
	if err := m.check(id, version); err != nil {
		return err
	}
	if b.client == nil {
		b.client = m.client
	} else if b.client != m.client {
		return invalid("batch: model %s uses another client than the batch's earlier writes", m.name)
	}
	b.writes = append(b.writes, batchWrite{m: m, id: id, key: m.Key(id), version: version, ttl: ttl, op: op, source: b.source, args: args})
	return nil
}

// Set queues m.Set(id, version, fields).
func (b *Batch) Set(m *Model, id string, version uint64, fields map[string]string) error {
	args := make([]string, 0, 2*len(fields))
	for f, v := range fields {
		if err := checkField(f); err != nil {
			return err
		}
		args = append(args, f, v)
	}
	return b.add(m, id, version, m.opts.ttl.Milliseconds(), opSet, args)
}

// Patch queues m.Patch(id, version, ops...).
func (b *Batch) Patch(m *Model, id string, version uint64, ops ...Op) error {
	args := make([]string, 0, 3*len(ops))
	for _, op := range ops {
		if err := checkPatchOp(op); err != nil {
			return err
		}
		args = append(args, codeArg(op.kind), op.field, op.value)
	}
	return b.add(m, id, version, m.opts.ttl.Milliseconds(), opPatch, args)
}

// Apply queues r.Apply(id, source, version, ops...). Rollup and Model writes
// may share a batch (over one client); each goes in its own script calls.
// Queuing the same event twice for one entry is refused (ErrInvalid): the
// second would be skipped as a redelivery, so give all of an event's ops
// for an entry in one Apply.
func (b *Batch) Apply(r *Rollup, id string, source eventstore.StreamID, version uint64, ops ...Op) error {
	if b.err != nil {
		return b.err
	}
	if err := r.check(id, source, version); err != nil {
		return err
	}
	args, err := rollupArgs(ops)
	if err != nil {
		return err
	}
	if b.client == nil {
		b.client = r.client
	} else if b.client != r.client {
		return invalid("batch: rollup %s uses another client than the batch's earlier writes", r.name)
	}
	key, src := r.Key(id), source.String()
	for i := len(b.writes) - 1; i >= 0; i-- {
		if w := b.writes[i]; w.r != nil && w.key == key && w.source == src && w.version == version {
			return invalid("batch: %s v%d applied twice to rollup %s %q: give all of an event's ops for an entry in one Apply", source, version, r.name, id)
		}
	}
	b.writes = append(b.writes, batchWrite{r: r, id: id, key: key, version: version, source: src, args: args})
	return nil
}

// Delete queues m.Delete(id, version).
func (b *Batch) Delete(m *Model, id string, version uint64) error {
	return b.add(m, id, version, m.opts.tombstoneTTL.Milliseconds(), opDel, nil)
}

// Exec sends the queued writes and empties the batch. It returns, per write
// in the order added, whether it was applied (false: skipped by the guard,
// or a patch deferred because its entry was missing; see Model.Patch). The
// guard is the context's, as for single writes (see WithNextGuard).
//
// A patch that meets a missing entry on a model without a Loader is refused
// as by Model.Patch: nothing is written for it nor for its key's later
// writes in the batch, the other keys' writes apply, and Exec returns the
// first such *MissingEntryError (matching ErrMissingEntry).
//
// Failures: all writes of one key go in one script call, which applies its
// writes in order and stops at the first failing one (a malformed entry, a
// HINCRBY on a non-number); calls for other slots succeed or fail on their
// own. So after an error, the writes applied to each key are a prefix of
// that key's writes, in version order — never a later version without an
// earlier one — and running the same writes again, as a batch or one by
// one, applies exactly the rest (the applied ones are skipped by the guard).
func (b *Batch) Exec(ctx context.Context) ([]bool, error) {
	defer b.Reset()
	if len(b.writes) == 0 {
		return nil, nil
	}
	groups := b.group(guardOf(ctx))
	calls := make([]luascript.Call, len(groups))
	for i, g := range groups {
		calls[i] = luascript.Call{Script: writesCall, Keys: g.keys, Args: g.args.args}
		if g.rollup {
			calls[i].Script = rollupCall
		}
	}
	applied := make([]bool, len(b.writes))
	var firstErr error
	for gi, res := range luascript.ExecMulti(ctx, b.client, calls) {
		if err := b.collect(groups[gi], res, applied); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return applied, firstErr
}

// batchGroup is the writes of one script call: writes.lua, or rollup.lua
// for a rollup's, over keys of one hash slot.
type batchGroup struct {
	rollup bool
	idx    []int // the writes, indexes into Batch.writes
	keys   []string
	args   writeCall
}

// group spreads the writes over script calls, one per hash slot and script
// (per up to maxBatchCall writes), with their keys and arguments.
//
// A key's writes always share one group (one script call), so after a
// failure the writes applied to each key are a prefix, in order, of its
// writes: a later version is never applied while an earlier one of the
// same key is not. A group is closed to new keys (not to the keys already
// in it) when it reaches maxBatchCall writes.
func (b *Batch) group(guard guardMode) []*batchGroup {
	type slotKind struct {
		slot   uint16
		rollup bool
	}
	cluster := b.client.Mode() == rueidis.ClientModeCluster
	var groups []*batchGroup
	open := map[slotKind]*batchGroup{}
	byKey := map[string]*batchGroup{}
	for i, w := range b.writes {
		g := byKey[w.key]
		if g == nil {
			sk := slotKind{rollup: w.r != nil}
			if cluster {
				sk.slot = slot(w.key)
			}
			g = open[sk]
			if g == nil || len(g.idx) >= maxBatchCall {
				g = &batchGroup{rollup: sk.rollup}
				open[sk] = g
				groups = append(groups, g)
			}
			byKey[w.key] = g
		}
		g.idx = append(g.idx, i)
		g.keys = append(g.keys, w.key)
		w.appendArgs(&g.args, guard)
	}
	return groups
}

// appendArgs appends the write's arguments for its script (writes.lua or
// rollup.lua) to c.
func (w *batchWrite) appendArgs(c *writeCall, guard guardMode) {
	if w.r != nil {
		c.args = append(c.args, w.source, strconv.FormatUint(w.version, 10), codeArg(guard), strconv.Itoa(len(w.args)))
		c.args = append(c.args, w.args...)
		return
	}
	c.add(w.version, w.source, writeSettings{guard: guard, ttl: w.ttl, op: w.op, policy: w.m.onMissing()}, w.args)
}

// collect records the outcomes of group g's call, res, in applied and the
// models' counters; it returns the call's error, or else the first write
// refused (see Model.count).
func (b *Batch) collect(g *batchGroup, res rueidis.RedisResult, applied []bool) error {
	arr, err := res.ToArray()
	if err == nil && len(arr) != len(g.idx) {
		err = fmt.Errorf("%d results for %d writes", len(arr), len(g.idx))
	}
	if err != nil {
		w := b.writes[g.idx[0]]
		name := ""
		if w.r != nil {
			name = w.r.name
		} else {
			name = w.m.name
		}
		return fmt.Errorf("readmodel %s: batch of %d writes from %s: %w", name, len(g.idx), w.key, err)
	}
	var first error
	for j, i := range g.idx {
		n, _ := arr[j].AsInt64()
		w := b.writes[i]
		if w.r != nil {
			applied[i] = w.r.count(outcome(n))
			continue
		}
		var err error
		applied[i], err = w.m.count(w.id, w.version, w.source, outcome(n))
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}
