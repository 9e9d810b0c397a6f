// Package storetest is the conformance suite of the event store: every
// guarantee of package eventstore, checked against a real Redis.
//
// Run it against each deployment you support (standalone, cluster, a managed
// service, an ACL-restricted user) from a test of your own:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, opts ...eventstore.Option) *eventstore.Store {
//			tg := redistest.Cluster(t) // a fresh namespace on every call
//			opts = append([]eventstore.Option{eventstore.WithNamespace(tg.Namespace)}, opts...)
//			s, err := eventstore.New(tg.Client, opts...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The factory must return a Store in a namespace of its own on every call.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/clusterscan"
)

// Factory returns a Store, in a fresh namespace, with opts applied after the
// suite's own: Run passes a registry with the suite's event types and may
// pass more options.
type Factory func(t *testing.T, opts ...eventstore.Option) *eventstore.Store

// Opened, Deposited and Note are the suite's event types.
type (
	// Opened is an event of the suite.
	Opened struct{ Owner string }
	// Deposited is an event of the suite.
	Deposited struct{ Amount int64 }
	// Note is an event of the suite with a payload of any size.
	Note struct{ Text string }
)

// Registry returns a registry with the suite's event types.
func Registry() *eventstore.Registry {
	r := eventstore.NewRegistry()
	eventstore.MustRegister[Opened](r, "opened")
	eventstore.MustRegister[Deposited](r, "deposited")
	eventstore.MustRegister[Note](r, "note")
	return r
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, newStore Factory) {
	mk := func(t *testing.T, opts ...eventstore.Option) *eventstore.Store {
		return newStore(t, append([]eventstore.Option{eventstore.WithRegistry(Registry())}, opts...)...)
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"AppendAndRead", testAppendAndRead},
		{"ExpectedVersion", testExpectedVersion},
		{"IdempotentRetry", testIdempotentRetry},
		{"Race", testRace},
		{"MultiStream", testMultiStream},
		{"BadInput", testBadInput},
		{"UnknownTypeOnRead", testUnknownTypeOnRead},
		{"TrimmedStreamKeepsVersion", testTrimmedKeepsVersion},
		{"GroupCommit", testGroupCommit},
		{"GroupCommitAcrossPartitions", testGroupCommitAcrossPartitions},
		{"PartitionsFixed", testPartitionsFixed},
		{"OneSlotPerScript", testOneSlot},
		{"Delete", testDelete},
		{"TailRemoved", testTailRemoved},
		{"FailsAlone", testFailsAlone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, mk)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func readAll(t *testing.T, s *eventstore.Store, id eventstore.StreamID) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	for ev, err := range s.Read(ctxT(t), id, 0) {
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		out = append(out, ev)
	}
	return out
}

