package snapshot

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/fnv1a"
	"github.com/streamfold/streamfold/internal/luascript"
	"github.com/streamfold/streamfold/internal/refusal"
	"github.com/streamfold/streamfold/internal/versionid"
)

var (
	//go:embed lua/load.lua
	loadLua string
	//go:embed lua/save.lua
	saveLua string
	//go:embed lua/invalidate.lua
	invalidateLua string
)

// Sentinel errors; typed errors carry the detail.
var (
	// ErrNotFound: the stream has no snapshot.
	ErrNotFound = errors.New("snapshot: not found")
	// ErrCorrupt: a stored snapshot is not in Streamfold's format.
	ErrCorrupt = errCorrupt
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("snapshot: store closed")
	// ErrStale: a snapshot does not belong to its stream's current life:
	// the stream was deleted (and perhaps started again) since the
	// snapshot was taken, or its version is beyond the stream's. It is
	// not written.
	ErrStale = errors.New("snapshot: not of the stream's current life")
)

// Snapshot is an entity's state at a version.
type Snapshot struct {
	Version       uint64    // the version of the last event folded into State
	SchemaVersion int       // the version of State's encoding; a reader wanting another ignores the snapshot
	Time          time.Time // when it was taken
	State         []byte    // the encoded state (package aggregate uses msgpack)
}

// Stats counts what a Store's background writer did.
type Stats struct {
	Queued  uint64 // snapshots accepted by Offer
	Dropped uint64 // snapshots Offer refused: queue full, or store closed
	Written uint64 // snapshots written to Redis
	Skipped uint64 // snapshots not written: a newer one was already stored
	Stale   uint64 // snapshots not written: the stream was deleted (or deleted and re-created) since (ErrStale)
	Failed  uint64 // snapshots whose write failed (logged)
	Ignored uint64 // stored snapshots ignored by Load: corrupt or unreadable
}

// Store reads and writes the snapshots of one event store's streams. Its
// background workers write the snapshots offered with Offer, so that a
// command never waits for one. It is safe for concurrent use; Close it on
// shutdown to flush the queue.
type Store struct {
	es     *eventstore.Store
	client rueidis.Client
	opts   options

	loadScript *rueidis.Lua
	saveScript *rueidis.Lua
	loadMulti  luascript.Script // load.lua, for its calls inside a MULTI (loadGuessed)

	// guesses[slot of a stream] is 1 + the version of the usable snapshot
	// the last load of a stream hashed there found (1: none; 0: no guess).
	// See loadGuessed: a wrong guess costs a round trip, never a wrong
	// result, so streams may share a slot.
	guesses [guessSlots]atomic.Uint64
	noGuess atomic.Bool // a MULTI or XRANGE was refused for good (NOPERM): loads run the script

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan job
	wg     sync.WaitGroup
	ctx    context.Context // the workers'; cancelled when Close gives up waiting
	cancel context.CancelFunc

	// recent[stream] is the newest snapshot this store queued in the last
	// minute or so. Until it is written, and for a load already in flight
	// when it is, loads still see the previous snapshot; without this, every
	// save in that window would find a snapshot due and queue another.
	recent    sync.Map // eventstore.StreamID -> pendingSnap
	lastSweep atomic.Int64

	queued, dropped, written, skipped, stale, failed, ignored atomic.Uint64
}

type pendingSnap struct {
	version uint64
	time    time.Time
}

type job struct {
	stream eventstore.StreamID
	sn     Snapshot
}

type options struct {
	policy       Policy
	queueSize    int
	workers      int
	writeTimeout time.Duration
	pageSize     int
	logger       *slog.Logger
	clock        func() time.Time
}

// Option configures a Store.
type Option func(*options)

// WithPolicy sets when snapshots are taken (default Every(100)).
func WithPolicy(p Policy) Option { return func(o *options) { o.policy = p } }

// WithQueueSize bounds the snapshots waiting to be written (default 1024).
// When the queue is full, Offer drops the snapshot (counted in
// Stats.Dropped): the next due save offers a fresher one.
func WithQueueSize(n int) Option { return func(o *options) { o.queueSize = n } }

