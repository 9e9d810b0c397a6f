package eventstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/versionid"
)

// StreamAppend is one stream's part of a multi-stream append.
type StreamAppend struct {
	Stream   StreamID
	Expected ExpectedVersion
	Events   []Event
}

// Append appends events to one stream if its version matches expected, and
// returns the stream's new version and the events' log positions. All events
// are written or none. An append whose event ids are already stored right
// after the expected version is a retry: it writes nothing and returns the
// original result with Replayed set.
func (s *Store) Append(ctx context.Context, stream StreamID, expected ExpectedVersion, events ...Event) (AppendResult, error) {
	res, err := s.AppendMulti(ctx, StreamAppend{Stream: stream, Expected: expected, Events: events})
	if err != nil {
		return AppendResult{}, err
	}
	return res[0], nil
}

// AppendMulti appends to several streams atomically: every stream's expected
// version is checked, then all events are written, or nothing is. The streams
// must share a category and a partition (ErrCrossPartition otherwise), since
// one script can only touch one hash slot.
func (s *Store) AppendMulti(ctx context.Context, appends ...StreamAppend) ([]AppendResult, error) {
	if err := ctx.Err(); err != nil {
		// Fail before touching Redis: rueidis shares a connection being
		// dialled among callers, so a dead context must not start the dial.
		return nil, err
	}
	ctx, span, start := s.startAppend(ctx, appends)
	res, err := s.appendMulti(ctx, appends)
	s.endAppend(ctx, span, start, appends, res, err)
	return res, err
}

func (s *Store) appendMulti(ctx context.Context, appends []StreamAppend) ([]AppendResult, error) {
	req, err := s.prepare(ctx, appends)
	if err != nil {
		return nil, err
	}
	if s.opts.maxBatch > 1 {
		return s.queueOf(req).submit(ctx, s, req)
	}
	s.execute(ctx, []*appendReq{req})
	if req.err != nil {
		return nil, req.err
	}
	return req.res, nil
}

// appendReq is one transaction (one Append or AppendMulti call).
type appendReq struct {
	ctx      context.Context
	tag      string // hash tag: the group-commit queue
	log      string
	streams  []StreamAppend
	parts    []int
	keys     []string // entity stream keys, one per stream
	tombs    []string // their stream tombstones
	args     []string // this transaction's ARGV part, key indexes relative to keys (1-based)
	bytes    int
	res      []AppendResult
	err      error
	done     chan struct{} // closed once res and err are set
	dequeued bool          // taken into a batch (under commitQueue.mu)
}

// prepare validates and encodes everything before anything is sent: invalid
// input never reaches Redis (not even the category's metadata). The streams
// are validated here, once; routing them (place) does not check them again.
func (s *Store) prepare(ctx context.Context, appends []StreamAppend) (*appendReq, error) {
	nev, err := checkAppends(appends)
	if err != nil {
		return nil, err
	}
	req := &appendReq{streams: appends, parts: make([]int, len(appends)), keys: make([]string, len(appends)), tombs: make([]string, len(appends))}
	if err := s.encode(ctx, req, nev); err != nil {
		return nil, err
	}
	if err := s.place(ctx, req); err != nil {
		return nil, err
	}
	return req, nil
}

// checkAppends checks the shape of a transaction: valid stream ids, each
// once, of one category, each with events and a valid expected version. It
// returns the number of events.
func checkAppends(appends []StreamAppend) (events int, err error) {
	if len(appends) == 0 {
		return 0, ErrEmptyAppend
	}
	for i, a := range appends {
		if err := a.Stream.Validate(); err != nil {
			return 0, err
		}
		if len(a.Events) == 0 {
			return 0, fmt.Errorf("append to %s: %w", a.Stream, ErrEmptyAppend)
		}
		if !a.Expected.valid() {
			return 0, fmt.Errorf("append to %s: %w: invalid expected version %d", a.Stream, ErrInvalidEvent, int64(a.Expected))
		}
		for j := range i {
			if appends[j].Stream == a.Stream {
				return 0, fmt.Errorf("append: %w: stream %s appears twice", ErrInvalidEvent, a.Stream)
			}
		}
		if a.Stream.Category != appends[0].Stream.Category {
			return 0, &CrossPartitionError{A: appends[0].Stream, B: a.Stream, PartitionA: -1, PartitionB: -1}
		}
		events += len(a.Events)
	}
	return events, nil
}

