package projection_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// A runner whose heartbeat fails while its lease scripts still run (here an
// ACL that denies the members key; in the wild a half-closed client whose
// reads fail) takes no partition: counting itself alone, it used to take
// them all and re-acquire its own leases as they lapsed, so a live instance
// could never take them over.
func TestNoPartitionsWithoutHeartbeat(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ns := tg.Namespace
		s := newStore(t, tg.Client, ns, 4)
		m := newModel(t, tg.Client, ns, "hb")
		user := newACLUser(t, ctx, tg, "hb", "~"+ns+":{*", "~"+ns+":cat*", "~"+ns+":categories", "~"+ns+":rm:*", "+@all")
		rc := user.client(t)
		rs := newStore(t, rc, ns, 4)
		logs := newLogRecorder(t)
		mk := func(st *eventstore.Store, id string, l *slog.Logger) *projection.Runner {
			r, err := projection.NewRunner(st, projection.Projection{Name: "hb", Categories: []string{category}, Handler: counting(m)},
				projection.WithInstanceID(id), projection.WithLeaseTTL(300*time.Millisecond), projection.WithBlock(50*time.Millisecond), projection.WithLogger(l))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		deaf := mk(rs, "deaf", slog.New(logs))
		defer runRunner(t, deaf)()
		failures := func() int {
			n := 0
			for _, lv := range []slog.Level{slog.LevelWarn, slog.LevelDebug} {
				for msg, c := range logs.byLevel(lv) {
					if strings.Contains(msg, "heartbeat failed") {
						n += c
					}
				}
			}
			return n
		}
		await(t, ctx, "three failed heartbeats", func() bool { return failures() >= 3 })
		if held := deaf.Held(); len(held) != 0 {
			t.Fatalf("a runner whose heartbeat fails holds %v", held)
		}
		live := mk(s, "live", slogDiscard())
		defer runRunner(t, live)()
		await(t, ctx, "the live runner holding every partition", func() bool { return len(live.Held()) == 4 })
		if held := deaf.Held(); len(held) != 0 {
			t.Fatalf("a runner whose heartbeat fails holds %v", held)
		}
	})
}
