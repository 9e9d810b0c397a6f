package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
	"pgregory.net/rapid"
)

// The rollup: one entry ("all") fed by every entity's stream, the
// many-to-one read model people build beside the per-entity one. Per
// entity it keeps the balance and the count of the current life
// ("bal:<id>", "n:<id>") and membership of the set "live"; a $deleted
// marker removes all three. Its exactly-once guard (one version per source
// stream) must hold through everything the sequence does: redeliveries,
// runner restarts, dead letters of forged entries, deletes and re-creation
// (versions go on), Forget, rebuilds into a new schema version.
const (
	rollupName  = "tot"
	rollupEntry = "all"
	rollupSet   = "live"
)

func (h *harness) newRollup(v int) (*readmodel.Rollup, error) {
	return readmodel.NewRollup(h.tg.Client, h.ns, rollupName, readmodel.WithSchemaVersion(v))
}

// rollupWrites adds ev's writes of the rollup to b; none for a $forgotten
// marker (nothing to count; the source's version moves on with the next).
func rollupWrites(b *readmodel.Batch, ru *readmodel.Rollup, ev eventstore.RecordedEvent, amount int64) error {
	id := ev.Stream.ID
	switch ev.Type {
	case eventstore.ForgottenType:
		return nil
	case eventstore.DeletedType:
		return b.Apply(ru, rollupEntry, ev.Stream, ev.Version,
			readmodel.DelField("bal:"+id), readmodel.DelField("n:"+id), readmodel.RemoveMember(rollupSet, id))
	}
	return b.Apply(ru, rollupEntry, ev.Stream, ev.Version,
		readmodel.IncrBy("bal:"+id, amount), readmodel.IncrBy("n:"+id, 1), readmodel.AddMember(rollupSet, id))
}

// checkRollup waits until the runner has applied every entity's last
// append or delete, then compares the rollup's entry with the model: a live
// entity's balance and count equal one of its folds (with or without the
// events an operator removed by hand), a deleted one has neither and is no
// member of the set.
func (h *harness) checkRollup(ctx context.Context, rt *rapid.T) {
	for _, e := range h.ents {
		if e.hasLast {
			if err := h.runner.r.WaitFor(ctx, e.last); err != nil {
				rt.Fatalf("WaitFor(%s v%d) on %s-v%d: %v", e.id, e.last.Version, rmName, h.rmVersion, err)
			}
		}
	}
	got, err := h.rollup.GetFresh(ctx, rollupEntry)
	if errors.Is(err, readmodel.ErrNotFound) {
		got, err = readmodel.RollupEntry{Fields: map[string]string{}}, nil
	}
	if err != nil {
		rt.Fatalf("rollup %s-v%d %s: %v", rollupName, h.rmVersion, rollupEntry, err)
	}
	members, err := h.rollup.MembersFresh(ctx, rollupEntry, rollupSet)
	if err != nil {
		rt.Fatalf("rollup %s-v%d %s set %s: %v", rollupName, h.rmVersion, rollupEntry, rollupSet, err)
	}
	for _, e := range h.ents {
		bal, hasBal := got.Fields["bal:"+e.id]
		n, hasN := got.Fields["n:"+e.id]
		member := slices.Contains(members, e.id)
		if !e.live {
			if hasBal || hasN || member {
				rt.Fatalf("rollup %s-v%d: %s is not live (deleted at v%d) but has bal %q n %q member %v", rollupName, h.rmVersion, e.id, e.deletedAt, bal, n, member)
			}
			continue
		}
		match := false
		for _, f := range e.folds() {
			if bal == strconv.FormatInt(f.Balance, 10) && n == strconv.Itoa(f.Count) {
				match = true
			}
		}
		if !match || !member {
			rt.Fatalf("rollup %s-v%d: %s has bal %q n %q member %v; the model's fold is v%d %+v", rollupName, h.rmVersion, e.id, bal, n, member, e.version, e.folds())
		}
	}
}
