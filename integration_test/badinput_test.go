package integration_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
)

// Ghost is registered only by the "other program" of TestForeignEntries.
type Ghost struct{ Boo string }

// TestForeignEntries writes entries the store did not write into an entity
// stream and a partition log (missing fields, garbage envelopes, an unknown
// event type, a 4 MB value, an id that is not a version): reads yield typed
// errors for those and go on; appends after them still work.
func TestForeignEntries(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		c := tg.Client
		store := newStore(t, c, tg.Namespace)
		greg := registry()
		eventstore.MustRegister[Ghost](greg, "ghost")
		other, err := eventstore.New(c, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(greg), eventstore.WithPartitions(4))
		if err != nil {
			t.Fatal(err)
		}
		id := eventstore.Stream("acct", "foreign")
		p, key, err := storetest.Locate(ctx, store, id)
		if err != nil {
			t.Fatal(err)
		}
		logKey := store.Keys().Log("acct", p)
		huge := strings.Repeat("\xff", 4<<20)
		xadd := func(key, entryID string, fv ...string) {
			t.Helper()
			cmd := c.B().Xadd().Key(key).Id(entryID).FieldValue()
			for i := 0; i+1 < len(fv); i += 2 {
				cmd = cmd.FieldValue(fv[i], fv[i+1])
			}
			if err := c.Do(ctx, cmd.Build()).Error(); err != nil {
				t.Fatalf("xadd %s: %v", entryID, err)
			}
		}
		mustAppend := func(s *eventstore.Store, exp uint64, data any) {
			t.Helper()
			if _, err := s.Append(ctx, id, eventstore.Exact(exp), eventstore.NewEvent(data)); err != nil {
				t.Fatalf("append at %d: %v", exp, err)
			}
		}
		mustAppend(store, 0, Tick{N: 1})                                   // v1 ok
		xadd(key, "2-0", "x", "y")                                         // v2 no envelope
		xadd(key, "3-0", "e", "garbage")                                   // v3 short envelope
		mustAppend(other, 3, Ghost{Boo: "!"})                              // v4 unknown type (also in the log)
		xadd(key, "5-0", "e", strings.Repeat("\x00", 16)+huge, "p", "x-y") // v5 huge garbage, bad position
		xadd(key, "6-7", "e", "\x00")                                      // v6 id not <version>-0
		mustAppend(store, 6, Tick{N: 7})                                   // v7 ok: the script reads the version from the id
		xadd(logKey, "*", "x", "y")
		xadd(logKey, "*", "s", "foreign", "v", "1-0", "e", "\xc1\xc1")
		xadd(logKey, "*", "s", "bad{id}", "v", "1-0", "e", huge)
		xadd(logKey, "*", "s", "foreign", "v", "zz", "e", "")
		mustAppend(store, 7, Tick{N: 8}) // v8 ok, last in the log too

		var ok, corrupt, unknown int
		var versions []uint64
		for ev, err := range store.Read(ctx, id, 0) {
			switch {
			case err == nil:
				ok++
				versions = append(versions, ev.Version)
			case errors.Is(err, eventstore.ErrCorruptEntry):
				corrupt++
			case errors.Is(err, eventstore.ErrUnknownEventType):
				unknown++
				if ev.Type != "ghost" || ev.Data != nil || len(ev.Raw) == 0 {
					t.Errorf("unknown event yielded as %+v", ev)
				}
			default:
				t.Fatalf("untyped read error: %v", err)
			}
		}
		if ok != 3 || corrupt != 4 || unknown != 1 || fmt.Sprint(versions) != "[1 7 8]" {
			t.Errorf("stream: ok=%d corrupt=%d unknown=%d versions=%v", ok, corrupt, unknown, versions)
		}
		var lok, lcorrupt, lunknown int
		for _, err := range store.ReadLog(ctx, "acct", p, eventstore.Position{}) {
			switch {
			case err == nil:
				lok++
			case errors.Is(err, eventstore.ErrCorruptEntry):
				lcorrupt++
			case errors.Is(err, eventstore.ErrUnknownEventType):
				lunknown++
			default:
				t.Fatalf("untyped log error: %v", err)
			}
		}
		if lok != 3 || lcorrupt != 4 || lunknown != 1 {
			t.Errorf("log: ok=%d corrupt=%d unknown=%d", lok, lcorrupt, lunknown)
		}
		if v, err := store.Version(ctx, id); err != nil || v != 8 {
			t.Errorf("version %d %v", v, err)
		}
		// A key of the wrong type where a stream belongs: a clear error, no panic.
		wid := eventstore.Stream("acct", "wrongtype")
		_, wkey, _ := storetest.Locate(ctx, store, wid)
		if err := c.Do(ctx, c.B().Set().Key(wkey).Value("not a stream").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		_, aerr := store.Append(ctx, wid, eventstore.Any, eventstore.NewEvent(Tick{}))
		var rerr error
		for _, err := range store.Read(ctx, wid, 0) {
			rerr = err
		}
		var af *eventstore.AppendFailedError
		if !errors.As(aerr, &af) || af.Partial || !strings.HasPrefix(af.Reason, "WRONGTYPE") || !isRedisErr(rerr, "WRONGTYPE") {
			t.Errorf("wrong key type: append %v, read %v", aerr, rerr)
		}
		summary(t, "foreign_stream_entries", 5, "read_ok", ok, "read_corrupt", corrupt, "read_unknown", unknown,
			"foreign_log_entries", 4, "log_ok", lok, "log_corrupt", lcorrupt, "log_unknown", lunknown, "lost", 0, "duplicated", 0)
	})
}