// encode builds req's ARGV part: the number of streams, then per stream its
// part (appendStreamPart) and per event its entry id (when the expected
// version is exact) and envelope.
func (s *Store) encode(ctx context.Context, req *appendReq, events int) error {
	req.args = make([]string, 0, 1+len(req.streams)*5+events*2)
	req.args = append(req.args, strconv.Itoa(len(req.streams)))
	enc := eventEncoder{s: s, ctx: ctx, nanos: s.opts.clock().UTC().UnixNano()}
	if events > 1 { // duplicate ids within one append; none to find in a single event
		enc.seen = make(map[uuid.UUID]struct{}, events)
	}
	for i, a := range req.streams {
		req.args = append(req.args, appendStreamPart(i+2, a)...)
		for j := range a.Events {
			env, err := enc.envelope(a, j)
			if err != nil {
				return err
			}
			req.bytes += len(env)
			vid := ""
			if a.Expected >= 0 {
				vid = versionid.Format(uint64(a.Expected) + uint64(j) + 1)
			}
			req.args = append(req.args, vid, rueidis.BinaryString(env))
		}
	}
	return nil
}

// eventEncoder encodes the events of one transaction.
type eventEncoder struct {
	s     *Store
	ctx   context.Context
	nanos int64                  // the transaction's timestamp
	seen  map[uuid.UUID]struct{} // event ids so far; nil for a single event
}

// envelope returns the encoded envelope of event j of a, giving the event
// an id if it has none.
func (e *eventEncoder) envelope(a StreamAppend, j int) ([]byte, error) {
	ev := &a.Events[j]
	ti := e.s.opts.registry.lookupType(ev.Data)
	if ti == nil {
		return nil, &UnknownEventTypeError{Type: fmt.Sprintf("%T", ev.Data), Stream: a.Stream}
	}
	if ev.ID == uuid.Nil {
		// Filled in place so a caller that retries the same slice
		// retries with the same ids.
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		ev.ID = id
	}
	if e.seen != nil {
		if _, dup := e.seen[ev.ID]; dup {
			return nil, &InvalidEventError{Stream: a.Stream, Index: j, Reason: "event id " + ev.ID.String() + " appears twice"}
		}
		e.seen[ev.ID] = struct{}{}
	}
	data, err := codecFor(e.ctx, e.s.opts.codec, a.Stream).Marshal(ev.Data)
	if err != nil {
		return nil, &InvalidEventError{Stream: a.Stream, Index: j, Reason: "encode " + ti.name, Err: err}
	}
	env, err := encodeEnvelope(&envelope{id: ev.ID, typ: ti.name, schemaVersion: ti.schemaVersion, nanos: e.nanos, data: data, Metadata: ev.Metadata})
	if err != nil {
		return nil, &InvalidEventError{Stream: a.Stream, Index: j, Reason: "encode envelope", Err: err}
	}
	if limit := e.s.opts.maxEventSize; len(env) > limit {
		return nil, &EventTooLargeError{Stream: a.Stream, Type: ti.name, Size: len(env), Max: limit}
	}
	return env, nil
}

// place routes req's streams, checked by checkAppends: their category's
// partition count (creating the category if it is new), their partition,
// which must be the same for all, and their keys.
func (s *Store) place(ctx context.Context, req *appendReq) error {
	first := req.streams[0].Stream
	n, err := s.partitions(ctx, first.Category, true)
	if err != nil {
		return err
	}
	for i, a := range req.streams {
		p := PartitionOf(a.Stream.ID, n)
		if i > 0 && p != req.parts[0] {
			return &CrossPartitionError{A: first, B: a.Stream, PartitionA: req.parts[0], PartitionB: p}
		}
		req.parts[i], req.keys[i], req.tombs[i] = p, s.keys.Stream(a.Stream, p), s.keys.Tombstone(a.Stream, p)
	}
	req.tag = s.keys.Tag(first.Category, req.parts[0])
	req.log = s.keys.Log(first.Category, req.parts[0])
	return nil
}

