package storetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// Tests of what operators and the infrastructure do behind the store's
// back, and of outcomes inside grouped calls.

// partitionMates returns n entity ids of category whose streams share a
// partition with the first.
func partitionMates(t *testing.T, s *eventstore.Store, category, prefix string, n int) []eventstore.StreamID {
	t.Helper()
	// Reads never create a category: an append does.
	if _, err := s.Append(ctxT(t), eventstore.Stream(category, prefix+"-init"), eventstore.Any, eventstore.NewEvent(Note{})); err != nil {
		t.Fatal(err)
	}
	parts, err := s.Partitions(ctxT(t), category)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventstore.StreamID
	want := -1
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		p := eventstore.PartitionOf(id, parts)
		if want < 0 {
			want = p
		}
		if p == want {
			out = append(out, eventstore.Stream(category, id))
		}
	}
	return out
}

func xlen(t *testing.T, c rueidis.Client, key string) int64 {
	t.Helper()
	n, err := c.Do(ctxT(t), c.B().Xlen().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatalf("XLEN %s: %v", key, err)
	}
	return n
}

func xdel(t *testing.T, c rueidis.Client, key, id string) {
	t.Helper()
	if n, err := c.Do(ctxT(t), c.B().Xdel().Key(key).Id(id).Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("XDEL %s %s: %d %v", key, id, n, err)
	}
}

// testTailRemoved: an operator removed the last events of a stream by hand
// (XDEL). The stream's version is Redis' last id, not its last remaining
// entry's. Appending would leave a hole no load can fold, so every append is
// refused as damaged, whole, with nothing written anywhere; Delete still
// works, and the entity starts again after it.
func testTailRemoved(t *testing.T, newStore Factory) {
	s := newStore(t)
	ctx := ctxT(t)
	c := s.Client()
	ids := partitionMates(t, s, "account", "tail", 2)
	id, other := ids[0], ids[1]
	p, key, err := Locate(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := Locate(ctx, s, other)
	log := s.Keys().Log("account", p)
	if _, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "a"}), eventstore.NewEvent(Deposited{Amount: 1}), eventstore.NewEvent(Deposited{Amount: 2})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, other, eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "b"})); err != nil {
		t.Fatal(err)
	}
	xdel(t, c, key, "3-0")
	if in, err := s.Info(ctx, id); err != nil || in.Version != 3 || in.First != 1 || in.Last != 2 || !in.Damaged {
		t.Fatalf("info after the tail was removed: %+v %v", in, err)
	}
	if v, err := s.Version(ctx, id); err != nil || v != 3 {
		t.Fatalf("version after the tail was removed: %d %v", v, err)
	}
	logLen := xlen(t, c, log)
	for _, tc := range appendsToDamaged(id, other) {
		_, err := s.AppendMulti(ctx, tc.appends...)
		var de *eventstore.DamagedStreamError
		if !errors.As(err, &de) || !errors.Is(err, eventstore.ErrStreamDamaged) || de.Stream != id || de.Version != 3 || de.Last != 2 {
			t.Fatalf("append %s: %v", tc.name, err)
		}
		if n := xlen(t, c, log); n != logLen {
			t.Fatalf("append %s left %d log entries behind", tc.name, n-logLen)
		}
		if n, m := xlen(t, c, key), xlen(t, c, otherKey); n != 2 || m != 1 {
			t.Fatalf("append %s: the streams hold %d and %d entries, want 2 and 1", tc.name, n, m)
		}
	}
	checkOnlyEventRemoved(ctx, t, s)
	// A stale expected version learns of the damage too.
	if _, err := s.Append(ctx, id, eventstore.Exact(1), depositOf(12)...); !errors.Is(err, eventstore.ErrStreamDamaged) {
		t.Fatalf("append at a stale version: %v", err)
	}
	checkDeleteRepairs(ctx, t, s, id, p)
}

// depositOf is a batch of one Deposited event of amount.
func depositOf(amount int64) []eventstore.Event {
	return []eventstore.Event{eventstore.NewEvent(Deposited{Amount: amount})}
}

// namedAppend is a (multi-stream) append a case of a test makes.
type namedAppend struct {
	name    string
	appends []eventstore.StreamAppend
}

