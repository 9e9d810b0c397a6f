package shred_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention/shred"
	"github.com/streamfold/streamfold/snapshot"
)

func TestMain(m *testing.M) { redistest.Main(m) }

type Registered struct {
	Email string `shred:"personal"`
	Name  string `shred:"personal"`
	Plan  string
}

type PlanChanged struct{ Plan string }

func newStore(t *testing.T, tg *redistest.Target, client rueidis.Client) (*eventstore.Store, *shred.Keys) {
	t.Helper()
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Registered](reg, "registered")
	eventstore.MustRegister[PlanChanged](reg, "plan-changed")
	plain, err := eventstore.New(client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	keys := shred.NewKeys(plain)
	s, err := eventstore.New(client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg),
		eventstore.WithCodec(shred.NewCodec(eventstore.Msgpack{}, keys)))
	if err != nil {
		t.Fatal(err)
	}
	return s, keys
}

func TestShredding(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s, keys := newStore(t, tg, tg.Client)
		// A second reader with its own client-side cache, to see Forget reach it.
		other, _ := newStore(t, tg, tg.NewClient(t))
		alice, bob := eventstore.Stream("user", "u-1"), eventstore.Stream("user", "u-2")
		res, err := s.Append(ctx, alice, eventstore.NoStream,
			eventstore.NewEvent(Registered{Email: "alice@example.com", Name: "Alice", Plan: "free"}),
			eventstore.NewEvent(PlanChanged{Plan: "pro"}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, bob, eventstore.NoStream, eventstore.NewEvent(Registered{Email: "bob@example.com", Name: "Bob", Plan: "free"})); err != nil {
			t.Fatal(err)
		}
		// Nothing personal is stored in the clear, in the stream or in the log.
		c := tg.Client
		_, key, _ := storetest.Locate(ctx, s, alice)
		for _, k := range []string{key, s.Keys().Log("user", res.Partition)} {
			raw, err := c.Do(ctx, c.B().Xrange().Key(k).Start("-").End("+").Build()).ToAny()
			if err != nil {
				t.Fatal(err)
			}
			if dump := fmtAny(raw); strings.Contains(dump, "alice@example.com") {
				t.Fatalf("%s stores personal data in the clear", k)
			}
		}
		first := func(st *eventstore.Store, id eventstore.StreamID) Registered {
			t.Helper()
			for ev, err := range st.Read(ctx, id, 0) {
				if err != nil {
					t.Fatalf("first event of %s: %v", id, err)
				}
				return ev.Data.(Registered)
			}
			t.Fatal("no events")
			return Registered{}
		}
		if got := first(s, alice); got != (Registered{Email: "alice@example.com", Name: "Alice", Plan: "free"}) {
			t.Fatalf("read back %+v", got)
		}
		if got := first(other, alice); got.Email != "alice@example.com" {
			t.Fatalf("other reader %+v", got)
		}
		// A snapshot with personal state is deleted with the key.
		p, _, _ := storetest.Locate(ctx, s, alice)
		snap := s.Keys().Snapshot(alice, p)
		if err := c.Do(ctx, c.B().Set().Key(snap).Value("alice@example.com").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		fr, err := keys.Forget(ctx, alice)
		if err != nil || fr.Version != 3 {
			t.Fatalf("forget: %+v %v", fr, err)
		}
		for _, st := range []*eventstore.Store{s, other} {
			var evs []eventstore.RecordedEvent
			for ev, err := range st.Read(ctx, alice, 0) {
				if err != nil {
					t.Fatalf("history after Forget: %v", err)
				}
				evs = append(evs, ev)
			}
			// Projections are told, by an event of the stream: read models are not sealed.
			if len(evs) != 3 || evs[0].Data != (Registered{Plan: "free"}) || evs[1].Data != (PlanChanged{Plan: "pro"}) ||
				evs[2].Type != eventstore.ForgottenType || evs[2].Data != (eventstore.Forgotten{}) || evs[2].Position != fr.Positions[0] {
				t.Fatalf("after Forget: %+v", evs)
			}
		}
		if n, _ := c.Do(ctx, c.B().Exists().Key(snap).Build()).AsInt64(); n != 0 {
			t.Fatal("snapshot survived Forget")
		}
		if got := first(s, bob); got.Email != "bob@example.com" {
			t.Fatalf("bob after alice's Forget: %+v", got)
		}
		// Later appends get a new key; old fields stay unreadable.
		if _, err := s.Append(ctx, alice, eventstore.Exact(3), eventstore.NewEvent(Registered{Email: "new@example.com", Plan: "pro"})); err != nil {
			t.Fatal(err)
		}
		last, err := s.Last(ctx, alice)
		if err != nil || last.Data.(Registered).Email != "new@example.com" || first(s, alice).Email != "" {
			t.Fatalf("after a new key: %+v %v", last.Data, err)
		}
	})
}