// execute sends a batch of transactions in one script call (of one
// partition on a cluster; see Store.queueOf) and hands every request its
// result.
func (s *Store) execute(ctx context.Context, batch []*appendReq) {
	keys, args := batchArgs(batch)
	var reply rueidis.RedisMessage
	acked := -1
	// A call Redis refused without running it (a slot being migrated,
	// LOADING, BUSY) wrote nothing: it is sent again, the whole batch, until
	// the batch's deadline. See retryRefused.
	err := s.retryRefused(ctx, func() (err error) {
		if s.opts.durability.enabled() {
			reply, acked, err = s.execDurable(ctx, keys, args)
		} else {
			reply, err = s.appendScript.Exec(ctx, s.client, keys, args).ToMessage()
		}
		return err
	})
	var resp []rueidis.RedisMessage
	if err == nil {
		if reply.IsString() && args[0] == loneCall {
			// The lone path's reply: the position of a lone call's event.
			resp = []rueidis.RedisMessage{reply}
		} else {
			resp, err = reply.ToArray()
		}
	}
	if err == nil && len(resp) != len(batch) {
		err = fmt.Errorf("append script returned %d results for %d transactions", len(resp), len(batch))
	}
	if err != nil {
		for _, r := range batch {
			r.err = fmt.Errorf("append to %s: %w", r.streams[0].Stream, classify(err))
		}
		return
	}
	for i, r := range batch {
		r.res, r.err = r.decodeResult(resp[i])
		if r.err == nil && acked >= 0 && acked < s.opts.durability.Replicas {
			r.err = &DurabilityError{Results: r.res, Wanted: s.opts.durability.Replicas, Acked: acked}
			r.res = nil
		}
	}
}

// loneCall is ARGV[1] of append.lua's lone call: one lone transaction alone.
const loneCall = "0"

// lone reports whether r is a lone transaction of append.lua: one stream,
// one event, an exact expected version > 0 or any version (Any,
// StreamExists). Its part of ARGV leaves out what the general layout needs
// for others (S, N, the expected version beside its id).
func (r *appendReq) lone() bool {
	if len(r.streams) != 1 || len(r.streams[0].Events) != 1 {
		return false
	}
	e := r.streams[0].Expected
	return e > 0 || e == Any || e == StreamExists
}

// appendLone appends to args a lone transaction's entity id, expected (its
// id, or the code of Any and StreamExists), entry id and envelope, taken
// from its general part (S, key index, entity id, expected, expected id, N,
// entry id, envelope).
func (r *appendReq) appendLone(args []string) []string {
	expected := r.args[4]
	if r.streams[0].Expected < 0 {
		expected = r.args[3]
	}
	return append(args, r.args[2], expected, r.args[6], r.args[7])
}

// batchArgs builds the KEYS and ARGV of a batch's script call: per
// transaction the index of its partition log (each log once, negated for
// a lone transaction) and its part, with its streams' key indexes
// rewritten to where their keys are. A batch of one lone transaction is a
// lone call: the log, stream and tombstone keys; 0 and its lone part.
func batchArgs(batch []*appendReq) (keys, args []string) {
	if r := batch[0]; len(batch) == 1 && r.lone() {
		return []string{r.log, r.keys[0], r.tombs[0]}, r.appendLone(append(make([]string, 0, 5), loneCall))
	}
	nkeys, nargs := 0, 1
	for _, r := range batch {
		nkeys += 1 + 2*len(r.keys)
		nargs += 1 + len(r.args)
	}
	keys = make([]string, 0, nkeys)
	args = make([]string, 0, nargs)
	args = append(args, strconv.Itoa(len(batch)))
	logs := make(map[string]string, 1)
	for _, r := range batch {
		li, ok := logs[r.log]
		if !ok {
			keys = append(keys, r.log)
			li = strconv.Itoa(len(keys))
			logs[r.log] = li
		}
		if r.lone() {
			keys = append(keys, r.keys[0], r.tombs[0])
			args = r.appendLone(append(args, "-"+li, strconv.Itoa(len(keys)-1)))
			continue
		}
		args = append(args, li, r.args[0])
		// Rewrite the key indexes: each stream's part starts with the
		// index of its key, followed by its tombstone's.
		a := 1
		for i := range r.streams {
			keys = append(keys, r.keys[i], r.tombs[i])
			args = append(args, strconv.Itoa(len(keys)-1))
			n := appendStreamArgs + 2*len(r.streams[i].Events)
			args = append(args, r.args[a+1:a+n]...)
			a += n
		}
	}
	return keys, args
}