// WithWorkers sets the number of writer goroutines (default 1; each write is
// one round trip, pipelined with the application's traffic).
func WithWorkers(n int) Option { return func(o *options) { o.workers = n } }

// WithWriteTimeout bounds one background write (default 5s).
func WithWriteTimeout(d time.Duration) Option { return func(o *options) { o.writeTimeout = d } }

// WithPageSize sets how many events the load script returns with the
// snapshot (default 256); more are read with XRANGE, a page a round trip.
func WithPageSize(n int) Option { return func(o *options) { o.pageSize = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock that timestamps snapshots (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

func (o *options) setDefaults() {
	if o.policy == nil {
		o.policy = Every(100)
	}
	if o.queueSize == 0 {
		o.queueSize = 1024
	}
	if o.workers == 0 {
		o.workers = 1
	}
	if o.writeTimeout == 0 {
		o.writeTimeout = 5 * time.Second
	}
	if o.pageSize == 0 {
		o.pageSize = 256
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.clock == nil {
		o.clock = time.Now
	}
}

// validate reports every option that cannot be applied, by name, joined.
func (o *options) validate() error {
	var errs []error
	positive := func(option string, n int) {
		if n < 1 {
			errs = append(errs, fmt.Errorf("snapshot: %s(%d): must be positive", option, n))
		}
	}
	positive("WithQueueSize", o.queueSize)
	positive("WithWorkers", o.workers)
	positive("WithPageSize", o.pageSize)
	if o.writeTimeout < 0 {
		errs = append(errs, fmt.Errorf("snapshot: WithWriteTimeout(%v): must not be negative", o.writeTimeout))
	}
	return errors.Join(errs...)
}

// New returns a snapshot Store beside es (same client, namespace and key
// layout) and starts its background writers.
func New(es *eventstore.Store, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		es:         es,
		client:     es.Client(),
		opts:       o,
		loadScript: newLoadScript(es.Server()),
		loadMulti:  luascript.NewScript(loadSource()),
		saveScript: rueidis.NewLuaScript(saveSource()),
		queue:      make(chan job, o.queueSize),
		ctx:        ctx,
		cancel:     cancel,
	}
	for range o.workers {
		s.wg.Go(s.work)
	}
	return s, nil
}

// Due reports whether the store's policy wants a snapshot (info.Now is set
// from the store's clock when zero). A snapshot this store has queued and not
// yet written (or written moments ago) counts as the latest snapshot.
func (s *Store) Due(info Info) bool {
	if info.Now.IsZero() {
		info.Now = s.opts.clock()
	}
	if p, ok := s.recent.Load(info.Stream); ok {
		if p := p.(pendingSnap); p.version > info.SnapshotVersion {
			info.SnapshotVersion, info.SnapshotTime = p.version, p.time
		}
	}
	return s.opts.policy.Due(info)
}

// Now returns the time of the store's clock.
func (s *Store) Now() time.Time { return s.opts.clock() }

// Offer queues a snapshot for the background writers and returns at once:
// false when the queue is full or the store closed (the snapshot is dropped
// and counted). sn.Time is set from the store's clock when zero. sn.State
// must not be modified afterwards.
func (s *Store) Offer(stream eventstore.StreamID, sn Snapshot) bool {
	if sn.Time.IsZero() {
		sn.Time = s.opts.clock()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.dropped.Add(1)
		return false
	}
	// Marked before the send: a worker may write and unmark it at once.
	p := pendingSnap{version: sn.Version, time: sn.Time}
	s.markInflight(stream, p)
	select {
	case s.queue <- job{stream: stream, sn: sn}:
		s.queued.Add(1)
		return true
	default:
		s.recent.CompareAndDelete(stream, p)
		s.dropped.Add(1)
		return false
	}
}

func (s *Store) work() {
	for j := range s.queue {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.writeTimeout)
		ok, err := s.Save(ctx, j.stream, j.sn)
		cancel()
		s.sweep()
		switch {
		case errors.Is(err, ErrStale):
			// A snapshot that arrives after its stream was deleted: expected.
			s.stale.Add(1)
			s.opts.logger.Debug("snapshot: not written: the stream was deleted since", "stream", j.stream.String(), "version", j.sn.Version)
		case err != nil:
			s.failed.Add(1)
			s.opts.logger.Warn("snapshot: write failed", "stream", j.stream.String(), "version", j.sn.Version, "error", err)
		case ok:
			s.written.Add(1)
		default:
			s.skipped.Add(1)
		}
	}
}

// recentFor bounds how long a queued snapshot is remembered (see Store.recent).
const recentFor = time.Minute

// sweep forgets the snapshots queued more than recentFor ago, at most every
// few seconds: memory stays bounded by the streams snapshotted recently.
func (s *Store) sweep() {
	now := s.opts.clock()
	last := s.lastSweep.Load()
	if now.UnixNano()-last < int64(recentFor/8) || !s.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	s.recent.Range(func(k, v any) bool {
		if now.Sub(v.(pendingSnap).time) > recentFor {
			s.recent.CompareAndDelete(k, v)
		}
		return true
	})
}

// markInflight records p as stream's newest queued snapshot unless a newer
// one is.
func (s *Store) markInflight(stream eventstore.StreamID, p pendingSnap) {
	for {
		cur, loaded := s.recent.LoadOrStore(stream, p)
		if !loaded || cur.(pendingSnap).version >= p.version || s.recent.CompareAndSwap(stream, cur, p) {
			return
		}
	}
}

// Close stops accepting snapshots, waits until the queued ones are written
// or ctx ends (the rest are abandoned, and ctx's error returned), and stops
// the workers. It does not close the event store's client.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel() // in-flight writes fail fast; the workers drain what is left
		<-done
		return fmt.Errorf("snapshot: close: %w", ctx.Err())
	}
}

