package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/snapshot"
	"pgregory.net/rapid"
)

// checkAll compares the store with the model. The cheap checks (Info,
// streams, snapshots, loads, logs) run after every step; read models only
// for entities touched since their last check, the privacy scan only after
// something changed with a forgotten entity about. final runs everything.
func (h *harness) checkAll(rt *rapid.T, final bool) {
	rt.Helper()
	ctx, cancel := ctxT()
	defer cancel()
	for _, e := range h.ents {
		h.checkInfo(ctx, rt, e)
		h.checkStream(ctx, rt, e)
		h.checkSnapshot(ctx, rt, e)
		h.checkLoad(ctx, rt, e, h.repoSnap, true)
		h.checkLoad(ctx, rt, e, h.repoPlain, false)
	}
	for p := range partitions {
		h.checkLog(ctx, rt, p)
	}
	rmChecked := false
	for x, e := range h.ents {
		if final || h.rmDirty[x] {
			h.checkReadModel(ctx, rt, e)
			delete(h.rmDirty, x)
			rmChecked = true
		}
	}
	if rmChecked {
		h.checkRollup(ctx, rt)
	}
	if final || h.privacyDirty {
		h.checkPrivacy(ctx, rt)
		h.privacyDirty = false
	}
}

func (h *harness) checkInfo(ctx context.Context, rt *rapid.T, e *entity) {
	got, err := h.es.Info(ctx, e.stream)
	if want := e.info(); err != nil || got != want {
		rt.Fatalf("Info(%s) = %+v, %v; the model says %+v", e.id, got, err, want)
	}
}

// checkStream: the entity stream holds exactly the model's stored events
// (ids, versions, payloads; personal fields empty once forgotten).
func (h *harness) checkStream(ctx context.Context, rt *rapid.T, e *entity) {
	want := e.storedEvents()
	var got []eventstore.RecordedEvent
	for ev, err := range h.es.Read(ctx, e.stream, 0) {
		if errors.Is(err, eventstore.ErrStreamNotFound) && len(want) == 0 {
			break
		}
		if err != nil {
			rt.Fatalf("Read(%s): %v after %d events; the model has %d stored", e.id, err, len(got), len(want))
		}
		got = append(got, ev)
	}
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			rt.Fatalf("Read(%s): v%d (%s) is missing: the stream has %d events, the model %d", e.id, want[i].version, want[i].id, len(got), len(want))
		case i >= len(want):
			rt.Fatalf("Read(%s): v%d (%s) is in the stream, not in the model (%d stored)", e.id, got[i].Version, got[i].ID, len(want))
		}
		g, w := got[i], want[i]
		wd := w.data()
		if g.Version != w.version || g.ID != w.id || g.Data != wd {
			rt.Fatalf("Read(%s) event %d: v%d %s %+v; the model says v%d %s %+v", e.id, i, g.Version, g.ID, g.Data, w.version, w.id, wd)
		}
	}
}

func (h *harness) checkSnapshot(ctx context.Context, rt *rapid.T, e *entity) {
	sn, err := h.snaps.Get(ctx, e.stream)
	if e.snap == nil {
		if !errors.Is(err, snapshot.ErrNotFound) {
			rt.Fatalf("snapshot of %s: v%d schema %d err %v; the model has none", e.id, sn.Version, sn.SchemaVersion, err)
		}
		return
	}
	if err != nil || sn.Version != e.snap.version || sn.SchemaVersion != e.snap.schema {
		rt.Fatalf("snapshot of %s: v%d schema %d err %v; the model has v%d schema %d", e.id, sn.Version, sn.SchemaVersion, err, e.snap.version, e.snap.schema)
	}
}

