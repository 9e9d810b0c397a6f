package retention

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// CompactReport is one entity stream compacted (or, on a dry run, that
// would be).
type CompactReport struct {
	Key     string
	Entries int64
	Before  int64 // bytes before
	After   int64 // bytes after (on a dry run: an estimate)
}

// ErrIdleTimeUnavailable: the server cannot tell how long a key has been
// idle (an LFU maxmemory-policy is set), so cold streams cannot be found.
var ErrIdleTimeUnavailable = errors.New("retention: OBJECT IDLETIME unavailable (LFU maxmemory-policy)")

// compactCategory compacts the category's entity streams idle long enough.
func (r *Retainer) compactCategory(ctx context.Context, p Policy, dryRun bool, rep *Report) error {
	idle := fmt.Sprint(int64(p.CompactIdle.Seconds()))
	maxEntries := fmt.Sprint(p.CompactMaxEntries)
	dry := "0"
	if dryRun {
		dry = "1"
	}
	return r.scanEntityStreams(ctx, p.Category, rep, func(keys []string, _ []eventstore.StreamID) error {
		// One round trip per scanned page: the scripts are pipelined.
		execs := make([]rueidis.LuaExec, len(keys))
		for i, key := range keys {
			execs[i] = rueidis.LuaExec{Keys: []string{key}, Args: []string{idle, maxEntries, dry}}
		}
		for i, res := range r.compact.ExecMulti(ctx, r.store.Client(), execs...) {
			if err := r.record(keys[i], res, rep); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanEntityStreams calls fn with each page of the category's entity
// streams, scanning every node of a cluster.
func (r *Retainer) scanEntityStreams(ctx context.Context, category string, rep *Report, fn func(keys []string, ids []eventstore.StreamID) error) error {
	c := r.store.Client()
	pattern := r.store.Keys().Namespace() + ":{" + category + ":*}:s:*"
	seen := map[string]bool{}
	for addr, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(r.opts.scanCount).Type("stream").Build()).AsScanEntry()
			if err != nil {
				if strings.Contains(err.Error(), "READONLY") || strings.Contains(err.Error(), "MOVED") {
					break // a replica or a node that owns nothing
				}
				return fmt.Errorf("retention: scan %s: %w", addr, err)
			}
			var keys []string
			var ids []eventstore.StreamID
			for _, key := range e.Elements {
				if seen[key] {
					continue // a replica listed the same key
				}
				seen[key] = true
				id, _, err := r.store.Keys().ParseStreamKey(key)
				if err != nil {
					rep.Skipped["not an entity stream"]++
					continue
				}
				keys, ids = append(keys, key), append(ids, id)
			}
			if len(keys) > 0 {
				if err := fn(keys, ids); err != nil {
					return err
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
}

// record adds one script result to the report.
func (r *Retainer) record(key string, resp rueidis.RedisResult, rep *Report) error {
	res, err := resp.AsIntSlice()
	if err != nil {
		if strings.Contains(err.Error(), "LFU") {
			return ErrIdleTimeUnavailable
		}
		return fmt.Errorf("retention: compact %s: %w", key, err)
	}
	if len(res) != 4 {
		return fmt.Errorf("retention: compact %s: bad reply %v", key, res)
	}
	switch res[0] {
	case 1:
		rep.Compacted = append(rep.Compacted, CompactReport{Key: key, Before: res[1], After: res[2], Entries: res[3]})
	case 0:
		// deleted since the scan
	case -1:
		rep.Skipped["not idle long enough"]++
	case -2:
		rep.Skipped["too many entries"]++
	case -3:
		rep.Skipped["already compact"]++
	}
	return nil
}
