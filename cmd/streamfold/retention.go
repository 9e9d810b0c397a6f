package main

import (
	"flag"
	"fmt"
	"sort"
	"time"

	"github.com/streamfold/streamfold/retention"
)

// applyRetention applies policy to each of cats (none: every category) once
// (dry: reports only).
func (a *app) applyRetention(cats []string, dry bool, policy func(category string) retention.Policy) (retention.Report, error) {
	all, err := a.categories(cats)
	if err != nil {
		return retention.Report{}, err
	}
	var ps []retention.Policy
	for _, c := range all {
		ps = append(ps, policy(c))
	}
	r, err := retention.New(a.store, ps, retention.WithLogger(a.logger()))
	if err != nil {
		return retention.Report{}, err
	}
	return r.Apply(a.ctx, dry)
}

// trimCmd is `streamfold trim`.
type trimCmd struct {
	categories listFlag
	maxLen     int64
	maxAge     time.Duration
	force, dry bool
}

func (c *trimCmd) register(fs *flag.FlagSet) {
	fs.Var(&c.categories, "category", "categories to trim (repeatable, comma-separated; default: all)")
	fs.Int64Var(&c.maxLen, "max-len", 0, "keep about the newest N entries of each partition log")
	fs.DurationVar(&c.maxAge, "max-age", 0, "drop partition-log entries older than this")
	fs.BoolVar(&c.force, "force", false, "trim past entries a consumer group still needs (they are lost to it)")
	fs.BoolVar(&c.dry, "dry-run", false, "report what would be trimmed, change nothing")
}

func (c *trimCmd) run(a *app, args []string) error {
	if len(args) > 0 {
		return usagef("trim takes no arguments")
	}
	if c.maxLen <= 0 && c.maxAge <= 0 {
		return usagef("give --max-len and/or --max-age")
	}
	rep, err := a.applyRetention(c.categories, c.dry, func(cat string) retention.Policy {
		return retention.Policy{Category: cat, LogMaxLen: c.maxLen, LogMaxAge: c.maxAge, ForceLogTrim: c.force}
	})
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
	if c.dry {
		verb = "would trim (dry run)"
	}
	return a.emit(rep, t, fmt.Sprintf("%s %d log entries, freeing %s", verb, trimmed, bytesHuman(rep.BytesFreed())))
}

// compactCmd is `streamfold compact`.
type compactCmd struct {
	categories listFlag
	idle       time.Duration
	maxEntries int
	dry        bool
}

func (c *compactCmd) register(fs *flag.FlagSet) {
	fs.Var(&c.categories, "category", "categories to compact (repeatable, comma-separated; default: all)")
	fs.DurationVar(&c.idle, "idle", 0, "compact entity streams idle at least this long (required, ≥ 1s)")
	fs.IntVar(&c.maxEntries, "max-entries", 100, "skip streams with more entries")
	fs.BoolVar(&c.dry, "dry-run", false, "report what would be compacted, change nothing")
}

func (c *compactCmd) run(a *app, args []string) error {
	if len(args) > 0 {
		return usagef("compact takes no arguments")
	}
	if c.idle < time.Second {
		return usagef("give --idle (at least 1s): how long a stream must have been untouched")
	}
	if c.maxEntries <= 0 {
		return usagef("--max-entries must be > 0")
	}
	rep, err := a.applyRetention(c.categories, c.dry, func(cat string) retention.Policy {
		return retention.Policy{Category: cat, CompactIdle: c.idle, CompactMaxEntries: c.maxEntries}
	})
	if err != nil {
		return err
	}
	t := &table{header: []string{"KEY", "ENTRIES", "BEFORE", "AFTER"}}
	for _, cp := range rep.Compacted {
		t.add(cp.Key, cp.Entries, bytesHuman(cp.Before), bytesHuman(cp.After))
	}
	verb := "compacted"
	if c.dry {
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