// Stats returns the counters of the store's background writer and loads.
func (s *Store) Stats() Stats {
	return Stats{
		Queued:  s.queued.Load(),
		Dropped: s.dropped.Load(),
		Written: s.written.Load(),
		Skipped: s.skipped.Load(),
		Stale:   s.stale.Load(),
		Failed:  s.failed.Load(),
		Ignored: s.ignored.Load(),
	}
}

// keysOf returns the keys a snapshot script touches: the snapshot, the
// entity stream, its stream tombstone and its snapshot floor.
func keysOf(ctx context.Context, es *eventstore.Store, stream eventstore.StreamID) (scriptKeys, error) {
	if err := stream.Validate(); err != nil {
		return scriptKeys{}, err
	}
	// As an append would, this creates the category if it is new.
	n, err := es.CreateCategory(ctx, stream.Category)
	if err != nil {
		return scriptKeys{}, err
	}
	p := eventstore.PartitionOf(stream.ID, n)
	ks := es.Keys()
	return scriptKeys{snapshot: ks.Snapshot(stream, p), stream: ks.Stream(stream, p), tombstone: ks.Tombstone(stream, p), floor: ks.SnapshotFloor(stream, p)}, nil
}

// Invalidate deletes stream's snapshot and refuses, for good, every
// snapshot at or below the stream's current version: Save returns ErrStale
// for them. Package shred calls it when an entity is forgotten, since a
// snapshot taken before the Forget holds the state as folded then, personal
// data in the clear, and a background writer may deliver one after it. It
// does not need a Store: only es's client and key layout.
func Invalidate(ctx context.Context, es *eventstore.Store, stream eventstore.StreamID) error {
	keys, err := keysOf(ctx, es, stream)
	if err != nil {
		return err
	}
	if err := execScript(ctx, es.Client(), rueidis.NewLuaScript(invalidateSource()), keys.all(), nil).Error(); err != nil {
		return fmt.Errorf("snapshot: invalidate %s: %w", stream, err)
	}
	return nil
}

