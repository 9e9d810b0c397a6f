package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/rediserr"
	"github.com/streamfold/streamfold/internal/refusal"
)

// healQuiet is how long after a heal's WARN further heals (the other
// partitions noticing the same loss) stay at INFO.
const healQuiet = 10 * time.Second

// Causes of a heal.
const (
	causeLeaseLost = "lease state lost"
	causeNoGroup   = "consumer group missing"
)

// checkCounts compares the partition counts of the runner's categories with
// the stored ones (the store rereads a cached count once a second). The
// store writes a lost count again on its next append; a different count
// written meanwhile by another process routes entities to partitions this
// runner does not read, and an entity's later events to another log than
// its earlier ones: Run stops with a *StateLostError. Other errors (Redis
// unreachable, the category not written again yet) are returned: the next
// round tries again.
func (r *Runner) checkCounts(ctx context.Context) error {
	r.mu.Lock()
	units := r.units
	r.mu.Unlock()
	counts := map[string]int{}
	for _, u := range units {
		counts[u.cat]++
	}
	for cat, want := range counts {
		n, err := r.store.Partitions(ctx, cat)
		if err != nil {
			return err
		}
		if n != want {
			err := &StateLostError{Projection: r.proj.Name, Reason: fmt.Sprintf(
				"category %s now has %d partitions in Redis, the runner reads %d: restart the runner", cat, n, want)}
			r.fail(err)
			return err
		}
	}
	return nil
}

// heal recreates what Redis lost of the projection's state: every missing
// consumer group of the runner's partitions is created again at the start
// of its log (whatever WithStart says: what the lost group had delivered is
// unknown, so everything still in the log is delivered again, and the
// version guard skips what was applied); leases are re-acquired by
// maintain as for free partitions. Called when a partition finds its group
// missing (NOGROUP) or its lease state gone with the fence counter (lost).
// One WARN per loss (healQuiet). A refusal by Redis other than a
// connection failure, or a category whose partition count no longer
// matches the runner's, cannot be healed here: Run stops with a
// *StateLostError.
func (r *Runner) heal(ctx context.Context, why string) error {
	r.healMu.Lock()
	defer r.healMu.Unlock()
	if err := r.checkCounts(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	units := r.units
	r.mu.Unlock()
	cmds := make(rueidis.Commands, len(units))
	for i, u := range units {
		cmds[i] = r.client.B().XgroupCreate().Key(r.keys.ks.Log(u.cat, u.p)).Group(r.proj.Name).Id("0").Mkstream().Build()
	}
	created := 0
	for i, res := range r.client.DoMulti(ctx, cmds...) {
		err := res.Error()
		switch {
		case err == nil:
			created++
		case rediserr.IsBusyGroup(err):
		default:
			if _, redisErr := rueidis.IsRedisErr(err); !redisErr || refusal.Is(err) {
				return err // not reached Redis, or refused for now: the next heal tries again
			}
			err := &StateLostError{Projection: r.proj.Name, Reason: fmt.Sprintf("recreate group on %s/%d", units[i].cat, units[i].p), Err: err}
			r.fail(err)
			return err
		}
	}
	if created == 0 && why != causeLeaseLost {
		return nil // recreated meanwhile, by another partition or instance
	}
	if time.Since(r.healWarned) > max(healQuiet, 2*r.opts.leaseTTL) {
		r.healWarned = time.Now()
		r.log.Warn("projection: Redis lost this projection's state (emptied, or restarted without persistence?); recreated it: consumer groups from the start of their logs, leases taken again",
			"cause", why, "groups_recreated", created, "partitions", len(units))
	} else {
		r.log.Info("projection: recreated lost state", "cause", why, "groups_recreated", created)
	}
	return nil
}
