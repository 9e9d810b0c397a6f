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

func streamsCmd(fs *flag.FlagSet) func(*app, []string) error {
	var cats listFlag
	fs.Var(&cats, "category", "only these categories (repeatable, comma-separated)")
	return func(a *app, args []string) error {
		if len(args) > 0 {
			return usagef("streams takes no arguments")
		}
		infos, err := a.categoryInfos(cats)
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
	keys, err := scanNamespace(a.ctx, a.client, store.Keys(), scanOptions{memory: true,
		keep: func(k keyInfo) bool { return byCat[k.Category] != nil }})
	if err != nil {
		return nil, err
	}
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
	if len(logs) > 0 {
		c := a.client
		cmds := make([]rueidis.Completed, len(logs))
		for i, k := range logs {
			cmds[i] = c.B().Xlen().Key(k.Key).Build()
		}
		for i, r := range c.DoMulti(a.ctx, cmds...) {
			n, err := r.AsInt64()
			if err != nil {
				return nil, fmt.Errorf("xlen %s: %w", logs[i].Key, err)
			}
			byCat[logs[i].Category].LogEntries += n
		}
	}
	return out, nil
}
