package main

import (
	"flag"
	"fmt"

	"github.com/redis/rueidis"
)

type categoryInfo struct {
	Category   string `json:"category"`
	Partitions int    `json:"partitions"`
	Entities   int64  `json:"entities"`
	LogEntries int64  `json:"log_entries"`
	Snapshots  int64  `json:"snapshots"`
	// MemoryBytes sums MEMORY USAGE of every key in the category's hash
	// tags: entity streams, partition logs, snapshots, projection keys.
	MemoryBytes int64            `json:"memory_bytes"`
	Memory      map[string]int64 `json:"memory_by_kind"`
}

// streamsCmd is `streamfold streams`.
type streamsCmd struct {
	categories listFlag
}

func (c *streamsCmd) register(fs *flag.FlagSet) {
	fs.Var(&c.categories, "category", "only these categories (repeatable, comma-separated)")
}

func (c *streamsCmd) run(a *app, args []string) error {
	if len(args) > 0 {
		return usagef("streams takes no arguments")
	}
	infos, err := a.categoryInfos(c.categories)
	if err != nil {
		return err
	}
	t := &table{header: []string{"CATEGORY", "PARTITIONS", "ENTITIES", "LOG ENTRIES", "SNAPSHOTS", "MEMORY"}}
	for _, ci := range infos {
		t.add(ci.Category, ci.Partitions, ci.Entities, ci.LogEntries, ci.Snapshots, bytesHuman(ci.MemoryBytes))
	}
	var notes []string
	if len(infos) == 0 {
		notes = append(notes, fmt.Sprintf("namespace %q has no categories (wrong --namespace?)", a.g.namespace))
	}
	return a.emit(map[string]any{"namespace": a.g.namespace, "categories": infos}, t, notes...)
}

// categoryInfos scans the namespace once (every node) and sums per category.
func (a *app) categoryInfos(want []string) ([]*categoryInfo, error) {
	cats, err := a.categories(want)
	if err != nil {
		return nil, err
	}
	store := a.store
	byCat := map[string]*categoryInfo{}
	var out []*categoryInfo
	for _, c := range cats {
		n, err := store.Partitions(a.ctx, c)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", c, err)
		}
		ci := &categoryInfo{Category: c, Partitions: n, Memory: map[string]int64{}}
		byCat[c] = ci
		out = append(out, ci)
	}
	kc, err := a.classifier(cats)
	if err != nil {
		return nil, err
	}
	keys, err := scanNamespace(a.ctx, a.client, kc, scanOptions{memory: true,
		keep: func(k keyInfo) bool { return byCat[k.Category] != nil }})
	if err != nil {
		return nil, err
	}
	if err := a.countLogEntries(byCat, countKeys(byCat, keys)); err != nil {
		return nil, err
	}
	return out, nil
}

// countKeys adds keys to their categories' counts and memory, and returns
// the partition logs among them.
func countKeys(byCat map[string]*categoryInfo, keys []keyInfo) []keyInfo {
	var logs []keyInfo
	for _, k := range keys {
		ci := byCat[k.Category]
		if k.Bytes > 0 {
			ci.MemoryBytes += k.Bytes
			ci.Memory[k.Kind] += k.Bytes
		}
		switch k.Kind {
		case kindStream:
			ci.Entities++
		case kindSnapshot:
			ci.Snapshots++
		case kindLog:
			logs = append(logs, k)
		}
	}
	return logs
}

// countLogEntries adds the length of each partition log to its category.
func (a *app) countLogEntries(byCat map[string]*categoryInfo, logs []keyInfo) error {
	lens, err := a.streamLengths(logs)
	if err != nil {
		return err
	}
	for i, n := range lens {
		byCat[logs[i].Category].LogEntries += n
	}
	return nil
}

// streamLengths returns the XLEN of each stream key, pipelined.
func (a *app) streamLengths(keys []keyInfo) ([]int64, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	c := a.client
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = c.B().Xlen().Key(k.Key).Build()
	}
	lens := make([]int64, len(keys))
	for i, r := range c.DoMulti(a.ctx, cmds...) {
		n, err := r.AsInt64()
		if err != nil {
			return nil, fmt.Errorf("xlen %s: %w", keys[i].Key, err)
		}
		lens[i] = n
	}
	return lens, nil
}