// Save writes sn now, unless a snapshot of the same schema version and a
// version at least sn.Version is stored (then it returns false). A snapshot
// that does not belong to the stream's current life — the stream was
// deleted since it was taken, or deleted and started again (its new life
// begins after the version of the deletion marker), or sn.Version is beyond
// the stream's version, or at or below the floor Invalidate set — is
// refused with an error matching ErrStale. Most
// callers use Offer instead.
func (s *Store) Save(ctx context.Context, stream eventstore.StreamID, sn Snapshot) (bool, error) {
	if sn.Version == 0 {
		return false, fmt.Errorf("snapshot: save %s: version 0 has no state", stream)
	}
	if sn.Time.IsZero() {
		sn.Time = s.opts.clock()
	}
	b, err := encode(sn)
	if err != nil {
		return false, err
	}
	keys, err := keysOf(ctx, s.es, stream)
	if err != nil {
		return false, err
	}
	n, err := execScript(ctx, s.client, s.saveScript, keys.all(), saveArgs(b)).AsInt64()
	if err != nil {
		return false, fmt.Errorf("snapshot: save %s: %w", stream, err)
	}
	switch saveStatus(n) {
	case saveWritten:
		return true, nil
	case saveSkipped:
		return false, nil
	case saveStale:
		return false, fmt.Errorf("snapshot: save %s at version %d: %w", stream, sn.Version, ErrStale)
	}
	return false, fmt.Errorf("snapshot: save %s: bad script reply %d", stream, n)
}

// Get returns the stored snapshot of stream: ErrNotFound when there is none,
// a *CorruptError when it cannot be read.
func (s *Store) Get(ctx context.Context, stream eventstore.StreamID) (Snapshot, error) {
	keys, err := keysOf(ctx, s.es, stream)
	key := keys.snapshot
	if err != nil {
		return Snapshot{}, err
	}
	b, err := s.client.Do(ctx, s.client.B().Get().Key(key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return Snapshot{}, fmt.Errorf("snapshot of %s: %w", stream, ErrNotFound)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot of %s: %w", stream, err)
	}
	sn, err := decode(b)
	if err != nil {
		return Snapshot{}, &CorruptError{Stream: stream, Key: key, Err: err}
	}
	return sn, nil
}

// Delete removes the snapshot of stream, if any.
func (s *Store) Delete(ctx context.Context, stream eventstore.StreamID) error {
	keys, err := keysOf(ctx, s.es, stream)
	key := keys.snapshot
	if err != nil {
		return err
	}
	return s.client.Do(ctx, s.client.B().Del().Key(key).Build()).Error()
}

// CorruptError names a snapshot that is not in Streamfold's format.
type CorruptError struct {
	Stream eventstore.StreamID
	Key    string
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("snapshot: corrupt snapshot of %s at %s: %v", e.Stream, e.Key, e.Err)
}

// Unwrap returns the cause, which matches ErrCorrupt.
func (e *CorruptError) Unwrap() error { return e.Err }

// Load reads the snapshot of stream and the events after it in one round
// trip, and yields those events. When a snapshot of schemaVersion is stored,
// restore is called with it before the first event; if restore fails (the
// state does not decode), the snapshot is ignored with a warning and every
// event is yielded from the first: restore must leave its target untouched
// when it fails. A snapshot of another schema version is ignored (the next
// due save replaces it). A stream with neither snapshot nor events yields
// nothing.
//
// Events beyond the first page are read with eventstore.Store.Read. Event
// errors are those of Read.
func (s *Store) Load(ctx context.Context, stream eventstore.StreamID, schemaVersion int, restore func(Snapshot) error) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		keys, rep, err := s.loadFirstPage(ctx, stream, schemaVersion)
		if err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		if !s.restoreSnapshot(stream, keys.snapshot, schemaVersion, rep, restore) {
			s.readFrom(ctx, stream, 0, yield)
			return
		}
		if !rep.exists {
			yield(eventstore.RecordedEvent{}, &eventstore.StreamNotFoundError{Stream: stream})
			return
		}
		last, more := s.yieldEntries(ctx, stream, keys.stream, rep.entries, yield)
		if more && len(rep.entries) == s.opts.pageSize && last > 0 {
			s.readFrom(ctx, stream, last+1, yield)
		}
	}
}