// decodeResult reads the script's reply for this transaction: its results,
// or the error its status names.
func (r *appendReq) decodeResult(m rueidis.RedisMessage) ([]AppendResult, error) {
	if m.IsString() {
		return r.decodeHot(m)
	}
	arr, err := m.ToArray()
	if err != nil || len(arr) == 0 {
		return nil, fmt.Errorf("append to %s: bad script reply: %v", r.streams[0].Stream, err)
	}
	st, err := arr[0].AsInt64()
	if err != nil {
		return nil, fmt.Errorf("append to %s: bad script reply: %w", r.streams[0].Stream, err)
	}
	switch status := appendStatus(st); status {
	case appendAppended, appendReplayed:
		return r.decodeWritten(arr, status == appendReplayed)
	case appendDamaged:
		return nil, r.decodeDamage(arr)
	case appendFailed:
		return nil, r.decodeFailure(arr)
	case appendConflict:
		return nil, r.decodeConflict(arr)
	default:
		return nil, fmt.Errorf("append to %s: bad script reply: unknown status %d", r.streams[0].Stream, st)
	}
}

// decodeHot reads the reply of a lone transaction that lone appended at
// its exact expected version: the event's log position.
func (r *appendReq) decodeHot(m rueidis.RedisMessage) ([]AppendResult, error) {
	sa := r.streams[0]
	if len(r.streams) != 1 || len(sa.Events) != 1 || sa.Expected < 1 {
		return nil, fmt.Errorf("append to %s: bad script reply: a lone position for %d streams, %d events", sa.Stream, len(r.streams), len(sa.Events))
	}
	ps, _ := m.ToString()
	pos, err := ParsePosition(ps)
	if err != nil {
		return nil, fmt.Errorf("append to %s: bad position in reply: %w", sa.Stream, err)
	}
	return []AppendResult{{Stream: sa.Stream, Partition: r.parts[0], Version: uint64(sa.Expected) + 1, Positions: []Position{pos}}}, nil
}

// decodeDamage reads a damaged-stream reply: {DAMAGED, stream index, version, last}.
func (r *appendReq) decodeDamage(arr []rueidis.RedisMessage) error {
	if len(arr) != 4 {
		return fmt.Errorf("append to %s: bad damage reply", r.streams[0].Stream)
	}
	idx, _ := arr[1].AsInt64()
	ver, _ := arr[2].AsInt64()
	last, _ := arr[3].AsInt64()
	if idx < 1 || int(idx) > len(r.streams) {
		return fmt.Errorf("append to %s: bad damage reply", r.streams[0].Stream)
	}
	return &DamagedStreamError{Stream: r.streams[idx-1].Stream, Version: uint64(ver), Last: uint64(last)}
}

// decodeFailure reads a failed-write reply: {FAILED, partial, message}. One
// write of this transaction failed; the others of the batch have their own
// outcomes.
func (r *appendReq) decodeFailure(arr []rueidis.RedisMessage) error {
	if len(arr) != 3 {
		return fmt.Errorf("append to %s: bad failure reply", r.streams[0].Stream)
	}
	partial, _ := arr[1].AsInt64()
	msg, _ := arr[2].ToString()
	return &AppendFailedError{Stream: r.streams[0].Stream, Partial: partial != 0, Reason: msg}
}

// decodeConflict reads a wrong-version reply: {CONFLICT, stream index, actual version}.
func (r *appendReq) decodeConflict(arr []rueidis.RedisMessage) error {
	if len(arr) != 3 {
		return fmt.Errorf("append to %s: bad conflict reply", r.streams[0].Stream)
	}
	idx, _ := arr[1].AsInt64()
	actual, _ := arr[2].AsInt64()
	if idx < 1 || int(idx) > len(r.streams) {
		return fmt.Errorf("append to %s: bad conflict reply", r.streams[0].Stream)
	}
	sa := r.streams[idx-1]
	return &WrongVersionError{Stream: sa.Stream, Expected: sa.Expected, Actual: uint64(actual)}
}