func TestTampering(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	s, keys := newStore(t, tg, tg.Client)
	codec := shred.NewCodec(eventstore.Msgpack{}, keys)
	a, b := eventstore.Stream("user", "a"), eventstore.Stream("user", "b")
	data, err := codec.MarshalStream(ctx, a, Registered{Email: "a@x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.MarshalStream(ctx, b, Registered{Email: "b@x"}); err != nil {
		t.Fatal(err)
	}
	// Moved to another entity, a value never decrypts: it reads as empty.
	var r Registered
	if err := codec.UnmarshalStream(ctx, b, data, &r); err != nil || r.Email != "" {
		t.Fatalf("a's ciphertext read as b's: %v %+v", err, r)
	}
	// Altered, it fails authentication.
	var enc Registered
	if err := (eventstore.Msgpack{}).Unmarshal(data, &enc); err != nil {
		t.Fatal(err)
	}
	// Change one base64 character well inside the sealed bytes.
	b64 := []byte(enc.Email)
	i := len(b64) - 10
	if b64[i] == 'A' {
		b64[i] = 'B'
	} else {
		b64[i] = 'A'
	}
	enc.Email = string(b64)
	altered, _ := (eventstore.Msgpack{}).Marshal(enc)
	if err := codec.UnmarshalStream(ctx, a, altered, &r); !errors.Is(err, shred.ErrTampered) {
		t.Fatalf("altered ciphertext: %v %+v", err, r)
	}
	if err := codec.UnmarshalStream(ctx, a, data, &r); err != nil || r.Email != "a@x" {
		t.Fatalf("a's own value: %v %+v", err, r)
	}
	if _, err := codec.Marshal(Registered{Email: "x"}); !errors.Is(err, shred.ErrNoStream) {
		t.Fatalf("Marshal without a stream: %v", err)
	}
	if b, err := codec.Marshal(PlanChanged{Plan: "x"}); err != nil || len(b) == 0 {
		t.Fatalf("Marshal of a type without personal fields: %v", err)
	}
	_ = s
}

func fmtAny(v any) string {
	var sb strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for k, e := range x {
				sb.WriteString(k)
				walk(e)
			}
		case string:
			sb.WriteString(x)
			sb.WriteByte('"')
		}
	}
	walk(v)
	return sb.String()
}

