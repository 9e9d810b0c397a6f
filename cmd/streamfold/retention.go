package main

import (
	"flag"
	"fmt"
	"log/slog"
	"sort"

	"github.com/streamfold/streamfold/retention"
)

func (a *app) retainer(cats []string, policy func(c string) retention.Policy) (*retention.Retainer, error) {
	all, err := a.categories(cats)
	if err != nil {
		return nil, err
	}
	var ps []retention.Policy
	for _, c := range all {
		ps = append(ps, policy(c))
	}
	return retention.New(a.store, ps,
		retention.WithLogger(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
}

func trimCmd(fs *flag.FlagSet) func(*app, []string) error {
	var cats listFlag
	fs.Var(&cats, "category", "categories to trim (repeatable, comma-separated; default: all)")
	maxLen := fs.Int64("max-len", 0, "keep about the newest N entries of each partition log")
	maxAge := fs.Duration("max-age", 0, "drop partition-log entries older than this")
	force := fs.Bool("force", false, "trim past entries a consumer group still needs (they are lost to it)")
	dry := fs.Bool("dry-run", false, "report what would be trimmed, change nothing")
	return func(a *app, args []string) error {
		if len(args) > 0 {
			return usagef("trim takes no arguments")
		}
		if *maxLen <= 0 && *maxAge <= 0 {
			return usagef("give --max-len and/or --max-age")
		}
		r, err := a.retainer(cats, func(c string) retention.Policy {
			return retention.Policy{Category: c, LogMaxLen: *maxLen, LogMaxAge: *maxAge, ForceLogTrim: *force}
		})
		if err != nil {
			return err
		}
		rep, err := r.Apply(a.ctx, *dry)
		if err != nil {
			return err
		}
		t := &table{header: []string{"CATEGORY", "PARTITION", "LENGTH", "THRESHOLD", "TRIMMED", "FREED", "HELD BACK BY"}}
		var trimmed int64
		for _, l := range rep.Logs {
			trimmed += l.Trimmed
			t.add(l.Category, l.Partition, l.Length, l.Threshold, l.Trimmed, bytesHuman(l.BytesFreed), orDash(l.LimitedBy))
		}
		verb := "trimmed"
		if *dry {
			verb = "would trim (dry run)"
		}
		return a.emit(rep, t, fmt.Sprintf("%s %d log entries, freeing %s", verb, trimmed, bytesHuman(rep.BytesFreed())))
	}
}

func compactCmd(fs *flag.FlagSet) func(*app, []string) error {
	var cats listFlag
	fs.Var(&cats, "category", "categories to compact (repeatable, comma-separated; default: all)")
	idle := fs.Duration("idle", 0, "compact entity streams idle at least this long (required, ≥ 1s)")
	maxEntries := fs.Int("max-entries", 100, "skip streams with more entries")
	dry := fs.Bool("dry-run", false, "report what would be compacted, change nothing")
	return func(a *app, args []string) error {
		if len(args) > 0 {
			return usagef("compact takes no arguments")
		}
		if *idle < 1e9 {
			return usagef("give --idle (at least 1s): how long a stream must have been untouched")
		}
		if *maxEntries <= 0 {
			return usagef("--max-entries must be > 0")
		}
		r, err := a.retainer(cats, func(c string) retention.Policy {
			return retention.Policy{Category: c, CompactIdle: *idle, CompactMaxEntries: *maxEntries}
		})
		if err != nil {
			return err
		}
		rep, err := r.Apply(a.ctx, *dry)
		if err != nil {
			return err
		}
		t := &table{header: []string{"KEY", "ENTRIES", "BEFORE", "AFTER"}}
		for _, c := range rep.Compacted {
			t.add(c.Key, c.Entries, bytesHuman(c.Before), bytesHuman(c.After))
		}
		verb := "compacted"
		if *dry {
			verb = "would compact (dry run)"
		}
		notes := []string{fmt.Sprintf("%s %d streams, freeing %s", verb, len(rep.Compacted), bytesHuman(rep.BytesFreed()))}
		var reasons []string
		for k := range rep.Skipped {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		for _, k := range reasons {
			notes = append(notes, fmt.Sprintf("skipped %d: %s", rep.Skipped[k], k))
		}
		return a.emit(rep, t, notes...)
	}
}