// collect returns every event seq yields; an error fails the test.
func collect(t *testing.T, seq iter.Seq2[eventstore.RecordedEvent, error]) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	for ev, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// NamespaceKeys returns every key of the store's namespace, on every node.
func NamespaceKeys(t *testing.T, s *eventstore.Store) []string {
	t.Helper()
	var keys []string
	err := clusterscan.Keys(ctxT(t), s.Client(), clusterscan.Options{Match: s.Keys().Namespace() + ":*"}, func(_ rueidis.Client, page []string) error {
		keys = append(keys, page...)
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	slices.Sort(keys)
	return keys
}

// Locate returns the partition of stream and the key of its entity stream,
// for a test that inspects or breaks the stream by hand. Like an append, it
// creates the stream's category if it is new.
func Locate(ctx context.Context, s *eventstore.Store, stream eventstore.StreamID) (partition int, key string, err error) {
	if err := stream.Validate(); err != nil {
		return 0, "", err
	}
	n, err := s.CreateCategory(ctx, stream.Category)
	if err != nil {
		return 0, "", err
	}
	p := eventstore.PartitionOf(stream.ID, n)
	return p, s.Keys().Stream(stream, p), nil
}

func testAppendAndRead(t *testing.T, newStore Factory) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", 3600))
	s := newStore(t, eventstore.WithClock(func() time.Time { return clock }))
	ctx := ctxT(t)
	id := eventstore.Stream("account", "acc-1")
	first, res, res2 := appendTwoBatches(ctx, t, s, id)
	evs := readAll(t, s, id)
	checkReadBack(t, evs, id, clock, first, res, res2)
	checkReadRanges(ctx, t, s, id)
	last, err := s.Last(ctx, id)
	if err != nil || last.Version != 3 || last.Data != (Deposited{Amount: 5}) {
		t.Fatalf("last: %+v %v", last, err)
	}
	if v, err := s.Version(ctx, id); err != nil || v != 3 {
		t.Fatalf("version %d %v", v, err)
	}
	checkLogMirrorsStream(ctx, t, s, res.Partition, id, evs)
	checkDecode(ctx, t, s, res.Partition, id, evs)
	checkNeverExisted(ctx, t, s)
}

// checkDecode decodes the entries of the stream and of its partition log as
// read with XRANGE (as a consumer of its own would read them) and compares
// them with what Read returned; a key that is not the store's is refused.
func checkDecode(ctx context.Context, t *testing.T, s *eventstore.Store, partition int, id eventstore.StreamID, evs []eventstore.RecordedEvent) {
	t.Helper()
	c, keys := s.Client(), s.Keys()
	for _, key := range []string{keys.Stream(id, partition), keys.Log(id.Category, partition)} {
		entries, err := c.Do(ctx, c.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRangeSlices()
		if err != nil || len(entries) != len(evs) {
			t.Fatalf("xrange %s: %d entries, %v", key, len(entries), err)
		}
		for i, e := range entries {
			ev, err := s.Decode(ctx, key, e)
			if err != nil || ev.Stream != id || ev.Version != evs[i].Version || ev.ID != evs[i].ID || ev.Position != evs[i].Position || ev.Data != evs[i].Data {
				t.Fatalf("decode %s entry %d: %+v %v, read %+v", key, i, ev, err, evs[i])
			}
		}
		if i := strings.LastIndexByte(key, '}'); i > 0 {
			for _, bad := range []string{"other" + key, key[:i+1] + ":snap:" + id.ID, keys.LogTrimmed(id.Category, partition)} {
				_, err := s.Decode(ctx, bad, entries[0])
				if !errors.Is(err, eventstore.ErrInvalidStreamID) {
					t.Fatalf("decode from %q: %v", bad, err)
				}
			}
		}
	}
}

// appendTwoBatches appends to a new stream an Opened (carrying metadata)
// and a Deposited, then a second Deposited at version 2, and checks both
// results.
func appendTwoBatches(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID) (first eventstore.Event, res, res2 eventstore.AppendResult) {
	t.Helper()
	first = eventstore.NewEvent(Opened{Owner: "ann"})
	first.CorrelationID, first.CausationID = "corr-1", "cause-1"
	first.Headers = map[string]string{"tenant": "t1", "trace": "abc"}
	res, err := s.Append(ctx, id, eventstore.NoStream, first, eventstore.NewEvent(Deposited{Amount: 10}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 2 || res.FirstVersion() != 1 || len(res.Positions) != 2 || res.Replayed {
		t.Fatalf("result %+v", res)
	}
	if res.Positions[0].Compare(res.Positions[1]) >= 0 {
		t.Fatalf("positions not increasing: %v", res.Positions)
	}
	res2, err = s.Append(ctx, id, eventstore.Exact(2), eventstore.NewEvent(Deposited{Amount: 5}))
	if err != nil || res2.Version != 3 {
		t.Fatalf("second append: %+v %v", res2, err)
	}
	return first, res, res2
}

// checkReadBack checks the events appendTwoBatches wrote, as read back:
// data, versions, time (the store's clock, in UTC), metadata, positions,
// type names.
func checkReadBack(t *testing.T, evs []eventstore.RecordedEvent, id eventstore.StreamID, clock time.Time, first eventstore.Event, res, res2 eventstore.AppendResult) {
	t.Helper()
	if len(evs) != 3 {
		t.Fatalf("read %d events, want 3", len(evs))
	}
	want := []any{Opened{Owner: "ann"}, Deposited{Amount: 10}, Deposited{Amount: 5}}
	for i, ev := range evs {
		if ev.Version != uint64(i+1) || ev.Data != want[i] || ev.Stream != id {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if !ev.Time.Equal(clock) || ev.Time.Location() != time.UTC {
			t.Fatalf("event %d time %v, want %v in UTC", i, ev.Time, clock)
		}
		if ev.SchemaVersion != 1 {
			t.Fatalf("schema version %d", ev.SchemaVersion)
		}
	}
	if evs[0].ID != first.ID || evs[0].CorrelationID != "corr-1" || evs[0].CausationID != "cause-1" || evs[0].Headers["tenant"] != "t1" || len(evs[0].Headers) != 2 {
		t.Fatalf("metadata lost: %+v", evs[0])
	}
	if evs[0].Position != res.Positions[0] || evs[2].Position != res2.Positions[0] {
		t.Fatalf("positions: read %v %v, appended %v %v", evs[0].Position, evs[2].Position, res.Positions, res2.Positions)
	}
	if evs[0].Type != "opened" || evs[1].Type != "deposited" {
		t.Fatalf("types %q %q", evs[0].Type, evs[1].Type)
	}
}

// checkReadRanges reads a 3-event stream from a version, with a page size
// smaller than the stream, backward, and with a limit.
func checkReadRanges(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID) {
	t.Helper()
	for _, tc := range []struct {
		name string
		seq  iter.Seq2[eventstore.RecordedEvent, error]
		want []uint64
	}{
		{"read from 2", s.Read(ctx, id, 2, eventstore.PageSize(1)), []uint64{2, 3}},
		{"backward", s.ReadBackward(ctx, id, 0, eventstore.PageSize(2)), []uint64{3, 2, 1}},
		{"backward from 2", s.ReadBackward(ctx, id, 2), []uint64{2, 1}},
		{"limit 2", s.Read(ctx, id, 0, eventstore.Limit(2), eventstore.PageSize(1)), []uint64{1, 2}},
	} {
		var got []uint64
		for _, ev := range collect(t, tc.seq) {
			got = append(got, ev.Version)
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("%s: %v", tc.name, got)
		}
	}
}

// checkLogMirrorsStream checks that the partition log holds the stream's
// events evs, in order, with the stream, and reads it after a position.
func checkLogMirrorsStream(ctx context.Context, t *testing.T, s *eventstore.Store, partition int, id eventstore.StreamID, evs []eventstore.RecordedEvent) {
	t.Helper()
	logged := collect(t, s.ReadLog(ctx, "account", partition, eventstore.Position{}))
	if len(logged) != 3 {
		t.Fatalf("log has %d entries", len(logged))
	}
	for i, ev := range logged {
		if ev.Stream != id || ev.Version != evs[i].Version || ev.ID != evs[i].ID || ev.Position != evs[i].Position || ev.Data != evs[i].Data {
			t.Fatalf("log entry %d: %+v, stream entry %+v", i, ev, evs[i])
		}
	}
	if n := len(collect(t, s.ReadLog(ctx, "account", partition, logged[0].Position))); n != 2 {
		t.Fatalf("log after first: %d entries", n)
	}
}

// checkNeverExisted checks Last, Read and Version of a stream that never
// existed.
func checkNeverExisted(ctx context.Context, t *testing.T, s *eventstore.Store) {
	t.Helper()
	missing := eventstore.Stream("account", "nobody")
	_, err := s.Last(ctx, missing)
	var nf *eventstore.StreamNotFoundError
	if !errors.As(err, &nf) || nf.Stream != missing || !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("last of missing: %v", err)
	}
	for _, err := range s.Read(ctx, missing, 0) {
		if !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Fatalf("read missing: %v", err)
		}
	}
	if v, err := s.Version(ctx, missing); err != nil || v != 0 {
		t.Fatalf("version of missing %d %v", v, err)
	}
}

func testExpectedVersion(t *testing.T, newStore Factory) {
	s := newStore(t)
	ctx := ctxT(t)
	id := eventstore.Stream("account", "ev")
	ev := func() eventstore.Event { return eventstore.NewEvent(Deposited{Amount: 1}) }
	wrong := func(err error, exp eventstore.ExpectedVersion, actual uint64) {
		t.Helper()
		var wv *eventstore.WrongVersionError
		if !errors.As(err, &wv) || !errors.Is(err, eventstore.ErrWrongVersion) {
			t.Fatalf("want WrongVersionError, got %v", err)
		}
		if wv.Stream != id || wv.Expected != exp || wv.Actual != actual {
			t.Fatalf("detail %+v, want expected %v actual %d", wv, exp, actual)
		}
	}
	_, err := s.Append(ctx, id, eventstore.StreamExists, ev())
	wrong(err, eventstore.StreamExists, 0)
	_, err = s.Append(ctx, id, eventstore.Exact(3), ev())
	wrong(err, eventstore.Exact(3), 0)
	if _, err := s.Append(ctx, id, eventstore.NoStream, ev()); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(ctx, id, eventstore.NoStream, ev())
	wrong(err, eventstore.NoStream, 1)
	if r, err := s.Append(ctx, id, eventstore.StreamExists, ev()); err != nil || r.Version != 2 {
		t.Fatalf("exists: %+v %v", r, err)
	}
	if r, err := s.Append(ctx, id, eventstore.Any, ev(), ev()); err != nil || r.Version != 4 {
		t.Fatalf("any: %+v %v", r, err)
	}
	_, err = s.Append(ctx, id, eventstore.Exact(3), ev()) // behind
	wrong(err, eventstore.Exact(3), 4)
	_, err = s.Append(ctx, id, eventstore.Exact(9), ev()) // ahead: no gap allowed
	wrong(err, eventstore.Exact(9), 4)
	if r, err := s.Append(ctx, id, eventstore.Exact(4), ev()); err != nil || r.Version != 5 {
		t.Fatalf("exact: %+v %v", r, err)
	}
	if n := len(readAll(t, s, id)); n != 5 {
		t.Fatalf("%d events, want 5", n)
	}
}

func testIdempotentRetry(t *testing.T, newStore Factory) {
	s := newStore(t)
	ctx := ctxT(t)
	id := eventstore.Stream("account", "retry")
	batch := []eventstore.Event{eventstore.NewEvent(Opened{Owner: "bo"}), eventstore.NewEvent(Deposited{Amount: 3})}
	orig, err := s.Append(ctx, id, eventstore.NoStream, batch...)
	if err != nil {
		t.Fatal(err)
	}
	keysBefore := NamespaceKeys(t, s)
	log := s.Keys().Log("account", orig.Partition)
	before := xlen(t, s.Client(), log)
	more := checkRetriesReplayed(ctx, t, s, id, batch, orig)
	checkRetryBoundaries(ctx, t, s, id, batch, orig)
	if got := xlen(t, s.Client(), log); got != before+2 {
		t.Fatalf("log grew by %d, want 2 (retries must write nothing)", got-before)
	}
	if evs := readAll(t, s, id); len(evs) != 4 || evs[2].Version != more.Version {
		t.Fatalf("stream has %d events", len(evs))
	}
	if after := NamespaceKeys(t, s); !slices.Equal(after, keysBefore) {
		t.Fatalf("keys changed: %v -> %v", keysBefore, after)
	}
}

// checkRetriesReplayed retries the stored batch orig three times, then once
// more after another append (which it returns): each retry is recognised.
func checkRetriesReplayed(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID, batch []eventstore.Event, orig eventstore.AppendResult) (more eventstore.AppendResult) {
	t.Helper()
	for range 3 {
		again, err := s.Append(ctx, id, eventstore.NoStream, batch...)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !again.Replayed || again.Version != orig.Version || !slices.Equal(again.Positions, orig.Positions) {
			t.Fatalf("retry result %+v, original %+v", again, orig)
		}
	}
	// A retry after other appends: still recognised.
	more, err := s.Append(ctx, id, eventstore.Exact(2), eventstore.NewEvent(Deposited{Amount: 4}))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Append(ctx, id, eventstore.NoStream, batch...); err != nil || !again.Replayed || !slices.Equal(again.Positions, orig.Positions) {
		t.Fatalf("late retry: %+v %v", again, err)
	}
	return more
}

// checkRetryBoundaries: a retry with Any is recognised; other ids at the
// same expected version, or the same events at another, are conflicts; part
// of a stored append, at its own expected version, is recognised.
func checkRetryBoundaries(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID, batch []eventstore.Event, orig eventstore.AppendResult) {
	t.Helper()
	// Retry with Any of the last append.
	anyBatch := []eventstore.Event{eventstore.NewEvent(Deposited{Amount: 5})}
	r1, err := s.Append(ctx, id, eventstore.Any, anyBatch...)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Append(ctx, id, eventstore.Any, anyBatch...)
	if err != nil || !r2.Replayed || r2.Version != r1.Version || r2.Positions[0] != r1.Positions[0] {
		t.Fatalf("any retry: %+v %v (first %+v)", r2, err, r1)
	}
	// Same expected version, other ids: a conflict, not a replay.
	_, err = s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "bo"}), eventstore.NewEvent(Deposited{Amount: 3}))
	if !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("other ids: %v", err)
	}
	// Part of a stored append, at its own expected version, is stored too:
	// the result says where, and nothing is written.
	if r, err := s.Append(ctx, id, eventstore.Exact(1), batch[1]); err != nil || !r.Replayed || r.Version != 2 || r.Positions[0] != orig.Positions[1] {
		t.Fatalf("retry of the second event: %+v %v", r, err)
	}
	// The same events at another expected version are a conflict.
	if _, err := s.Append(ctx, id, eventstore.Exact(1), batch...); !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("retry at another version: %v", err)
	}
}