// loadFirstPage reads the snapshot of schemaVersion, if stored, and the
// first page of events after it, at one instant: in one step when the
// snapshot is the one the stream's last load found (loadGuessed), else with
// the load script.
func (s *Store) loadFirstPage(ctx context.Context, stream eventstore.StreamID, schemaVersion int) (scriptKeys, loadReply, error) {
	keys, err := keysOf(ctx, s.es, stream)
	if err != nil {
		return keys, loadReply{}, err
	}
	slot := s.guessSlot(stream)
	if g := slot.Load(); g > 0 && !s.noGuess.Load() {
		if rep, ok := s.loadGuessed(ctx, stream, keys, schemaVersion, g-1); ok {
			return keys, rep, nil
		}
	}
	resp, err := execScript(ctx, s.client, s.loadScript, keys.load(), loadArgs(schemaVersion, s.opts.pageSize)).ToArray()
	var rep loadReply
	if err == nil {
		rep, err = parseLoadReply(resp)
	}
	if err != nil {
		return keys, loadReply{}, fmt.Errorf("snapshot: load %s: %w", stream, err)
	}
	slot.Store(rep.version + 1)
	return keys, rep, nil
}

// guessSlots is how many guesses of snapshot versions a Store keeps
// (32 KiB).
const guessSlots = 4096

// guessSlot returns the slot of stream's guess.
func (s *Store) guessSlot(stream eventstore.StreamID) *atomic.Uint64 {
	h := fnv1a.Add(fnv1a.AddByte(fnv1a.Add(fnv1a.Offset, stream.Category), 0), stream.ID)
	return &s.guesses[h%guessSlots]
}

// loadGuessed reads the first page as the load script does, but without
// the script converting every entry into Lua and back (~2.5 µs of Redis per
// entry): in one MULTI, the script without entries and an XRANGE from after
// guess, the version of the snapshot the stream's last load found (0: none,
// from the first event). MULTI makes the two one instant, so the entries
// are right exactly when the script finds that snapshot usable (or, for
// guess 0, none). ok is false, with nothing yielded, when the guess was
// wrong or anything failed: the caller runs the load script.
func (s *Store) loadGuessed(ctx context.Context, stream eventstore.StreamID, keys scriptKeys, schemaVersion int, guess uint64) (rep loadReply, ok bool) {
	start := "-"
	if guess > 0 {
		start = versionid.Format(guess + 1)
	}
	c := s.client
	for _, eval := range []bool{false, true} {
		script := s.loadMulti.EvalSHA(c.B(), keys.load(), loadArgs(schemaVersion, 0))
		if eval { // NOSCRIPT: the server does not know it (restarted, flushed)
			script = s.loadMulti.Eval(c.B(), keys.load(), loadArgs(schemaVersion, 0))
		}
		res := c.DoMulti(ctx, c.B().Multi().Build(), script,
			c.B().Xrange().Key(keys.stream).Start(start).End("+").Count(int64(s.opts.pageSize)).Build(), c.B().Exec().Build())
		exec, err := res[len(res)-1].ToArray()
		if err == nil && len(exec) == 2 && !eval && luascript.IsNoScript(exec[0].Error()) {
			continue
		}
		var head []rueidis.RedisMessage
		if err == nil && len(exec) == 2 {
			head, err = exec[0].ToArray()
		} else if err == nil {
			err = fmt.Errorf("EXEC returned %d replies", len(exec))
		}
		if err == nil {
			rep, err = parseLoadReply(head)
		}
		if err == nil {
			rep.entries, err = exec[1].ToArray()
		}
		if err != nil {
			s.guessFailed(stream, err)
			return loadReply{}, false
		}
		usable := rep.status == loadUsable
		return rep, usable && rep.version == guess || !usable && guess == 0
	}
	return loadReply{}, false
}