func isRedisErr(err error, prefix string) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), prefix)
}

// TestInvalidNames: ids and categories that could break the key layout are
// refused with ErrInvalidStreamID before anything reaches Redis.
func TestInvalidNames(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	store := newStore(t, tg.Client, tg.Namespace)
	bad := []eventstore.StreamID{
		eventstore.Stream("", "x"), eventstore.Stream("acct", ""), eventstore.Stream("ac:ct", "x"), eventstore.Stream("ac-ct", "x"), eventstore.Stream("a{b}", "x"), eventstore.Stream("acct", "x}:{other"), eventstore.Stream("acct", "{x}"),
		eventstore.Stream("acct", "a\r\nb"), eventstore.Stream("acct", "a b"), eventstore.Stream("acct", "a\x00"), eventstore.Stream("acct", "\xff\xfe"), eventstore.Stream("acct", strings.Repeat("x", 257)),
		eventstore.Stream(strings.Repeat("c", 65), "x"), eventstore.Stream("acct", "a\u2028"), eventstore.Stream("acct", "tab\t"), eventstore.Stream("ünï", "x"),
	}
	refused := 0
	for _, id := range bad {
		_, err1 := store.Append(ctx, id, eventstore.Any, eventstore.NewEvent(Tick{}))
		_, err2 := store.Version(ctx, id)
		_, err3 := store.Delete(ctx, id, eventstore.Any)
		var err4 error
		for _, err := range store.Read(ctx, id, 0) {
			err4 = err
		}
		for i, err := range []error{err1, err2, err3, err4} {
			var ie *eventstore.InvalidStreamIDError
			if !errors.Is(err, eventstore.ErrInvalidStreamID) || !errors.As(err, &ie) {
				t.Errorf("%q op %d: %v", id, i, err)
			} else {
				refused++
			}
		}
	}
	for _, ns := range []string{"a:b", "a{b}", "a b", "a*", strings.Repeat("n", 65)} {
		if _, err := eventstore.New(tg.Client, eventstore.WithNamespace(ns)); !errors.Is(err, eventstore.ErrInvalidStreamID) {
			t.Errorf("namespace %q: %v", ns, err)
		}
	}
	keys, err := tg.Client.Do(ctx, tg.Client.B().Keys().Pattern(tg.Namespace+":*").Build()).AsStrSlice()
	if err != nil || len(keys) != 0 {
		t.Errorf("invalid names reached Redis: %v %v", keys, err)
	}
	summary(t, "attempted", 4*len(bad), "refused_typed", refused, "keys_written", len(keys))
}