// testRace: goroutines race on one stream, each reading the version and
// appending with it. Every version must have exactly one winner, no gaps,
// no duplicates, and the stream must hold exactly the winners' events.
func testRace(t *testing.T, newStore Factory) {
	s := newStore(t)
	ctx := ctxT(t)
	id := eventstore.Stream("account", "race")
	const workers, rounds = 16, 25
	var mu sync.Mutex
	winners := map[uint64]uuid.UUID{}
	conflicts := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				v, err := s.Version(ctx, id)
				if err != nil {
					t.Error(err)
					return
				}
				ev := eventstore.NewEvent(Note{Text: fmt.Sprintf("w%d-r%d", w, r)})
				res, err := s.Append(ctx, id, eventstore.Exact(v), ev)
				mu.Lock()
				switch {
				case err == nil:
					if _, dup := winners[res.Version]; dup {
						t.Errorf("version %d won twice", res.Version)
					}
					if res.Version != v+1 {
						t.Errorf("appended at %d, expected %d", res.Version, v+1)
					}
					winners[res.Version] = ev.ID
				case errors.Is(err, eventstore.ErrWrongVersion):
					conflicts++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	evs := readAll(t, s, id)
	if len(evs) != len(winners) {
		t.Fatalf("%d events stored, %d winners", len(evs), len(winners))
	}
	for i, ev := range evs {
		if ev.Version != uint64(i+1) {
			t.Fatalf("gap: event %d has version %d", i, ev.Version)
		}
		if winners[ev.Version] != ev.ID {
			t.Fatalf("version %d holds %s, winner was %s", ev.Version, ev.ID, winners[ev.Version])
		}
	}
	if conflicts+len(winners) != workers*rounds {
		t.Fatalf("%d conflicts + %d winners != %d attempts", conflicts, len(winners), workers*rounds)
	}
	t.Logf("race: %d attempts, %d appended, %d conflicts", workers*rounds, len(winners), conflicts)
}

// samePartition returns two entity ids of category that share a partition,
// and one that does not.
func samePartition(t *testing.T, s *eventstore.Store, category string) (a, b, other string) {
	n, err := s.CreateCategory(ctxT(t), category)
	if err != nil {
		t.Fatal(err)
	}
	a = "m-0"
	pa := eventstore.PartitionOf(a, n)
	for i := 1; b == "" || other == ""; i++ {
		id := fmt.Sprintf("m-%d", i)
		if eventstore.PartitionOf(id, n) == pa {
			if b == "" {
				b = id
			}
		} else if other == "" {
			other = id
		}
	}
	return a, b, other
}

func testMultiStream(t *testing.T, newStore Factory) {
	s := newStore(t, eventstore.WithPartitions(4))
	ctx := ctxT(t)
	a, b, other := samePartition(t, s, "order")
	sa, sb, so := eventstore.Stream("order", a), eventstore.Stream("order", b), eventstore.Stream("order", other)
	ev := func() eventstore.Event { return eventstore.NewEvent(Note{Text: "x"}) }
	res, err := s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: sa, Expected: eventstore.NoStream, Events: []eventstore.Event{ev(), ev()}},
		eventstore.StreamAppend{Stream: sb, Expected: eventstore.NoStream, Events: []eventstore.Event{ev()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Version != 2 || res[1].Version != 1 || res[0].Partition != res[1].Partition {
		t.Fatalf("multi result %+v", res)
	}
	if res[0].Positions[1].Compare(res[1].Positions[0]) >= 0 {
		t.Fatalf("log order: %v then %v", res[0].Positions, res[1].Positions)
	}
	// One stream's check fails: nothing is written to either.
	_, err = s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: sa, Expected: eventstore.Exact(2), Events: []eventstore.Event{ev()}},
		eventstore.StreamAppend{Stream: sb, Expected: eventstore.Exact(7), Events: []eventstore.Event{ev()}})
	var wv *eventstore.WrongVersionError
	if !errors.As(err, &wv) || wv.Stream != sb || wv.Actual != 1 {
		t.Fatalf("multi conflict: %v", err)
	}
	if v, _ := s.Version(ctx, sa); v != 2 {
		t.Fatalf("stream a at %d after refused multi-append", v)
	}
	checkCrossRefused(ctx, t, s, sa, so, a)
	// Retry of the whole multi-append is recognised.
	e1, e2 := ev(), ev()
	m := []eventstore.StreamAppend{
		{Stream: sa, Expected: eventstore.Exact(2), Events: []eventstore.Event{e1}},
		{Stream: sb, Expected: eventstore.Exact(1), Events: []eventstore.Event{e2}},
	}
	first, err := s.AppendMulti(ctx, m...)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.AppendMulti(ctx, m...)
	if err != nil || !again[0].Replayed || !again[1].Replayed || again[1].Positions[0] != first[1].Positions[0] {
		t.Fatalf("multi retry: %+v %v", again, err)
	}
}