// A snapshot taken before Forget holds the state in the clear; a background
// writer may deliver it afterwards. Forget refuses it for good.
func TestForgetRefusesLateSnapshots(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s, keys := newStore(t, tg, tg.Client)
		snaps, err := snapshot.New(s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { snaps.Close(context.Background()) })
		alice := eventstore.Stream("user", "late")
		if _, err := s.Append(ctx, alice, eventstore.NoStream,
			eventstore.NewEvent(Registered{Email: "late@example.com", Plan: "free"}), eventstore.NewEvent(PlanChanged{Plan: "pro"})); err != nil {
			t.Fatal(err)
		}
		clear := snapshot.Snapshot{Version: 2, SchemaVersion: 1, State: []byte("late@example.com")}
		early := snapshot.Snapshot{Version: 1, SchemaVersion: 1, State: []byte("late@example.com")}
		if _, err := snaps.Save(ctx, alice, early); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Forget(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Get(ctx, alice); !errors.Is(err, snapshot.ErrNotFound) {
			t.Fatalf("snapshot after Forget: %v", err)
		}
		for _, sn := range []snapshot.Snapshot{clear, early} {
			if _, err := snaps.Save(ctx, alice, sn); !errors.Is(err, snapshot.ErrStale) {
				t.Fatalf("late snapshot at version %d after Forget: %v", sn.Version, err)
			}
		}
		// Later snapshots are written as usual (Forget appended version 3).
		if _, err := s.Append(ctx, alice, eventstore.Exact(3), eventstore.NewEvent(PlanChanged{Plan: "team"})); err != nil {
			t.Fatal(err)
		}
		if ok, err := snaps.Save(ctx, alice, snapshot.Snapshot{Version: 4, SchemaVersion: 1, State: []byte("{}")}); err != nil || !ok {
			t.Fatalf("snapshot after Forget and a new event: %v %v", ok, err)
		}
		// Forgetting again raises the floor, never lowers it.
		if _, err := keys.Forget(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Save(ctx, alice, snapshot.Snapshot{Version: 4, SchemaVersion: 1, State: []byte("{}")}); !errors.Is(err, snapshot.ErrStale) {
			t.Fatalf("snapshot at the floor after a second Forget: %v", err)
		}
	})
}

// Forget of a stream that does not exist appends nothing (and creates no
// stream); forgetting twice is harmless.
func TestForgetWithoutStream(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s, keys := newStore(t, tg, tg.Client)
		ghost := eventstore.Stream("user", "ghost")
		if res, err := keys.Forget(ctx, ghost); err != nil || res.Version != 0 {
			t.Fatalf("forget of a stream never written: %+v %v", res, err)
		}
		if in, err := s.Info(ctx, ghost); err != nil || in.Version != 0 || in.Deleted {
			t.Fatalf("Forget created the stream: %+v %v", in, err)
		}
		u := eventstore.Stream("user", "twice")
		if _, err := s.Append(ctx, u, eventstore.NoStream, eventstore.NewEvent(Registered{Email: "t@example.com"})); err != nil {
			t.Fatal(err)
		}
		for want := uint64(2); want <= 3; want++ {
			if res, err := keys.Forget(ctx, u); err != nil || res.Version != want {
				t.Fatalf("forget: %+v %v, want version %d", res, err, want)
			}
		}
		if _, err := s.Delete(ctx, u, eventstore.Any); err != nil {
			t.Fatal(err)
		}
		if res, err := keys.Forget(ctx, u); err != nil || res.Version != 0 {
			t.Fatalf("forget of a deleted stream: %+v %v", res, err)
		}
	})
}

// Forget of a damaged stream (its last event removed by hand) still deletes
// the key, and says why projections could not be told.
func TestForgetDamagedStream(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		s, keys := newStore(t, tg, tg.Client)
		u := eventstore.Stream("user", "damaged")
		if _, err := s.Append(ctx, u, eventstore.NoStream, eventstore.NewEvent(Registered{Email: "d@example.com"}), eventstore.NewEvent(PlanChanged{Plan: "x"})); err != nil {
			t.Fatal(err)
		}
		_, key, _ := storetest.Locate(ctx, s, u)
		if err := tg.Client.Do(ctx, tg.Client.B().Xdel().Key(key).Id("2-0").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Forget(ctx, u); !errors.Is(err, eventstore.ErrStreamDamaged) {
			t.Fatalf("forget of a damaged stream: %v", err)
		}
		for ev, err := range s.Read(ctx, u, 0) {
			if err != nil {
				t.Fatal(err)
			}
			if r, ok := ev.Data.(Registered); ok && r.Email != "" {
				t.Fatalf("personal field readable after Forget: %+v", r)
			}
		}
	})
}