// TestOutOfMemory fills a server limited to 2 MB (noeviction) until it
// refuses writes: appends, multi-stream appends and deletes fail with Redis'
// OOM error and write nothing (entity streams and log unchanged); reads go
// on; once memory is freed the same store appends again.
func TestOutOfMemory(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal),
		redistest.WithArgs("--maxmemory", "2mb", "--maxmemory-policy", "noeviction"))
	c := srv.NewClient(t)
	store := newStore(t, c, "oom", eventstore.WithPartitions(1))
	a, b := eventstore.Stream("acct", "a"), eventstore.Stream("acct", "b")
	for _, id := range []eventstore.StreamID{a, b} {
		if _, err := store.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Tick{N: 1})); err != nil {
			t.Fatal(err)
		}
	}
	// Fill memory from another "program" until Redis says OOM.
	filler := strings.Repeat("f", 32<<10)
	n := 0
	for ; n < 1000; n++ {
		err := c.Do(ctx, c.B().Set().Key(fmt.Sprintf("filler:%d", n)).Value(filler).Build()).Error()
		if isRedisErr(err, "OOM") {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 1000 {
		t.Fatal("never reached OOM")
	}
	// Right at the limit, memory moves with client buffers (the refused
	// SET's own 32 KB argument was counted): set the limit 256 KB below
	// what is used so that every write is refused.
	info, err := c.Do(ctx, c.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			fmt.Sscan(v, &used)
		}
	}
	if used < 1<<20 {
		t.Fatalf("used_memory %d", used)
	}
	if err := c.Do(ctx, c.B().ConfigSet().ParameterValue().ParameterValue("maxmemory", fmt.Sprint(used-256<<10)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	lens := func() string {
		var out []int64
		for _, k := range []string{store.Keys().Log("acct", 0), mustKey(t, store, a), mustKey(t, store, b)} {
			l, err := c.Do(ctx, c.B().Xlen().Key(k).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		return fmt.Sprint(out)
	}
	before := lens()
	attempted, refused := 0, 0
	check := func(what string, err error) {
		t.Helper()
		attempted++
		if errors.Is(err, eventstore.ErrOutOfMemory) {
			refused++
		} else {
			t.Errorf("%s under OOM: %v", what, err)
		}
	}
	big := make([]eventstore.Event, 5)
	for i := range big {
		big[i] = eventstore.NewEvent(Tick{N: int64(i), Pad: strings.Repeat("p", 1000)})
	}
	_, err = store.Append(ctx, a, eventstore.Exact(1), big...)
	check("append", err)
	_, err = store.AppendMulti(ctx, eventstore.StreamAppend{Stream: a, Expected: eventstore.Exact(1), Events: []eventstore.Event{eventstore.NewEvent(Tick{})}},
		eventstore.StreamAppend{Stream: b, Expected: eventstore.Exact(1), Events: []eventstore.Event{eventstore.NewEvent(Tick{})}})
	check("append multi", err)
	_, err = store.Delete(ctx, b, eventstore.Exact(1))
	check("delete", err)
	// Concurrent appends (grouped into one script call) all fail alike.
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			_, err := store.Append(ctx, a, eventstore.Exact(1), eventstore.NewEvent(Tick{N: int64(i)}))
			errs <- err
		}()
	}
	for range 16 {
		check("concurrent append", <-errs)
	}
	// A new category needs its metadata written: refused too, and not cached.
	_, err = store.Append(ctx, eventstore.Stream("newcat", "x"), eventstore.Any, eventstore.NewEvent(Tick{}))
	check("append to a new category", err)
	if after := lens(); after != before {
		t.Errorf("something was written under OOM: lengths %s -> %s", before, after)
	}
	if v, err := store.Version(ctx, a); err != nil || v != 1 {
		t.Errorf("read under OOM: %d %v", v, err)
	}
	// Free the memory: the same store works again.
	for i := range n {
		if err := c.Do(ctx, c.B().Del().Key(fmt.Sprintf("filler:%d", i)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := store.Append(ctx, a, eventstore.Exact(1), big...); err != nil || res.Version != 6 {
		t.Fatalf("append after freeing memory: %+v %v", res, err)
	}
	if _, err := store.Append(ctx, eventstore.Stream("newcat", "x"), eventstore.Any, eventstore.NewEvent(Tick{})); err != nil {
		t.Fatalf("new category after freeing memory: %v", err)
	}
	summary(t, "attempted", attempted, "refused_oom", refused, "half_written", btoi(lens() == before), "lost", 0, "duplicated", 0)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func mustKey(t testing.TB, s *eventstore.Store, id eventstore.StreamID) string {
	t.Helper()
	_, k, err := storetest.Locate(context.Background(), s, id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestScriptFlush: SCRIPT FLUSH (a restart, a failover to a server that
// never saw the scripts, an operator) must not break appends, durable
// appends, deletes or retention: each falls back from EVALSHA to EVAL.
func TestScriptFlush(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		store := newStore(t, tg.Client, tg.Namespace)
		durable := newStore(t, tg.Client, tg.Namespace, eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: 10 * time.Millisecond}))
		ret, err := retention.New(store, []retention.Policy{{Category: "acct", CompactIdle: time.Millisecond, LogMaxLen: 1, ForceLogTrim: true}})
		if err != nil {
			t.Fatal(err)
		}
		flush := func() {
			for addr, n := range tg.Client.Nodes() {
				if err := n.Do(ctx, n.B().ScriptFlush().Build()).Error(); err != nil {
					t.Fatalf("script flush %s: %v", addr, err)
				}
			}
		}
		id := eventstore.Stream("acct", "flush")
		ok := 0
		for i := range 3 {
			flush()
			if _, err := store.Append(ctx, id, eventstore.Exact(uint64(2*i)), eventstore.NewEvent(Tick{})); err != nil {
				t.Fatalf("append after SCRIPT FLUSH: %v", err)
			}
			flush()
			// No replica here: the durable append is applied and reported not durable, never NOSCRIPT.
			if _, err := durable.Append(ctx, id, eventstore.Exact(uint64(2*i+1)), eventstore.NewEvent(Tick{})); !errors.Is(err, eventstore.ErrNotDurable) {
				t.Fatalf("durable append after SCRIPT FLUSH: %v", err)
			}
			flush()
			if _, err := ret.Apply(ctx, false); err != nil {
				t.Fatalf("retention after SCRIPT FLUSH: %v", err)
			}
			ok += 3
		}
		flush()
		if _, err := store.Delete(ctx, id, eventstore.Exact(6)); err != nil {
			t.Fatalf("delete after SCRIPT FLUSH: %v", err)
		}
		summary(t, "attempted", ok+1, "ok_after_flush", ok+1, "lost", 0, "duplicated", 0)
	})
}

// TestReadOnlyReplica: a store pointed at a replica gets Redis' READONLY
// error (a *rueidis.RedisError) on every write, writes nothing, and can read.
func TestReadOnlyReplica(t *testing.T) {
	ctx := context.Background()
	primary := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), redistest.WithArgs("--repl-diskless-sync-delay", "0"))
	host, port := splitAddr(t, primary.Addrs()[0])
	replica := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), redistest.WithArgs("--replicaof", host, fmt.Sprint(port)))
	waitLinkUp(t, replica.Addrs()[0])
	ps := newStore(t, primary.NewClient(t), "ro")
	rc := replica.NewClient(t)
	rs := newStore(t, rc, "ro")
	id := eventstore.Stream("acct", "r")
	if _, err := ps.Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(Tick{})); err != nil {
		t.Fatal(err)
	}
	pc := primary.NewClient(t)
	if err := pc.Do(ctx, pc.B().Wait().Numreplicas(1).Timeout(5000).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	attempted, readonly := 0, 0
	check := func(what string, err error) {
		t.Helper()
		attempted++
		if errors.Is(err, eventstore.ErrReadOnly) {
			readonly++
		} else {
			t.Errorf("%s on a replica: %v", what, err)
		}
	}
	_, err := rs.Append(ctx, id, eventstore.Exact(1), eventstore.NewEvent(Tick{}))
	check("append", err)
	_, err = rs.Append(ctx, eventstore.Stream("other", "x"), eventstore.Any, eventstore.NewEvent(Tick{}))
	check("append to a new category", err)
	_, err = rs.Delete(ctx, id, eventstore.Any)
	check("delete", err)
	// Reads from a replica work: resolving a known category writes nothing.
	t.Run("reads", func(t *testing.T) {
		v, err := rs.Version(ctx, id)
		if err != nil || v != 1 {
			t.Errorf("read from the replica: %d %v", v, err)
		}
	})
	if v, err := ps.Version(ctx, id); err != nil || v != 1 {
		t.Errorf("primary after refused writes: %d %v", v, err)
	}
	summary(t, "attempted", attempted, "refused_readonly", readonly, "lost", 0, "duplicated", 0)
}
