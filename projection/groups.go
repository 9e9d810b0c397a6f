package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/groupinfo"
	"github.com/streamfold/streamfold/internal/rediserr"
)

// Consumer groups: a projection is one consumer group, named after it, on
// every partition log of its categories.

// setup resolves the partitions of the categories and creates the consumer
// groups, BUSYGROUP-safe.
func (r *Runner) setup(ctx context.Context) ([]unit, error) {
	var units []unit
	start := "0"
	if r.opts.start == FromNow {
		start = "$"
	}
	for _, cat := range r.proj.Categories {
		n, err := r.partitions(ctx, cat)
		if err != nil {
			return nil, fmt.Errorf("projection %s: %w", r.proj.Name, err)
		}
		cmds := make(rueidis.Commands, 0, n)
		for p := range n {
			cmds = append(cmds, r.client.B().XgroupCreate().Key(r.keys.ks.Log(cat, p)).Group(r.proj.Name).Id(start).Mkstream().Build())
			units = append(units, unit{cat, p})
		}
		for i, res := range r.client.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil && !rediserr.IsBusyGroup(err) {
				return nil, fmt.Errorf("projection %s: create group on %s/%d: %w", r.proj.Name, cat, i, err)
			}
		}
	}
	return units, nil
}

// partitions returns the partition count of cat, waiting for the category
// to be created when it does not exist yet: a projection deployed before the
// first event of its category (a fresh system) starts when that event comes,
// and the runner never creates a category itself (only an append or
// Store.CreateCategory does). Waiting logs one WARN naming the categories
// that exist, so that a mistyped one is seen. It returns ctx's error when
// ctx ends first.
func (r *Runner) partitions(ctx context.Context, cat string) (int, error) {
	warned := false
	wait := 50 * time.Millisecond
	for {
		n, err := r.store.Partitions(ctx, cat)
		var uc *eventstore.UnknownCategoryError
		if !errors.As(err, &uc) {
			return n, err
		}
		if !warned {
			r.log.Warn("projection: waiting for its category to be created by a first append (or Store.CreateCategory); is the name right?",
				"category", cat, "known", uc.Known)
			warned = true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// consumerGroup is group name of a log, as XINFO GROUPS (res) reports it.
type consumerGroup struct {
	found     bool
	delivered eventstore.Position
	pending   int64
}

// findGroup finds group name in res, the reply of XINFO GROUPS; not found
// when the log does not exist.
func findGroup(res rueidis.RedisResult, name string) (consumerGroup, error) {
	var g consumerGroup
	groups, err := groupinfo.Parse(res)
	if err != nil {
		if rediserr.IsNoSuchKey(err) {
			return g, nil
		}
		return g, err
	}
	for _, gi := range groups {
		if gi.Name != name {
			continue
		}
		g.found = true
		g.delivered, _ = eventstore.ParsePosition(gi.LastDelivered)
		g.pending = gi.Pending
	}
	return g, nil
}