// checkCrossRefused: a multi-append with a stream of another partition
// (so) or category, or with the same stream twice, is refused and writes
// nothing; sa stays at version 2.
func checkCrossRefused(ctx context.Context, t *testing.T, s *eventstore.Store, sa, so eventstore.StreamID, a string) {
	t.Helper()
	ev := func() eventstore.Event { return eventstore.NewEvent(Note{Text: "x"}) }
	// Streams of other partitions or categories: refused, nothing written.
	keys := NamespaceKeys(t, s)
	_, err := s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: sa, Expected: eventstore.Any, Events: []eventstore.Event{ev()}},
		eventstore.StreamAppend{Stream: so, Expected: eventstore.Any, Events: []eventstore.Event{ev()}})
	var cp *eventstore.CrossPartitionError
	if !errors.As(err, &cp) || !errors.Is(err, eventstore.ErrCrossPartition) || cp.B != so {
		t.Fatalf("cross partition: %v", err)
	}
	_, err = s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: sa, Expected: eventstore.Any, Events: []eventstore.Event{ev()}},
		eventstore.StreamAppend{Stream: eventstore.Stream("invoice", a), Expected: eventstore.Any, Events: []eventstore.Event{ev()}})
	if !errors.Is(err, eventstore.ErrCrossPartition) {
		t.Fatalf("cross category: %v", err)
	}
	_, err = s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: sa, Expected: eventstore.Any, Events: []eventstore.Event{ev()}},
		eventstore.StreamAppend{Stream: sa, Expected: eventstore.Any, Events: []eventstore.Event{ev()}})
	if !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Fatalf("same stream twice: %v", err)
	}
	if got := NamespaceKeys(t, s); !slices.Equal(got, keys) {
		t.Fatalf("refused appends wrote keys: %v -> %v", keys, got)
	}
	if v, _ := s.Version(ctx, sa); v != 2 {
		t.Fatalf("stream a at %d", v)
	}
}

type unregistered struct{ X int }