// guessFailed turns loadGuessed off for good when Redis refuses MULTI or
// XRANGE to this user (an ACL that allows only the load script), with one
// warning; other errors only send this load through the script.
func (s *Store) guessFailed(stream eventstore.StreamID, err error) {
	if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "NOPERM") && !s.noGuess.Swap(true) {
		s.opts.logger.Warn("snapshot: loads run the load script alone from now: Redis refused MULTI or XRANGE", "stream", stream.String(), "error", err)
		return
	}
	s.opts.logger.Debug("snapshot: one-step load failed; running the load script", "stream", stream.String(), "error", err)
}

// restoreSnapshot hands a usable snapshot to restore and logs why any
// other was ignored. It returns false when the snapshot was usable but did
// not restore: it is ignored, and the events after it do not suffice.
func (s *Store) restoreSnapshot(stream eventstore.StreamID, key string, schemaVersion int, rep loadReply, restore func(Snapshot) error) bool {
	switch rep.status {
	case loadUsable:
		b, err := rep.snapshot.AsBytes()
		if err == nil {
			var sn Snapshot
			if sn, err = decode(b); err == nil {
				err = restore(sn)
			}
		}
		if err != nil {
			s.ignore(stream, key, err)
			return false
		}
	case loadOtherSchema:
		s.opts.logger.Debug("snapshot: ignored: another schema version", "stream", stream.String(), "want", schemaVersion)
	case loadUnreadable:
		s.ignore(stream, key, fmt.Errorf("%w: bad header", errCorrupt))
	case loadEarlierLife:
		s.opts.logger.Debug("snapshot: ignored: of an earlier life of the stream", "stream", stream.String())
	}
	return true
}

// yieldEntries decodes and yields the entries the load script returned
// from the stream at key. It returns the version of the last one, and
// whether the consumer wants more.
func (s *Store) yieldEntries(ctx context.Context, stream eventstore.StreamID, key string, entries []rueidis.RedisMessage, yield func(eventstore.RecordedEvent, error) bool) (last uint64, more bool) {
	for i := range entries {
		e, err := entries[i].AsXRangeSlice()
		if err != nil {
			yield(eventstore.RecordedEvent{}, fmt.Errorf("snapshot: load %s: %w", stream, err))
			return last, false
		}
		ev, err := s.es.Decode(ctx, key, e)
		if !yield(ev, err) {
			return last, false
		}
		last = ev.Version
	}
	return last, true
}

func (s *Store) ignore(stream eventstore.StreamID, key string, err error) {
	s.ignored.Add(1)
	s.opts.logger.Warn("snapshot: ignoring unreadable snapshot; loading from events", "stream", stream.String(), "key", key, "error", err)
}

// readFrom yields the events of stream from version from; a stream that
// does not exist yields nothing.
func (s *Store) readFrom(ctx context.Context, stream eventstore.StreamID, from uint64, yield func(eventstore.RecordedEvent, error) bool) {
	for ev, err := range s.es.Read(ctx, stream, from, eventstore.PageSize(s.opts.pageSize)) {
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return
		}
		if !yield(ev, err) {
			return
		}
	}
}

// newLoadScript sends the read-only load script as EVALSHA_RO where the
// server has it (Redis 7.0), else as EVALSHA.
func newLoadScript(srv eventstore.ServerInfo) *rueidis.Lua {
	if srv.ReadOnlyScripts {
		return rueidis.NewLuaScriptReadOnly(loadSource())
	}
	return rueidis.NewLuaScript(loadSource())
}

// execScript runs a script and runs it again while Redis refuses it without
// running it (a slot migration splitting its keys: TRYAGAIN, ASK; LOADING;
// BUSY), within ctx's deadline (internal/refusal), so a resharding does not
// reach the callers. rueidis retries such refusals by itself only for
// read-only scripts (EVAL_RO, Redis 7.0+); a save must not be resent after
// a network error, when it may have run, so it is not marked retryable.
// The reply is the last one: a refusal still there when the deadline comes.
func execScript(ctx context.Context, c rueidis.Client, l *rueidis.Lua, keys, args []string) rueidis.RedisResult {
	var res rueidis.RedisResult
	_, _ = refusal.Retry(ctx, func() error {
		res = l.Exec(ctx, c, keys, args)
		return res.Error()
	})
	return res
}
