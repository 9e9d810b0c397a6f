package retention

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/groupinfo"
)

// LogReport is what a pass did to one partition log.
type LogReport struct {
	Category  string
	Partition int
	Key       string
	Length    int64               // entries before the pass
	Threshold eventstore.Position // entries before it were (or would be) trimmed
	// LimitedBy names the consumer group that held the trim back, if one did.
	LimitedBy  string
	Trimmed    int64 // entries removed (on a dry run: entries below the threshold, at most the trim limit)
	BytesFreed int64
}

// trimLogs trims every partition log of p's category.
func (r *Retainer) trimLogs(ctx context.Context, p Policy, dryRun bool) ([]LogReport, error) {
	n, err := r.store.Partitions(ctx, p.Category)
	if err != nil {
		return nil, err
	}
	var out []LogReport
	for part := range n {
		rep, err := r.trimLog(ctx, p, part, dryRun)
		if err != nil {
			return out, fmt.Errorf("retention: log %s/%d: %w", p.Category, part, err)
		}
		if rep.Length > 0 {
			out = append(out, rep)
		}
	}
	return out, nil
}

// trimLog trims one partition log to p's bounds, no further than its
// consumer groups allow unless p.ForceLogTrim.
func (r *Retainer) trimLog(ctx context.Context, p Policy, part int, dryRun bool) (LogReport, error) {
	c := r.store.Client()
	key := r.store.Keys().Log(p.Category, part)
	rep := LogReport{Category: p.Category, Partition: part, Key: key}
	length, err := c.Do(ctx, c.B().Xlen().Key(key).Build()).AsInt64()
	if err != nil || length == 0 {
		return rep, err
	}
	rep.Length = length
	threshold, err := r.policyThreshold(ctx, p, key, length)
	if err != nil || threshold.IsZero() {
		return rep, err
	}
	if !p.ForceLogTrim {
		needed, group, err := oldestNeeded(ctx, c, key)
		if err != nil {
			return rep, err
		}
		if group != "" && needed.Compare(threshold) < 0 {
			threshold, rep.LimitedBy = needed, group
		}
	}
	rep.Threshold = threshold
	if threshold.IsZero() {
		return rep, nil
	}
	if dryRun {
		return rep, r.countBelow(ctx, &rep)
	}
	return rep, r.trimBelow(ctx, &rep)
}

// policyThreshold returns the position below which p's bounds drop the
// log's entries: the later of the length and the age bound; zero when
// neither drops any.
func (r *Retainer) policyThreshold(ctx context.Context, p Policy, key string, length int64) (eventstore.Position, error) {
	var threshold eventstore.Position
	if p.LogMaxLen > 0 && length > p.LogMaxLen {
		// The id of the last entry to drop, read with at most trimLimit
		// entries: one pass never removes more than that anyway.
		last, ok, err := r.lastOfFirst(ctx, key, min(length-p.LogMaxLen, r.opts.trimLimit))
		if err != nil {
			return threshold, err
		}
		if ok {
			threshold = after(last)
		}
	}
	if p.LogMaxAge > 0 {
		cut := r.opts.clock().Add(-p.LogMaxAge).UnixMilli()
		if cut > 0 {
			if byAge := (eventstore.Position{Ms: uint64(cut)}); byAge.Compare(threshold) > 0 {
				threshold = byAge
			}
		}
	}
	return threshold, nil
}

// lastOfFirst returns the position of the k-th entry of the log (the last
// one when it has fewer); ok is false when it is empty.
func (r *Retainer) lastOfFirst(ctx context.Context, key string, k int64) (pos eventstore.Position, ok bool, err error) {
	c := r.store.Client()
	entries, err := c.Do(ctx, c.B().Xrange().Key(key).Start("-").End("+").Count(k).Build()).ToArray()
	if err != nil || len(entries) == 0 {
		return pos, false, err
	}
	last, err := entries[len(entries)-1].AsXRangeSlice()
	if err != nil {
		return pos, false, err
	}
	pos, err = eventstore.ParsePosition(last.ID)
	return pos, err == nil, err
}

// countBelow is a dry run's trim: it counts the entries below rep.Threshold
// (at most the trim limit) and estimates the bytes they hold.
func (r *Retainer) countBelow(ctx context.Context, rep *LogReport) error {
	c := r.store.Client()
	before, err := c.Do(ctx, c.B().MemoryUsage().Key(rep.Key).Samples(0).Build()).AsInt64()
	if err != nil {
		return err
	}
	below, err := c.Do(ctx, c.B().Xrange().Key(rep.Key).Start("-").End("("+rep.Threshold.String()).Count(r.opts.trimLimit).Build()).ToArray()
	if err != nil {
		return err
	}
	rep.Trimmed = int64(len(below))
	rep.BytesFreed = before * rep.Trimmed / rep.Length
	return nil
}

// trimBelow trims the entries below rep.Threshold (at most the trim limit)
// and measures the bytes freed.
func (r *Retainer) trimBelow(ctx context.Context, rep *LogReport) error {
	c := r.store.Client()
	before, err := c.Do(ctx, c.B().MemoryUsage().Key(rep.Key).Samples(0).Build()).AsInt64()
	if err != nil {
		return err
	}
	// Approximate trimming removes whole nodes only: cheap, and never more
	// than asked; trimlog.lua also counts it (projection lag before 7.0).
	rep.Trimmed, err = r.trimmer.Exec(ctx, c, trimLogKeys(r.store.Keys(), rep.Category, rep.Partition), trimLogArgs(rep.Threshold, r.opts.trimLimit)).AsInt64()
	if err != nil {
		return err
	}
	if rep.Trimmed > 0 {
		after, err := c.Do(ctx, c.B().MemoryUsage().Key(rep.Key).Samples(0).Build()).AsInt64()
		if err == nil {
			rep.BytesFreed = before - after
		}
	}
	return nil
}

// after returns the smallest position greater than p.
func after(p eventstore.Position) eventstore.Position {
	if p.Seq == ^uint64(0) {
		return eventstore.Position{Ms: p.Ms + 1}
	}
	return eventstore.Position{Ms: p.Ms, Seq: p.Seq + 1}
}

// oldestNeeded returns the oldest position any consumer group of the log
// still needs: its oldest pending entry, or the entry after the last one
// delivered to it. group names the group that needs it ("" when the log has
// no groups: nothing is needed).
func oldestNeeded(ctx context.Context, c rueidis.Client, key string) (eventstore.Position, string, error) {
	groups, err := groupinfo.Parse(c.Do(ctx, c.B().XinfoGroups().Key(key).Build()))
	if err != nil {
		return eventstore.Position{}, "", err
	}
	var oldest eventstore.Position
	var holder string
	for _, g := range groups {
		name, last := g.Name, g.LastDelivered
		lastPos, err := eventstore.ParsePosition(last)
		if err != nil {
			return oldest, "", fmt.Errorf("group %s: last-delivered-id %q: %w", name, last, err)
		}
		need := after(lastPos)
		if g.Pending > 0 {
			sum, err := c.Do(ctx, c.B().Xpending().Key(key).Group(name).Build()).ToArray()
			if err != nil {
				return oldest, "", err
			}
			if len(sum) >= 2 {
				if minID, err := sum[1].ToString(); err == nil {
					if p, err := eventstore.ParsePosition(minID); err == nil && p.Compare(need) < 0 {
						need = p
					}
				}
			}
		}
		if holder == "" || need.Compare(oldest) < 0 {
			oldest, holder = need, name
		}
	}
	return oldest, holder, nil
}