func testBadInput(t *testing.T, newStore Factory) {
	s := newStore(t, eventstore.WithMaxEventSize(1024))
	ctx := ctxT(t)
	ok := eventstore.Stream("account", "fine")
	good := func() eventstore.Event { return eventstore.NewEvent(Note{Text: "ok"}) }
	dup := good()
	cases := []struct {
		name   string
		stream eventstore.StreamID
		exp    eventstore.ExpectedVersion
		events []eventstore.Event
		want   error
	}{
		{"empty category", eventstore.Stream("", "x"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"category with colon", eventstore.Stream("a:b", "x"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"category with brace", eventstore.Stream("a{b", "x"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"category with dash", eventstore.Stream("a-b", "x"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"long category", eventstore.Stream(strings.Repeat("c", 65), "x"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"empty id", eventstore.Stream("account", ""), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"id with braces", eventstore.Stream("account", "{x}"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"id with newline", eventstore.Stream("account", "a\nb"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"id with NUL", eventstore.Stream("account", "a\x00b"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"id not UTF-8", eventstore.Stream("account", "a\xffb"), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"long id", eventstore.Stream("account", strings.Repeat("i", 257)), eventstore.Any, []eventstore.Event{good()}, eventstore.ErrInvalidStreamID},
		{"no events", ok, eventstore.Any, nil, eventstore.ErrEmptyAppend},
		{"unknown type", ok, eventstore.Any, []eventstore.Event{good(), {Data: unregistered{1}}}, eventstore.ErrUnknownEventType},
		{"nil data", ok, eventstore.Any, []eventstore.Event{{}}, eventstore.ErrUnknownEventType},
		{"too large", ok, eventstore.Any, []eventstore.Event{good(), eventstore.NewEvent(Note{Text: strings.Repeat("z", 2000)})}, eventstore.ErrEventTooLarge},
		{"duplicate event id", ok, eventstore.Any, []eventstore.Event{dup, dup}, eventstore.ErrInvalidEvent},
		{"bad expected version", ok, eventstore.ExpectedVersion(-7), []eventstore.Event{good()}, eventstore.ErrInvalidEvent},
	}
	for _, tc := range cases {
		_, err := s.Append(ctx, tc.stream, tc.exp, tc.events...)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	var ut *eventstore.UnknownEventTypeError
	_, err := s.Append(ctx, ok, eventstore.Any, eventstore.Event{Data: unregistered{}})
	if !errors.As(err, &ut) || ut.Stream != ok || !strings.Contains(ut.Type, "unregistered") {
		t.Errorf("unknown type detail: %v", err)
	}
	var tl *eventstore.EventTooLargeError
	_, err = s.Append(ctx, ok, eventstore.Any, eventstore.NewEvent(Note{Text: strings.Repeat("z", 2000)}))
	if !errors.As(err, &tl) || tl.Max != 1024 || tl.Size <= 1024 || tl.Type != "note" {
		t.Errorf("too large detail: %v", err)
	}
	if _, err := s.AppendMulti(ctx); !errors.Is(err, eventstore.ErrEmptyAppend) {
		t.Errorf("empty multi: %v", err)
	}
	if keys := NamespaceKeys(t, s); len(keys) != 0 {
		t.Fatalf("invalid input wrote keys: %v", keys)
	}
	// The store still works afterwards.
	if _, err := s.Append(ctx, ok, eventstore.NoStream, good()); err != nil {
		t.Fatal(err)
	}
}

func testUnknownTypeOnRead(t *testing.T, newStore Factory) {
	s := newStore(t)
	ctx := ctxT(t)
	id := eventstore.Stream("account", "u1")
	if _, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "x"}), eventstore.NewEvent(Deposited{Amount: 2})); err != nil {
		t.Fatal(err)
	}
	// A reader that only knows "opened", on the same namespace.
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Opened](reg, "opened")
	r, err := eventstore.New(s.Client(), eventstore.WithNamespace(s.Keys().Namespace()), eventstore.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	var evs []eventstore.RecordedEvent
	for ev, err := range r.Read(ctx, id, 0) {
		evs = append(evs, ev)
		errs = append(errs, err)
	}
	if len(evs) != 2 || errs[0] != nil || evs[0].Data != (Opened{Owner: "x"}) {
		t.Fatalf("first event: %+v %v", evs, errs)
	}
	var ut *eventstore.UnknownEventTypeError
	if !errors.As(errs[1], &ut) || ut.Type != "deposited" || ut.Stream != id {
		t.Fatalf("unknown type on read: %v", errs[1])
	}
	if evs[1].Data != nil || len(evs[1].Raw) == 0 || evs[1].Version != 2 {
		t.Fatalf("unknown event should carry raw data: %+v", evs[1])
	}
}

func testTrimmedKeepsVersion(t *testing.T, newStore Factory) {
	s := newStore(t)
	ctx := ctxT(t)
	id := eventstore.Stream("account", "trim")
	var evs []eventstore.Event
	for i := range 5 {
		evs = append(evs, eventstore.NewEvent(Deposited{Amount: int64(i)}))
	}
	res, err := s.Append(ctx, id, eventstore.NoStream, evs...)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := Locate(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	// Trim behind version 3: versions are ids, not positions.
	if err := c.Do(ctx, c.B().Xtrim().Key(key).Minid().Threshold("4-0").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s, id)
	if len(got) != 2 || got[0].Version != 4 || got[1].Version != 5 {
		t.Fatalf("after MINID trim: %d events", len(got))
	}
	// Trim to empty: the version survives.
	if err := c.Do(ctx, c.B().Xtrim().Key(key).Maxlen().Threshold("0").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Version(ctx, id); err != nil || v != 5 {
		t.Fatalf("version after trim to empty: %d %v", v, err)
	}
	// Trimmed, not damaged: nothing was removed by hand.
	if in, err := s.Info(ctx, id); err != nil || in.Damaged || in.Version != 5 || in.First != 0 || in.Last != 0 || !in.Truncated() {
		t.Fatalf("info after trim to empty: %+v %v", in, err)
	}
	if got := readAll(t, s, id); len(got) != 0 {
		t.Fatalf("read of empty stream: %d events", len(got))
	}
	checkTrimmedRefusals(ctx, t, s, id, evs)
	r, err := s.Append(ctx, id, eventstore.Exact(5), eventstore.NewEvent(Deposited{Amount: 9}))
	if err != nil || r.Version != 6 || r.Positions[0].Compare(res.Positions[4]) <= 0 {
		t.Fatalf("append after trim: %+v %v", r, err)
	}
	if r, err := s.Append(ctx, id, eventstore.Any, eventstore.NewEvent(Deposited{})); err != nil || r.Version != 7 {
		t.Fatalf("any after trim: %+v %v", r, err)
	}
}

// checkTrimmedRefusals: on a stream trimmed to empty at version 5,
// NoStream and a stale version are refused with the true version, and a
// retry of the trimmed events evs is a conflict.
func checkTrimmedRefusals(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID, evs []eventstore.Event) {
	t.Helper()
	_, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Deposited{}))
	var wv *eventstore.WrongVersionError
	if !errors.As(err, &wv) || wv.Actual != 5 {
		t.Fatalf("no-stream on trimmed stream: %v", err)
	}
	_, err = s.Append(ctx, id, eventstore.Exact(2), eventstore.NewEvent(Deposited{}))
	if !errors.As(err, &wv) || wv.Actual != 5 {
		t.Fatalf("stale version on trimmed stream: %v", err)
	}
	// Retry of the trimmed append cannot be proven any more: a conflict, never a duplicate.
	if _, err := s.Append(ctx, id, eventstore.NoStream, evs...); !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("retry of trimmed events: %v", err)
	}
}

// testGroupCommit drives many concurrent appends into few partitions so
// that they are grouped, including conflicting ones and ones on the same
// stream, and checks every result.
func testGroupCommit(t *testing.T, newStore Factory) {
	for _, gc := range []struct {
		name            string
		batch, inflight int
	}{{"grouped", 64, 1}, {"grouped-2-inflight", 16, 2}, {"ungrouped", 1, 1}} {
		t.Run(gc.name, func(t *testing.T) {
			s := newStore(t, eventstore.WithPartitions(2), eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: gc.batch, InFlight: gc.inflight}))
			ctx := ctxT(t)
			const streams, perStream = 40, 10
			var wg sync.WaitGroup
			errs := make(chan error, streams*perStream*2)
			for i := range streams {
				id := eventstore.Stream("cart", fmt.Sprintf("c%d", i))
				wg.Go(func() {
					for v := range perStream {
						res, err := s.Append(ctx, id, eventstore.Exact(uint64(v)), eventstore.NewEvent(Note{Text: fmt.Sprint(v)}))
						if err != nil {
							errs <- err
							return
						}
						if res.Version != uint64(v+1) {
							errs <- fmt.Errorf("%s: version %d, want %d", id, res.Version, v+1)
						}
						// A stale append in the same batch window must fail.
						if _, err := s.Append(ctx, id, eventstore.Exact(uint64(v)), eventstore.NewEvent(Note{})); !errors.Is(err, eventstore.ErrWrongVersion) {
							errs <- fmt.Errorf("%s: stale append: %v", id, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			total := 0
			for p := range 2 {
				for _, err := range s.ReadLog(ctx, "cart", p, eventstore.Position{}) {
					if err != nil {
						t.Fatal(err)
					}
					total++
				}
			}
			if total != streams*perStream {
				t.Fatalf("log holds %d events, want %d", total, streams*perStream)
			}
			if gc.batch > 1 {
				t.Run("caller that gives up while queued", func(t *testing.T) {
					testGivesUpWhileQueued(t, newStore, gc.batch, gc.inflight)
				})
			}
		})
	}
}

// testGroupCommitAcrossPartitions checks that on a standalone server the
// appends of every partition share one group-commit queue: with the one
// in-flight slot held by an append of one partition (writes paused), an
// append of another partition waits in the queue (a caller that gives up
// then gets its context's error, not "outcome unknown"), and both
// partitions' appends then go out, correct, in one call. A cluster groups
// per partition (one slot per script).
func testGroupCommitAcrossPartitions(t *testing.T, newStore Factory) {
	s := newStore(t, eventstore.WithPartitions(2), eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: 64, InFlight: 1}))
	if s.Server().Cluster || !s.Server().Known() {
		t.Skip("groups per partition here: " + s.Server().String())
	}
	ctx := ctxT(t)
	a := partitionMates(t, s, "held", "a", 3)
	var b []eventstore.StreamID
	for i := 0; len(b) < 3; i++ {
		if id := fmt.Sprintf("b%d", i); eventstore.PartitionOf(id, 2) != eventstore.PartitionOf(a[0].ID, 2) {
			b = append(b, eventstore.Stream("held", id))
		}
	}
	// Warm up both partitions (cached count, loaded script).
	for _, id := range []eventstore.StreamID{a[0], b[0]} {
		if _, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Note{})); err != nil {
			t.Fatal(err)
		}
	}
	resume := pauseWrites(t, s.Client())
	flying := (&backgroundAppends{t: t, ctx: ctx, s: s, ids: a[1:2]}).start("flying")
	q := &backgroundAppends{t: t, ctx: ctx, s: s, ids: b[1:]}
	quitter, queued := q.start("quitter"), q.start("queued")
	quitter.cancel()
	select {
	case <-quitter.done:
	case <-ctx.Done():
		t.Fatalf("cancelled append did not return: %v", ctx.Err())
	}
	if !errors.Is(quitter.err, context.Canceled) || strings.Contains(quitter.err.Error(), "outcome unknown") {
		t.Fatalf("append of the other partition, cancelled behind the held one: %+v %v; want its context's error and a "+
			"known outcome: it should have waited in the store's one queue, not been sent on its own", quitter.res, quitter.err)
	}
	resume()
	checkQueuedNeighbours(ctx, t, s, []*backgroundAppend{flying, queued})
	if in, err := s.Info(ctx, quitter.id); err != nil || in.Version != 0 {
		t.Fatalf("the cancelled append was written: %s is %+v %v", quitter.id, in, err)
	}
}

// testGivesUpWhileQueued queues callers behind in-flight batches that
// cannot finish (writes are paused on the server), cancels one of them while
// it waits in the queue, and checks that it alone gives up: it gets its
// context's error, not "outcome unknown" (it was never sent), its events are
// never written, and the callers in flight and queued around it succeed.
func testGivesUpWhileQueued(t *testing.T, newStore Factory, batch, inflight int) {
	s := newStore(t, eventstore.WithPartitions(2), eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: batch, InFlight: inflight}))
	ctx := ctxT(t)
	ids := partitionMates(t, s, "held", "h", inflight+4) // one commit queue
	// Warm up: the category's partition count is then cached (prepare asks
	// Redis nothing) and the script is loaded.
	if _, err := s.Append(ctx, ids[0], eventstore.NoStream, eventstore.NewEvent(Note{})); err != nil {
		t.Fatal(err)
	}
	part, _, err := Locate(ctx, s, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	q := &backgroundAppends{t: t, ctx: ctx, s: s, ids: ids[1:]}
	resume := pauseWrites(t, s.Client())
	var others []*backgroundAppend
	for range inflight {
		others = append(others, q.start("flying")) // each takes an in-flight slot
	}
	others = append(others, q.start("before"))
	quitter := q.start("quitter")
	others = append(others, q.start("after"))
	for _, c := range others {
		select {
		case <-c.done:
			t.Fatalf("%s returned while writes were paused (%+v %v): the pause did not hold the in-flight batches", c.id, c.res, c.err)
		default:
		}
	}
	quitter.cancel()
	select {
	case <-quitter.done:
	case <-ctx.Done():
		t.Fatalf("cancelled queued append did not return: %v", ctx.Err())
	}
	if !errors.Is(quitter.err, context.Canceled) || strings.Contains(quitter.err.Error(), "outcome unknown") {
		t.Fatalf("append cancelled while queued: %+v %v, want its context's error and a known outcome (not sent)", quitter.res, quitter.err)
	}
	resume()
	checkQueuedNeighbours(ctx, t, s, others)
	checkQuitterNotWritten(ctx, t, s, part, quitter, 1+len(others))
}

// backgroundAppend is one append of testGivesUpWhileQueued, run in the
// background: done is closed when res and err are set.
type backgroundAppend struct {
	id     eventstore.StreamID
	ev     eventstore.Event
	cancel context.CancelFunc
	res    eventstore.AppendResult
	err    error
	done   chan struct{}
}

// backgroundAppends starts appends of one event each, to the next of ids.
type backgroundAppends struct {
	t   *testing.T
	ctx context.Context
	s   *eventstore.Store
	ids []eventstore.StreamID
}

// start appends in the background and returns once the append waits on
// its context: in flight (holding a slot) or queued.
func (q *backgroundAppends) start(name string) *backgroundAppend {
	t, ctx := q.t, q.ctx
	t.Helper()
	c := &backgroundAppend{id: q.ids[0], ev: eventstore.NewEvent(Note{Text: name}), done: make(chan struct{})}
	q.ids = q.ids[1:]
	c.ev.ID = uuid.New()
	wctx, cancel := newWaitedCtx(ctx)
	c.cancel = cancel
	t.Cleanup(cancel)
	go func() {
		defer close(c.done)
		c.res, c.err = q.s.Append(wctx, c.id, eventstore.NoStream, c.ev)
	}()
	select {
	case <-wctx.waited:
	case <-c.done:
		t.Fatalf("%s returned before waiting: %+v %v", c.id, c.res, c.err)
	case <-ctx.Done():
		t.Fatalf("%s never waited: %v", c.id, ctx.Err())
	}
	return c
}

// checkQueuedNeighbours: once writes resume, every append in flight or
// queued beside the cancelled one returns and is written.
func checkQueuedNeighbours(ctx context.Context, t *testing.T, s *eventstore.Store, others []*backgroundAppend) {
	t.Helper()
	for _, c := range others {
		select {
		case <-c.done:
		case <-ctx.Done():
			t.Fatalf("%s did not return after writes resumed: %v", c.id, ctx.Err())
		}
		if c.err != nil || c.res.Version != 1 {
			t.Errorf("%s, queued or in flight beside the cancelled append: %+v %v", c.id, c.res, c.err)
		} else if got := readAll(t, s, c.id); len(got) != 1 || got[0].ID != c.ev.ID {
			t.Errorf("%s holds %d events, want its one", c.id, len(got))
		}
	}
}

// checkQuitterNotWritten: the cancelled append is neither in its stream nor
// in the partition log, which holds want events.
func checkQuitterNotWritten(ctx context.Context, t *testing.T, s *eventstore.Store, part int, quitter *backgroundAppend, want int) {
	t.Helper()
	// "after" was queued behind the quitter and is written: a batch that
	// still held the quitter's request has been sent by now.
	if in, err := s.Info(ctx, quitter.id); err != nil || in.Version != 0 || in.First != 0 {
		t.Fatalf("the cancelled append was written: %s is %+v %v", quitter.id, in, err)
	}
	logged := 0
	for ev, err := range s.ReadLog(ctx, "held", part, eventstore.Position{}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID == quitter.ev.ID {
			t.Fatalf("the cancelled append is in the partition log at %s", ev.Position)
		}
		logged++
	}
	if logged != want {
		t.Fatalf("partition log holds %d events, want %d", logged, want)
	}
}

// waitedCtx closes waited the first time its Done is called. Store.Append
// first asks for Done once the request is in its group-commit queue (or
// sent): a test awaits that rather than sleeping.
type waitedCtx struct {
	context.Context
	once   sync.Once
	waited chan struct{}
}

func newWaitedCtx(parent context.Context) (*waitedCtx, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	return &waitedCtx{Context: ctx, waited: make(chan struct{})}, cancel
}

func (c *waitedCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waited) })
	return c.Context.Done()
}

func testPartitionsFixed(t *testing.T, newStore Factory) {
	s := newStore(t, eventstore.WithPartitions(3))
	ctx := ctxT(t)
	n, err := s.CreateCategory(ctx, "ledger")
	if err != nil || n != 3 {
		t.Fatalf("partitions %d %v", n, err)
	}
	// A second store configured differently uses the stored count.
	other, err := eventstore.New(s.Client(), eventstore.WithNamespace(s.Keys().Namespace()), eventstore.WithPartitions(8), eventstore.WithRegistry(Registry()))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := other.Partitions(ctx, "ledger"); err != nil || n != 3 {
		t.Fatalf("second store sees %d partitions, %v", n, err)
	}
	cats, err := s.Categories(ctx)
	if err != nil || !slices.Contains(cats, "ledger") {
		t.Fatalf("categories %v %v", cats, err)
	}
}

// testOneSlot checks that every key of one partition maps to one cluster
// slot (on a cluster; on a standalone server it checks the key shapes).
func testOneSlot(t *testing.T, newStore Factory) {
	s := newStore(t, eventstore.WithPartitions(8))
	ctx := ctxT(t)
	k := s.Keys()
	for p := range 8 {
		id := eventstore.Stream("slot", fmt.Sprintf("e%d", p))
		keys := []string{k.Log("slot", p), k.Stream(id, p), k.Snapshot(id, p), k.PartitionKey("slot", p, "lease")}
		tag := k.Tag("slot", p)
		for _, key := range keys {
			if !strings.Contains(key, tag) || strings.Index(key, "{") != strings.Index(key, tag) {
				t.Fatalf("key %q does not start its hash tag with %q", key, tag)
			}
		}
		if slots := clusterSlots(ctx, t, s.Client(), keys); len(slots) > 1 {
			t.Fatalf("partition %d keys span slots %v", p, slots)
		}
	}
}

// clusterSlots returns the distinct CLUSTER KEYSLOT values of keys, or nil
// when the server is not a cluster.
func clusterSlots(ctx context.Context, t *testing.T, c rueidis.Client, keys []string) []int64 {
	var slots []int64
	for _, key := range keys {
		n, err := c.Do(ctx, c.B().ClusterKeyslot().Key(key).Build()).AsInt64()
		if err != nil {
			if strings.Contains(err.Error(), "cluster support disabled") || strings.Contains(err.Error(), "ERR This instance has cluster support disabled") {
				return nil
			}
			t.Fatal(err)
		}
		if !slices.Contains(slots, n) {
			slots = append(slots, n)
		}
	}
	return slots
}

func testDelete(t *testing.T, newStore Factory) {
	s := newStore(t)
	ctx := ctxT(t)
	id := eventstore.Stream("account", "gone")
	res, del := checkDeletion(ctx, t, s, id)
	// The log tells projections, after the entity's events.
	logged := collect(t, s.ReadLog(ctx, "account", res.Partition, eventstore.Position{}))
	var last eventstore.RecordedEvent
	if len(logged) > 0 {
		last = logged[len(logged)-1]
	}
	if n := len(logged); n != 3 || last.Type != eventstore.DeletedType || last.Data != (eventstore.Deleted{}) || last.Version != 3 || last.Stream != id || last.Position != del.Positions[0] {
		t.Fatalf("deletion marker: %d entries, last %+v", n, last)
	}
	checkDeletedNotLive(ctx, t, s, id)
	checkNewLife(ctx, t, s, id)
	// Deleting it again, and a new life with Any.
	if del, err := s.Delete(ctx, id, eventstore.Exact(5)); err != nil || del.Version != 6 {
		t.Fatalf("second deletion: %+v %v", del, err)
	}
	if r, err := s.Append(ctx, id, eventstore.Any, eventstore.NewEvent(Opened{Owner: "v"})); err != nil || r.Version != 7 {
		t.Fatalf("Any after the second deletion: %+v %v", r, err)
	}
	// Reserved type names cannot be registered.
	if err := eventstore.Register[Note](eventstore.NewRegistry(), "$deleted"); !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Fatalf("registering a reserved name: %v", err)
	}
}

