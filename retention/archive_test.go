package retention_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
	"github.com/streamfold/streamfold/retention/shred"
	"github.com/streamfold/streamfold/snapshot"
)

type Registered struct {
	Email string `shred:"personal"`
	Plan  string
}

type Renamed struct {
	Name string `shred:"personal"`
}

// TestArchiveKeepsPersonalFieldsSealed: truncation archives what is stored,
// so an archive never holds a personal field in the clear — neither when it
// is written nor after the entity is forgotten (an archive file cannot be
// rewritten by Forget). While the key lives, the archived bytes decode
// with the shred codec to the full event; after Forget, to the event
// without its personal fields, exactly as the store reads it.
func TestArchiveKeepsPersonalFieldsSealed(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		reg := eventstore.NewRegistry()
		eventstore.MustRegister[Registered](reg, "registered")
		eventstore.MustRegister[Renamed](reg, "renamed")
		plain, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg))
		if err != nil {
			t.Fatal(err)
		}
		keys := shred.NewKeys(plain)
		codec := shred.NewCodec(eventstore.Msgpack{}, keys)
		day := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
		s, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg),
			eventstore.WithCodec(codec), eventstore.WithClock(func() time.Time { return day }))
		if err != nil {
			t.Fatal(err)
		}
		snaps := newSnapshots(t, s)

		alice := eventstore.Stream("user", "alice")
		secrets := []string{"alice@example.com", "Alice Liddell", "Alice L."}
		if _, err := s.Append(ctx, alice, eventstore.NoStream,
			eventstore.NewEvent(Registered{Email: secrets[0], Plan: "free"}),
			eventstore.NewEvent(Renamed{Name: secrets[1]}),
			eventstore.NewEvent(Renamed{Name: secrets[2]}),
			eventstore.NewEvent(Registered{Plan: "pro"})); err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Save(ctx, alice, snapshot.Snapshot{Version: 4, SchemaVersion: 1, Time: day, State: []byte{0x90}}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		r, err := retention.New(s, []retention.Policy{{Category: "user", Truncate: true, TruncateKeep: 1}},
			retention.WithSnapshots(snaps), retention.WithArchiver(&retention.FileArchiver{Dir: dir}))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Apply(ctx, false)
		if err != nil || len(rep.Truncated) != 1 || rep.Truncated[0].Trimmed != 3 {
			t.Fatalf("truncate: %+v %v", rep, err)
		}
		path := filepath.Join(dir, "user", "2026-05-06.jsonl")
		inTheClear := func(when string) {
			t.Helper()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range secrets {
				// In the clear, or base64 at the start of a field (data_json and data hold JSON strings and base64).
				for _, form := range [][]byte{[]byte(secret), []byte(base64.StdEncoding.EncodeToString([]byte(secret)))} {
					if bytes.Contains(b, form) {
						t.Fatalf("%s: the archive holds %q in the clear:\n%s", when, secret, b)
					}
				}
			}
			arch, err := retention.ReadArchive(path)
			if err != nil || len(arch) != 3 {
				t.Fatalf("archive: %d lines, %v", len(arch), err)
			}
			for _, a := range arch {
				var v any
				if err := codec.Unmarshal(a.Data, &v); err != nil {
					t.Fatal(err)
				}
				if dump := fmt.Sprint(v); strings.Contains(dump, "Alice") || strings.Contains(dump, "alice@") {
					t.Fatalf("%s: archived payload v%d decodes to personal data without the key: %s", when, a.Version, dump)
				}
			}
		}
		inTheClear("before Forget")

		// What a restore needs: the stored bytes, decoded with the store's
		// codec and the entity's stream.
		restore := func() []any {
			t.Helper()
			arch, err := retention.ReadArchive(path)
			if err != nil {
				t.Fatal(err)
			}
			var out []any
			for _, a := range arch {
				if a.Stream != alice.String() || a.Type == "" || len(a.DataJSON) == 0 {
					t.Fatalf("archived line %+v", a)
				}
				v, ok := reg.New(a.Type)
				if !ok {
					t.Fatalf("type %q", a.Type)
				}
				if err := codec.UnmarshalStream(ctx, alice, a.Data, v); err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			}
			return out
		}
		got := restore()
		if got[0].(*Registered).Email != secrets[0] || got[0].(*Registered).Plan != "free" || got[1].(*Renamed).Name != secrets[1] || got[2].(*Renamed).Name != secrets[2] {
			t.Fatalf("restored while the key lives: %+v %+v %+v", got[0], got[1], got[2])
		}

		if _, err := keys.Forget(ctx, alice); err != nil {
			t.Fatal(err)
		}
		inTheClear("after Forget")
		got = restore()
		if *got[0].(*Registered) != (Registered{Plan: "free"}) || got[1].(*Renamed).Name != "" || got[2].(*Renamed).Name != "" {
			t.Fatalf("restored after Forget: %+v %+v %+v", got[0], got[1], got[2])
		}
	})
}