// appendsToDamaged are the appends testTailRemoved expects refused as
// damaged: id's tail was removed (its version is 3, its last entry 2);
// other is a healthy stream at version 1 in the same partition.
func appendsToDamaged(id, other eventstore.StreamID) []namedAppend {
	one := depositOf
	return []namedAppend{
		{"at the last remaining entry's version", []eventstore.StreamAppend{{Stream: id, Expected: eventstore.Exact(2), Events: one(3)}}},
		{"two events at it", []eventstore.StreamAppend{{Stream: id, Expected: eventstore.Exact(2), Events: append(one(3), one(4)...)}}},
		{"at the true version", []eventstore.StreamAppend{{Stream: id, Expected: eventstore.Exact(3), Events: one(5)}}},
		{"with Any", []eventstore.StreamAppend{{Stream: id, Expected: eventstore.Any, Events: one(6)}}},
		{"with StreamExists", []eventstore.StreamAppend{{Stream: id, Expected: eventstore.StreamExists, Events: one(7)}}},
		{"with another stream", []eventstore.StreamAppend{
			{Stream: other, Expected: eventstore.Exact(1), Events: one(8)},
			{Stream: id, Expected: eventstore.Exact(3), Events: one(9)}}},
		{"with Any and another stream", []eventstore.StreamAppend{
			{Stream: other, Expected: eventstore.Exact(1), Events: one(10)},
			{Stream: id, Expected: eventstore.Any, Events: one(11)}}},
	}
}

// checkOnlyEventRemoved: a stream whose only stored event was removed by
// hand is damaged too, told from one trimmed to empty behind a snapshot by
// Redis 7's max-deleted-entry-id (XDEL sets it; trimming does not).
func checkOnlyEventRemoved(ctx context.Context, t *testing.T, s *eventstore.Store) {
	t.Helper()
	c := s.Client()
	lone := partitionMates(t, s, "account", "lone", 1)[0]
	_, loneKey, _ := Locate(ctx, s, lone)
	if _, err := s.Append(ctx, lone, eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "l"})); err != nil {
		t.Fatal(err)
	}
	info, err := c.Do(ctx, c.B().XinfoStream().Key(loneKey).Build()).AsMap()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info["max-deleted-entry-id"]; !ok {
		t.Log("server before Redis 7: a stream whose every event was removed by hand cannot be told from one trimmed to empty")
		return
	}
	xdel(t, c, loneKey, "1-0")
	if in, err := s.Info(ctx, lone); err != nil || !in.Damaged || in.Version != 1 || in.Last != 0 {
		t.Fatalf("info of a stream whose only event was removed: %+v %v", in, err)
	}
	for _, exp := range []eventstore.ExpectedVersion{eventstore.Exact(1), eventstore.Any, eventstore.StreamExists} {
		if _, err := s.Append(ctx, lone, exp, depositOf(1)...); !errors.Is(err, eventstore.ErrStreamDamaged) {
			t.Fatalf("append with %s to a stream whose only event was removed: %v", exp, err)
		}
	}
}

// checkDeleteRepairs: Delete takes the true version (3) of the damaged
// stream id, and the entity starts again after it; partition p's log holds
// every acknowledged event once, and the marker.
func checkDeleteRepairs(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID, p int) {
	t.Helper()
	var wv *eventstore.WrongVersionError
	if _, err := s.Delete(ctx, id, eventstore.Exact(2)); !errors.As(err, &wv) || wv.Actual != 3 {
		t.Fatalf("delete at the last remaining entry's version: %v", err)
	}
	if d, err := s.Delete(ctx, id, eventstore.Exact(3)); err != nil || d.Version != 4 {
		t.Fatalf("delete at the true version: %+v %v", d, err)
	}
	if r, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "c"})); err != nil || r.Version != 5 {
		t.Fatalf("re-create after the delete: %+v %v", r, err)
	}
	var vs []uint64
	for _, ev := range collect(t, s.ReadLog(ctx, "account", p, eventstore.Position{})) {
		if ev.Stream == id {
			vs = append(vs, ev.Version)
		}
	}
	if fmt.Sprint(vs) != "[1 2 3 4 5]" {
		t.Fatalf("log versions of %s: %v", id, vs)
	}
}

// pauseWrites pauses every node's writes (CLIENT PAUSE WRITE) and returns
// a function that ends the pause on dedicated connections (the pipelined
// ones may be stuck behind a paused script).
func pauseWrites(t *testing.T, c rueidis.Client) func() {
	t.Helper()
	ctx := ctxT(t)
	var nodes []rueidis.Client
	for _, n := range c.Nodes() {
		if err := n.Do(ctx, n.B().ClientPause().Timeout(30000).Write().Build()).Error(); err != nil {
			t.Fatalf("CLIENT PAUSE: %v", err)
		}
		nodes = append(nodes, n)
	}
	var once sync.Once
	unpause := func() {
		once.Do(func() {
			for _, n := range nodes {
				err := n.Dedicated(func(d rueidis.DedicatedClient) error {
					return d.Do(ctx, d.B().ClientUnpause().Build()).Error()
				})
				if err != nil {
					t.Errorf("CLIENT UNPAUSE: %v", err)
				}
			}
		})
	}
	t.Cleanup(unpause)
	return unpause
}

