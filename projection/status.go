package projection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

func asUnknown(err error, target **eventstore.UnknownEventTypeError) bool {
	return errors.As(err, target)
}

// PartitionStatus is a projection's progress on one partition.
type PartitionStatus struct {
	Category  string
	Partition int
	// Owner is the instance holding the lease ("" when free); Token its
	// fencing token.
	Owner string
	Token int64
	// Checkpoint is the group's last delivered entry. Every entry up to it
	// has been applied or dead-lettered, except Pending ones.
	Checkpoint eventstore.Position
	// Pending counts entries delivered but not acked yet.
	Pending int64
	// Lag counts log entries not delivered yet (-1: Redis cannot tell, for
	// example after entries were deleted from the middle of the log).
	Lag int64
	// DeadLetters counts letters; Parked the entities waiting behind them.
	DeadLetters int64
	Parked      int64
}

// Status returns the progress of projection name on every partition of
// categories. It works from any process, with or without a runner.
func Status(ctx context.Context, store *eventstore.Store, name string, categories ...string) ([]PartitionStatus, error) {
	k := keys{ks: store.Keys(), name: name}
	c := store.Client()
	var out []PartitionStatus
	for _, cat := range categories {
		n, err := store.Partitions(ctx, cat)
		if err != nil {
			return nil, err
		}
		for p := range n {
			pk := k.part(cat, p)
			res := c.DoMulti(ctx,
				c.B().XinfoGroups().Key(pk.log).Build(),
				c.B().Get().Key(pk.lease).Build(),
				c.B().Xlen().Key(pk.dlq).Build(),
				c.B().Hlen().Key(pk.parked).Build())
			st := PartitionStatus{Category: cat, Partition: p, Lag: -1}
			g, err := groupInfo(res[0], name)
			if err != nil {
				return nil, fmt.Errorf("projection %s: status of %s/%d: %w", name, cat, p, err)
			}
			st.Checkpoint, st.Pending, st.Lag = g.delivered, g.pending, g.lag
			if v, err := res[1].ToString(); err == nil {
				tok, owner, _ := strings.Cut(v, ":")
				st.Owner = owner
				fmt.Sscan(tok, &st.Token)
			}
			st.DeadLetters, _ = res[2].AsInt64()
			st.Parked, _ = res[3].AsInt64()
			out = append(out, st)
		}
	}
	return out, nil
}

// Status returns the runner's projection progress (see Status).
func (r *Runner) Status(ctx context.Context) ([]PartitionStatus, error) {
	return Status(ctx, r.store, r.proj.Name, r.proj.Categories...)
}

type group struct {
	found     bool
	delivered eventstore.Position
	pending   int64
	lag       int64
}

func groupInfo(res rueidis.RedisResult, name string) (group, error) {
	g := group{lag: -1}
	arr, err := res.ToArray()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return g, nil
		}
		return g, err
	}
	for i := range arr {
		m, err := arr[i].AsMap()
		if err != nil {
			return g, err
		}
		n := m["name"]
		if s, _ := n.ToString(); s != name {
			continue
		}
		g.found = true
		ld := m["last-delivered-id"]
		s, _ := ld.ToString()
		g.delivered, _ = eventstore.ParsePosition(s)
		pe := m["pending"]
		g.pending, _ = pe.AsInt64()
		if l, ok := m["lag"]; ok {
			if v, err := l.AsInt64(); err == nil {
				g.lag = v
			}
		}
	}
	return g, nil
}

// WaitFor returns when the runner's projection has applied res (every event
// of that append): at once if it already has. It returns a
// *DeadLetteredError when the append's entity is parked with a dead letter
// at or before res.Version, and ctx's error when ctx ends first. It asks
// Redis, so it works whichever instance holds the partition; acks made by
// this process wake it early.
//
// res must carry the log positions of the append (as Store.Append, Delete
// and Forget return it): a result without Positions, built by hand, is
// refused with ErrNotWaitable rather than taken as applied.
func (r *Runner) WaitFor(ctx context.Context, res eventstore.AppendResult) error {
	if len(res.Positions) == 0 {
		return fmt.Errorf("%w: the result for %s v%d has no Positions; pass the AppendResult that Store.Append (or Delete, Forget) returned, or set Positions to the event's log Position (RecordedEvent.Position)",
			ErrNotWaitable, res.Stream, res.Version)
	}
	if !r.follows(res.Stream.Category) {
		return invalid("projection %s does not follow category %s", r.proj.Name, res.Stream.Category)
	}
	k := r.keys.part(res.Stream.Category, res.Partition)
	pos := res.LastPosition()
	poll := 2 * time.Millisecond
	for {
		sig := r.ackSignal()
		done, err := r.applied(ctx, k, pos, res)
		if err != nil || done {
			return err
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-sig:
		case <-t.C:
			poll = min(2*poll, 100*time.Millisecond)
		}
		t.Stop()
	}
}

func (r *Runner) follows(cat string) bool {
	for _, c := range r.proj.Categories {
		if c == cat {
			return true
		}
	}
	return false
}

// applied: the group has delivered pos, nothing at or before pos is pending,
// and the entity has no dead letter at or before res.Version.
func (r *Runner) applied(ctx context.Context, k partKeys, pos eventstore.Position, res eventstore.AppendResult) (bool, error) {
	c := r.client
	out := c.DoMulti(ctx,
		c.B().XinfoGroups().Key(k.log).Build(),
		c.B().Xpending().Key(k.log).Group(r.proj.Name).Start("-").End(pos.String()).Count(1).Build(),
		c.B().Hexists().Key(k.parked).Field(res.Stream.ID).Build())
	g, err := groupInfo(out[0], r.proj.Name)
	if err != nil {
		return false, fmt.Errorf("projection %s: wait: %w", r.proj.Name, err)
	}
	if !g.found || g.delivered.Compare(pos) < 0 {
		return false, nil
	}
	pend, err := out[1].ToArray()
	if err != nil {
		return false, fmt.Errorf("projection %s: wait: %w", r.proj.Name, err)
	}
	if len(pend) > 0 {
		return false, nil
	}
	parked, err := out[2].AsBool()
	if err != nil {
		return false, fmt.Errorf("projection %s: wait: %w", r.proj.Name, err)
	}
	if !parked {
		return true, nil
	}
	letters, err := readLetters(ctx, c, r.store, r.proj.Name, res.Stream.Category, res.Partition, k.dlq)
	if err != nil {
		return false, err
	}
	for _, l := range letters {
		if l.Stream == res.Stream && l.Version <= res.Version {
			return true, &DeadLetteredError{Projection: r.proj.Name, Stream: res.Stream}
		}
	}
	return true, nil
}