// decodeWritten reads the reply of a transaction written (or replayed):
// {status, per stream {version, position per event}}.
func (r *appendReq) decodeWritten(arr []rueidis.RedisMessage, replayed bool) ([]AppendResult, error) {
	if len(arr) != len(r.streams)+1 {
		return nil, fmt.Errorf("append to %s: bad script reply length", r.streams[0].Stream)
	}
	out := make([]AppendResult, len(r.streams))
	for i, sa := range r.streams {
		vals, err := arr[i+1].ToArray()
		if err != nil || len(vals) != len(sa.Events)+1 {
			return nil, fmt.Errorf("append to %s: bad script reply for stream %s", r.streams[0].Stream, sa.Stream)
		}
		ver, err := vals[0].AsInt64()
		if err != nil {
			return nil, fmt.Errorf("append to %s: bad version in reply: %w", sa.Stream, err)
		}
		res := AppendResult{Stream: sa.Stream, Partition: r.parts[i], Version: uint64(ver), Replayed: replayed, Positions: make([]Position, len(sa.Events))}
		for j := range sa.Events {
			ps, err := vals[j+1].ToString()
			if err == nil && ps != "" {
				res.Positions[j], err = ParsePosition(ps)
			}
			if err != nil {
				return nil, fmt.Errorf("append to %s: bad position in reply: %w", sa.Stream, err)
			}
		}
		out[i] = res
	}
	return out, nil
}

// commitQueue groups the appends of one partition. A flusher goroutine
// sends a batch, and when the call returns takes everything that queued up
// meanwhile as the next batch, until the queue is empty; at most inflight
// flushers run per partition. No timers: a lone append goes out at once.
// Callers wait for their own result or their own context, whichever comes
// first, so a caller is never held past its deadline by someone else's.
type commitQueue struct {
	mu       sync.Mutex
	inflight int
	pending  []*appendReq
}

// queueOf returns the group-commit queue of req: its partition's on a
// cluster, where a script's keys must share a slot; the store's one queue
// on a standalone server, where one call carries appends of every
// partition. A server whose mode New could not learn is treated as a
// cluster.
func (s *Store) queueOf(req *appendReq) *commitQueue {
	tag := req.tag
	if s.shareQueue {
		tag = ""
	}
	if q, ok := s.queues.Load(tag); ok {
		return q.(*commitQueue)
	}
	q, _ := s.queues.LoadOrStore(tag, &commitQueue{})
	return q.(*commitQueue)
}

func (q *commitQueue) submit(ctx context.Context, s *Store, req *appendReq) ([]AppendResult, error) {
	req.ctx = ctx
	req.done = make(chan struct{})
	q.mu.Lock()
	if q.inflight < s.opts.inflight {
		q.inflight++
		req.dequeued = true
		q.mu.Unlock()
		go q.flush(s, []*appendReq{req})
	} else {
		q.pending = append(q.pending, req)
		q.mu.Unlock()
	}
	select {
	case <-req.done:
		if req.err != nil {
			return nil, req.err
		}
		return req.res, nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	inFlight := req.dequeued
	if !inFlight {
		for i, p := range q.pending {
			if p == req {
				q.pending = append(q.pending[:i], q.pending[i+1:]...)
				break
			}
		}
	}
	q.mu.Unlock()
	if inFlight {
		// Sent: Redis decides its outcome, which this caller will not learn.
		// As after a network timeout, retrying the same events is safe.
		return nil, fmt.Errorf("append to %s: outcome unknown: %w", req.streams[0].Stream, ctx.Err())
	}
	return nil, fmt.Errorf("append to %s: %w", req.streams[0].Stream, ctx.Err())
}

// flush sends batch, then every batch that queued up meanwhile, then
// releases its in-flight slot.
func (q *commitQueue) flush(s *Store, batch []*appendReq) {
	for batch != nil {
		ctx, cancel := batchContext(batch)
		s.execute(ctx, batch)
		cancel()
		for _, r := range batch {
			close(r.done)
		}
		q.mu.Lock()
		batch = nil
		if len(q.pending) > 0 {
			n, bytes := 0, 0
			for n < len(q.pending) && n < s.opts.maxBatch && (n == 0 || bytes+q.pending[n].bytes <= s.opts.maxBatchBytes) {
				bytes += q.pending[n].bytes
				n++
			}
			batch = make([]*appendReq, n)
			copy(batch, q.pending)
			q.pending = append(q.pending[:0], q.pending[n:]...)
			for _, r := range batch {
				r.dequeued = true
			}
		} else {
			q.inflight--
		}
		q.mu.Unlock()
	}
}

// batchContext is the context of a grouped call: no single caller giving up
// may cancel it, since the others still wait for it. It keeps the first
// request's values and ends at the latest deadline of the batch (none if a
// request has none: rueidis' own timeouts bound it then).
func batchContext(batch []*appendReq) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(batch[0].ctx)
	var latest time.Time
	for _, r := range batch {
		d, ok := r.ctx.Deadline()
		if !ok {
			return base, func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(base, latest)
}