// checkLoad: Repository.Load is the model's fold at the model's version, or
// ErrHistoryGap where the model predicts a gap.
func (h *harness) checkLoad(ctx context.Context, rt *rapid.T, e *entity, repo *aggregate.Repository[Account], withSnaps bool) {
	a, err := repo.Load(ctx, e.id)
	what := fmt.Sprintf("Load(%s) snapshots=%v", e.id, withSnaps)
	want := e.load(withSnaps)
	if want.gap {
		if !errors.Is(err, aggregate.ErrHistoryGap) {
			desc := "nil"
			if a != nil {
				desc = fmt.Sprintf("v%d %+v", a.Version(), a.State())
			}
			rt.Fatalf("%s = %s, err %v; the model expects aggregate.ErrHistoryGap (info %+v, snapshot %+v, fold v%d %+v)", what, desc, err, e.info(), e.snap, e.version, e.folds())
		}
		return
	}
	if err != nil {
		rt.Fatalf("%s: %v; the model expects v%d %+v (info %+v, snapshot %+v)", what, err, want.version, want.states, e.info(), e.snap)
	}
	if a.IsNew() != !e.live || a.Version() != want.version || !slices.Contains(want.states, a.State()) {
		rt.Fatalf("%s = v%d %+v IsNew=%v; the model expects v%d %+v IsNew=%v (info %+v, snapshot %+v)", what, a.Version(), a.State(), a.IsNew(), want.version, want.states, !e.live, e.info(), e.snap)
	}
}

type logKey struct {
	id      string
	version uint64
}

// checkLog: every entry of a partition log is an acknowledged event (or
// marker) of the model, once, at its position, in version order per entity;
// nothing acknowledged is missing except a prefix removed by trimming.
func (h *harness) checkLog(ctx context.Context, rt *rapid.T, p int) {
	want := map[logKey]*event{}
	for _, e := range h.ents {
		if e.partition != p {
			continue
		}
		for _, ev := range e.history {
			want[logKey{e.id, ev.version}] = ev
		}
	}
	seen := map[logKey]bool{}
	lastV := map[string]uint64{}
	var first *eventstore.Position
	for ev, err := range h.es.ReadLog(ctx, category, p, eventstore.Position{}) {
		if err != nil {
			rt.Fatalf("ReadLog(%d): %v", p, err)
		}
		if h.forged[ev.Position] {
			continue
		}
		k := logKey{ev.Stream.ID, ev.Version}
		w, ok := want[k]
		if !ok {
			rt.Fatalf("log %d: entry %s %s v%d (%s) at %s was never acknowledged (a failed append wrote it?)", p, ev.Type, ev.Stream, ev.Version, ev.ID, ev.Position)
		}
		if seen[k] {
			rt.Fatalf("log %d: %s v%d twice (second at %s)", p, ev.Stream, ev.Version, ev.Position)
		}
		seen[k] = true
		if w.pos != ev.Position || (w.deleted != (ev.Type == eventstore.DeletedType)) || (!w.deleted && w.id != ev.ID) {
			rt.Fatalf("log %d: %s v%d is %s %s at %s; the model says deleted=%v %s at %s", p, ev.Stream, ev.Version, ev.Type, ev.ID, ev.Position, w.deleted, w.id, w.pos)
		}
		if ev.Version <= lastV[ev.Stream.ID] {
			rt.Fatalf("log %d: %s v%d after v%d", p, ev.Stream, ev.Version, lastV[ev.Stream.ID])
		}
		lastV[ev.Stream.ID] = ev.Version
		if first == nil {
			pos := ev.Position
			first = &pos
		}
	}
	for k, w := range want {
		if seen[k] {
			continue
		}
		trimmed := h.logTrimmed && (first == nil || w.pos.Compare(*first) < 0)
		if !trimmed {
			rt.Fatalf("log %d: acknowledged %s v%d (%s at %s) is missing (trimmed: %v, first entry %v)", p, k.id, k.version, w.id, w.pos, h.logTrimmed, first)
		}
	}
}

