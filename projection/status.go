package projection

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// PartitionStatus is a projection's progress on one partition.
//
// Delivered, Pending, Lag and Checkpoint come from the projection's own
// bookkeeping (kept by the runner's fenced read, in the same atomic step),
// not from Redis' consumer-group "lag", which Redis 6.2 does not have and
// which Redis 7.0 gets wrong for good after an AOF rewrite and a crash
// (XREADGROUP is persisted as XCLAIM, which leaves the group's entries-read
// behind). They are exact on every supported server and after crashes.
type PartitionStatus struct {
	Category  string
	Partition int
	// Owner is the instance holding the lease ("" when free); Token its
	// fencing token.
	Owner string
	Token int64
	// Delivered is the last log entry handed to the projection (the
	// consumer group's last-delivered-id).
	Delivered eventstore.Position
	// Checkpoint is the last log entry that it and every entry before it
	// have been applied or dead-lettered: Delivered when nothing is
	// pending, else the entry before the oldest pending one. A projection
	// restarted from scratch would resume after it.
	Checkpoint eventstore.Position
	// Pending counts entries delivered but not acked yet (being applied,
	// or waiting for a runner after a crash).
	Pending int64
	// Lag counts log entries appended after Delivered: not handed to the
	// projection yet. Entries still to be applied are Lag + Pending. -1
	// only when the bookkeeping was lost (an upgrade, an operator's SETID)
	// while more than 100,000 entries wait; it is counted again as the
	// projection catches up.
	Lag int64
	// DeadLetters counts letters; Parked the entities waiting behind them.
	DeadLetters int64
	Parked      int64
}

// exactLag: lags up to this many entries are counted entry by entry (see
// lua/status.lua); longer ones come from the bookkeeping.
const exactLag = 500

// Status returns the progress of projection name on every partition of
// categories. It works from any process, with or without a runner, and
// never creates a category (an unknown one yields an
// *eventstore.UnknownCategoryError listing the known ones). Partitions
// where the projection has no consumer group yet are reported with zero
// positions and Lag -1.
func Status(ctx context.Context, store *eventstore.Store, name string, categories ...string) ([]PartitionStatus, error) {
	k := keys{ks: store.Keys(), name: name}
	c := store.Client()
	status := newScript(statusLua, 0)
	var out []PartitionStatus
	for _, cat := range categories {
		n, err := store.Partitions(ctx, cat)
		if err != nil {
			return nil, err
		}
		execs := make([]rueidis.LuaExec, n)
		cmds := make(rueidis.Commands, 0, 3*n)
		for p := range n {
			pk := k.part(cat, p)
			execs[p] = statusRequest{log: pk.log, ckpt: pk.ckpt, trimmed: k.ks.LogTrimmed(cat, p), group: name, exact: exactLag}.exec()
			cmds = append(cmds, c.B().Get().Key(pk.lease).Build(), c.B().Xlen().Key(pk.dlq).Build(), c.B().Hlen().Key(pk.parked).Build())
		}
		prog := status.ExecMulti(ctx, c, execs...)
		rest := c.DoMulti(ctx, cmds...)
		for p := range n {
			st := PartitionStatus{Category: cat, Partition: p, Lag: lagUnknown}
			if err := st.progress(prog[p]); err != nil {
				return nil, fmt.Errorf("projection %s: status of %s/%d: %w", name, cat, p, err)
			}
			if v, err := rest[3*p].ToString(); err == nil {
				tok, owner, _ := strings.Cut(v, ":")
				st.Owner = owner
				fmt.Sscan(tok, &st.Token)
			}
			st.DeadLetters, _ = rest[3*p+1].AsInt64()
			st.Parked, _ = rest[3*p+2].AsInt64()
			out = append(out, st)
		}
	}
	return out, nil
}

// progress fills st from status.lua's reply.
func (st *PartitionStatus) progress(res rueidis.RedisResult) error {
	r, err := parseStatus(res)
	if err != nil || !r.found {
		return err // no log or no group yet, when nil
	}
	if st.Delivered, err = eventstore.ParsePosition(r.delivered); err == nil {
		st.Checkpoint, err = eventstore.ParsePosition(r.checkpoint)
	}
	if err != nil {
		return fmt.Errorf("status script: %w", err)
	}
	st.Pending, st.Lag = r.pending, r.lag
	return nil
}

// Status returns the runner's projection progress (see Status).
func (r *Runner) Status(ctx context.Context) ([]PartitionStatus, error) {
	return Status(ctx, r.store, r.proj.Name, r.proj.Categories...)
}
