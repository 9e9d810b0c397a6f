package retention

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/clusterscan"
	"github.com/streamfold/streamfold/internal/rediserr"
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
	args := compactArgs(p, dryRun)
	return r.scanEntityStreams(ctx, p.Category, rep, func(keys []string, _ []eventstore.StreamID) error {
		// One round trip per scanned page: the scripts are pipelined.
		execs := make([]rueidis.LuaExec, len(keys))
		for i, key := range keys {
			execs[i] = rueidis.LuaExec{Keys: []string{key}, Args: args}
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
	pattern := r.store.Keys().StreamPattern(category)
	var fnErr error
	err := clusterscan.Keys(ctx, r.store.Client(), clusterscan.Options{Match: pattern, Type: "stream", Count: r.opts.scanCount}, func(_ rueidis.Client, page []string) error {
		var keys []string
		var ids []eventstore.StreamID
		for _, key := range page {
			id, _, err := r.store.Keys().ParseStreamKey(key)
			if err != nil {
				rep.Skipped["not an entity stream"]++
				continue
			}
			keys, ids = append(keys, key), append(ids, id)
		}
		if len(keys) == 0 {
			return nil
		}
		fnErr = fn(keys, ids)
		return fnErr
	})
	if err != nil && err != fnErr {
		return fmt.Errorf("retention: %w", err)
	}
	return err
}

// record adds one script result to the report.
func (r *Retainer) record(key string, resp rueidis.RedisResult, rep *Report) error {
	res, err := resp.AsIntSlice()
	if err != nil {
		if rediserr.IsIdleTimeUnavailable(err) {
			return ErrIdleTimeUnavailable
		}
		return fmt.Errorf("retention: compact %s: %w", key, err)
	}
	c, err := parseCompactReply(res)
	if err != nil {
		return fmt.Errorf("retention: compact %s: %w", key, err)
	}
	switch c.status {
	case compactDone:
		rep.Compacted = append(rep.Compacted, CompactReport{Key: key, Before: c.before, After: c.after, Entries: c.entries})
	case compactNoStream:
		// deleted since the scan
	case compactNotIdle:
		rep.Skipped["not idle long enough"]++
	case compactTooLarge:
		rep.Skipped["too many entries"]++
	case compactAlreadyCompact:
		rep.Skipped["already compact"]++
	default:
		return fmt.Errorf("retention: compact %s: unknown status %d", key, c.status)
	}
	return nil
}