// testFailsAlone: transactions grouped into one script call each get their
// own true outcome, whatever the others' (a wrong version, a stream whose
// tail was removed, a key of another type, a retry).
func testFailsAlone(t *testing.T, newStore Factory) {
	s := newStore(t, eventstore.WithPartitions(1), eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: 64, InFlight: 1}))
	ctx := ctxT(t)
	c := s.Client()
	ids := partitionMates(t, s, "cart", "c", 24)
	// ids[0]: tail removed by hand (damaged); ids[1]: its key is a string;
	// ids[2..]: healthy, each with one event.
	for _, id := range ids {
		if id == ids[1] {
			continue
		}
		if _, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Note{Text: "first"}), eventstore.NewEvent(Note{Text: "second"})); err != nil {
			t.Fatal(err)
		}
	}
	_, key0, _ := Locate(ctx, s, ids[0])
	xdel(t, c, key0, "2-0")
	_, key1, _ := Locate(ctx, s, ids[1])
	if err := c.Do(ctx, c.B().Set().Key(key1).Value("not a stream").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	outcomes := appendGrouped(ctx, t, s, ids)
	checkOutcomesAlone(t, ids, outcomes)
	// What was reported is what is stored.
	for _, id := range ids[2:] {
		evs := readAll(t, s, id)
		if len(evs) != 3 || evs[2].Version != 3 {
			t.Errorf("%s holds %d events", id, len(evs))
		}
	}
	if in, err := s.Info(ctx, ids[0]); err != nil || in.Version != 2 || in.Last != 1 {
		t.Errorf("%s: %+v %v, want version 2, last 1", ids[0], in, err)
	}
	if typ, _ := c.Do(ctx, c.B().Type().Key(key1).Build()).ToString(); typ != "string" {
		t.Errorf("%s became a %s", key1, typ)
	}
	// Nothing in the log but what was acknowledged.
	n := 0
	for _, ev := range collect(t, s.ReadLog(ctx, "cart", 0, eventstore.Position{})) {
		if ev.Version == 3 {
			n++
		}
	}
	if want := len(ids) - 2; n != want {
		t.Errorf("log holds %d third events, want %d", n, want)
	}
}

// appendOutcome is what one append of testFailsAlone was told.
type appendOutcome struct {
	id       eventstore.StreamID
	expected eventstore.ExpectedVersion
	res      eventstore.AppendResult
	err      error
}

// appendGrouped appends a third event to every stream of ids at version 2,
// and to every third one at the stale version 1 too, while writes are
// paused: the first append goes out and waits on the pause; the others
// queue behind it and go out together as the next batch.
func appendGrouped(ctx context.Context, t *testing.T, s *eventstore.Store, ids []eventstore.StreamID) []appendOutcome {
	t.Helper()
	unpause := pauseWrites(t, s.Client())
	var entered atomic.Int64
	outcomes := make([]appendOutcome, 0, 2*len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	call := func(id eventstore.StreamID, exp eventstore.ExpectedVersion) {
		wg.Go(func() {
			entered.Add(1)
			r, err := s.Append(ctx, id, exp, eventstore.NewEvent(Note{Text: "third"}))
			mu.Lock()
			outcomes = append(outcomes, appendOutcome{id, exp, r, err})
			mu.Unlock()
		})
	}
	for i, id := range ids {
		call(id, eventstore.Exact(2))
		if i%3 == 2 {
			call(id, eventstore.Exact(1)) // stale: must fail alone
		}
	}
	for entered.Load() < int64(len(ids)+len(ids)/3) {
		runtime.Gosched()
	}
	unpause()
	wg.Wait()
	return outcomes
}

// checkOutcomesAlone checks that each append got its own true outcome:
// ids[0] (tail removed) damaged, ids[1] (not a stream) failed whole, a
// stale append a wrong version, every other one appended at version 3.
func checkOutcomesAlone(t *testing.T, ids []eventstore.StreamID, outcomes []appendOutcome) {
	t.Helper()
	var wv *eventstore.WrongVersionError
	for _, o := range outcomes {
		switch {
		case o.id == ids[0]:
			// Event 2 was removed by hand: refused as damaged.
			if !errors.Is(o.err, eventstore.ErrStreamDamaged) {
				t.Errorf("%s (tail removed): %+v %v", o.id, o.res, o.err)
			}
		case o.id == ids[1]:
			var af *eventstore.AppendFailedError
			if !errors.As(o.err, &af) || af.Partial || !errors.Is(o.err, eventstore.ErrAppendFailed) {
				t.Errorf("%s (not a stream): %v", o.id, o.err)
			}
		case o.expected == eventstore.Exact(1):
			if !errors.As(o.err, &wv) {
				t.Errorf("%s stale append: %v", o.id, o.err)
			}
		default:
			if o.err != nil || o.res.Version != 3 {
				t.Errorf("%s: %+v %v", o.id, o.res, o.err)
			}
		}
	}
}