// checkDeletion appends two events and a snapshot to id, checks that
// Delete refuses a stale version and NoStream, then deletes it at its
// version: the snapshot goes with it, and a second Delete finds nothing.
// It returns the append's result and the deletion's.
func checkDeletion(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID) (res, del eventstore.AppendResult) {
	t.Helper()
	res, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "x"}), eventstore.NewEvent(Deposited{Amount: 1}))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	snap := s.Keys().Snapshot(id, res.Partition)
	if err := c.Do(ctx, c.B().Set().Key(snap).Value("state").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	var wv *eventstore.WrongVersionError
	if _, err := s.Delete(ctx, id, eventstore.Exact(1)); !errors.As(err, &wv) || wv.Actual != 2 {
		t.Fatalf("delete at a stale version: %v", err)
	}
	if _, err := s.Delete(ctx, id, eventstore.NoStream); !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Fatalf("delete with NoStream: %v", err)
	}
	del, err = s.Delete(ctx, id, eventstore.Exact(2))
	if err != nil || del.Version != 3 || len(del.Positions) != 1 {
		t.Fatalf("delete: %+v %v", del, err)
	}
	if n, _ := c.Do(ctx, c.B().Exists().Key(snap).Build()).AsInt64(); n != 0 {
		t.Fatal("snapshot survived the deletion")
	}
	if _, err := s.Last(ctx, id); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("stream after deletion: %v", err)
	}
	if _, err := s.Delete(ctx, id, eventstore.Any); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	return res, del
}