// checkReadModel waits until the runner has applied the entity's last
// append (or delete), then reads its entry through the Loader.
func (h *harness) checkReadModel(ctx context.Context, rt *rapid.T, e *entity) {
	if e.hasLast {
		if err := h.runner.r.WaitFor(ctx, e.last); err != nil {
			rt.Fatalf("WaitFor(%s v%d) on %s-v%d: %v", e.id, e.last.Version, rmName, h.rmVersion, err)
		}
	}
	got, err := h.model.GetFresh(ctx, e.id)
	what := fmt.Sprintf("read model %s-v%d of %s", rmName, h.rmVersion, e.id)
	if !e.live {
		if !errors.Is(err, readmodel.ErrNotFound) {
			rt.Fatalf("%s = %+v err %v; the entity is not live (deleted at v%d), want not found", what, got, err, e.deletedAt)
		}
		return
	}
	load := e.load(true)
	if err != nil {
		if load.gap && errors.Is(err, aggregate.ErrHistoryGap) {
			return // the entry expired and cannot be rebuilt: loud, not wrong
		}
		rt.Fatalf("%s: %v; the model's fold is v%d %+v", what, err, e.version, e.folds())
	}
	match := false
	for _, f := range e.folds() {
		if got.Fields["balance"] == strconv.FormatInt(f.Balance, 10) && got.Fields["count"] == strconv.Itoa(f.Count) {
			match = true
		}
	}
	// The Loader may have rebuilt the entry: then it is at the load's
	// version; a Rebuild folds what the stream holds: after an operator's
	// XDEL of the tail, up to the last stored event.
	rebuilt := e.anyXdel() && got.Version == e.lastKept()
	if (got.Version != e.version && got.Version != load.version && !rebuilt) || !match {
		rt.Fatalf("%s = v%d %v; the model's fold is v%d %+v", what, got.Version, got.Fields, e.version, e.folds())
	}
}

// checkPrivacy: no marker of a forgotten event is readable in the clear in
// any key of the namespace on any node, nor in any archive file.
func (h *harness) checkPrivacy(ctx context.Context, rt *rapid.T) {
	var markers []string
	for _, e := range h.ents {
		markers = append(markers, e.forgottenNotes()...)
	}
	if len(markers) == 0 {
		return
	}
	for _, n := range h.nodes {
		for _, k := range scanKeys(ctx, n, h.ns) {
			dump, err := readKey(ctx, n, k)
			if err != nil {
				rt.Fatalf("read %s: %v", k, err)
			}
			for _, m := range markers {
				if strings.Contains(dump, m) {
					rt.Fatalf("after Forget, personal field %q is readable in the clear in key %s", m, k)
				}
			}
		}
	}
	err := filepath.WalkDir(h.archiveDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range markers {
			if strings.Contains(string(b), m) {
				return fmt.Errorf("after Forget, personal field %q is readable in the clear in archive file %s", m, path)
			}
		}
		return nil
	})
	if err != nil {
		rt.Fatal(err)
	}
}

// scanKeys lists the keys of namespace ns on one node.
func scanKeys(ctx context.Context, c rueidis.Client, ns string) []string {
	var out []string
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(ns+":*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return out
		}
		out = append(out, e.Elements...)
		if e.Cursor == 0 {
			return out
		}
		cursor = e.Cursor
	}
}

// readKey returns everything a key holds, by type (DUMP may compress).
func readKey(ctx context.Context, c rueidis.Client, k string) (string, error) {
	typ, err := c.Do(ctx, c.B().Type().Key(k).Build()).ToString()
	if err != nil {
		return "", err
	}
	var cmd rueidis.Completed
	switch typ {
	case "none":
		return "", nil
	case "string":
		cmd = c.B().Get().Key(k).Build()
	case "hash":
		cmd = c.B().Hgetall().Key(k).Build()
	case "stream":
		cmd = c.B().Xrange().Key(k).Start("-").End("+").Build()
	case "set":
		cmd = c.B().Smembers().Key(k).Build()
	case "zset":
		cmd = c.B().Zrange().Key(k).Min("0").Max("-1").Withscores().Build()
	case "list":
		cmd = c.B().Lrange().Key(k).Start(0).Stop(-1).Build()
	default:
		return "", fmt.Errorf("key %s of type %s", k, typ)
	}
	v, err := c.Do(ctx, cmd).ToAny()
	if rueidis.IsRedisNil(err) {
		return "", nil
	}
	return fmt.Sprint(v), err
}