// checkDeletedNotLive: a stream deleted at version 3 is not live: only
// NoStream and Any may start it again.
func checkDeletedNotLive(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID) {
	t.Helper()
	if in, err := s.Info(ctx, id); err != nil || !in.Deleted || in.DeletedAt != 3 || in.Start != 4 || in.Version != 0 {
		t.Fatalf("info of a deleted stream: %+v %v", in, err)
	}
	var wv *eventstore.WrongVersionError
	for _, exp := range []eventstore.ExpectedVersion{eventstore.Exact(2), eventstore.Exact(3), eventstore.StreamExists} {
		if _, err := s.Append(ctx, id, exp, eventstore.NewEvent(Opened{Owner: "z"})); !errors.As(err, &wv) || wv.Actual != 0 {
			t.Fatalf("append with %s to a deleted stream: %v", exp, err)
		}
	}
	if v, err := s.Version(ctx, id); err != nil || v != 0 {
		t.Fatalf("version of a deleted stream: %d %v", v, err)
	}
}

// checkNewLife: the entity deleted at version 3 starts a new life whose
// versions continue after the marker, so what was derived from the old
// life cannot shadow it; its first append can be retried.
func checkNewLife(ctx context.Context, t *testing.T, s *eventstore.Store, id eventstore.StreamID) {
	t.Helper()
	again := []eventstore.Event{eventstore.NewEvent(Opened{Owner: "y"})}
	r, err := s.Append(ctx, id, eventstore.NoStream, again...)
	if err != nil || r.Version != 4 || r.Replayed {
		t.Fatalf("append after deletion: %+v %v", r, err)
	}
	// A retry of that first append is recognised.
	if r2, err := s.Append(ctx, id, eventstore.NoStream, again...); err != nil || r2.Version != 4 || !r2.Replayed || r2.Positions[0] != r.Positions[0] {
		t.Fatalf("retry of the first append of a new life: %+v %v", r2, err)
	}
	var wv *eventstore.WrongVersionError
	if _, err := s.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "w"})); !errors.As(err, &wv) || wv.Actual != 4 {
		t.Fatalf("NoStream on the live new life: %v", err)
	}
	if r, err := s.Append(ctx, id, eventstore.Exact(4), eventstore.NewEvent(Deposited{Amount: 1})); err != nil || r.Version != 5 {
		t.Fatalf("append to the new life: %+v %v", r, err)
	}
	var vs []uint64
	for _, ev := range collect(t, s.Read(ctx, id, 0)) {
		vs = append(vs, ev.Version)
	}
	if !slices.Equal(vs, []uint64{4, 5}) {
		t.Fatalf("new life reads versions %v, want [4 5]", vs)
	}
	if in, err := s.Info(ctx, id); err != nil || in.Deleted || in.DeletedAt != 3 || in.Start != 4 || in.First != 4 || in.Version != 5 || in.Truncated() {
		t.Fatalf("info of the new life: %+v %v", in, err)
	}
}
