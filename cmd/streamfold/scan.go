package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/clusterscan"
)

// Key kinds, as laid out by eventstore/keys.go, projection/keys.go and
// readmodel (<ns>:rm:<name>:v<schema>:<id>, <ns>:rm:<name>:active). The CLI
// only reads keys it finds with SCAN and classifies them here; it never
// writes a key it built itself (dlq, trim and compact go through the
// libraries). Keep this in step with those files.
const (
	kindStream    = "streams"
	kindLog       = "logs"
	kindSnapshot  = "snapshots"
	kindProj      = "projection"
	kindReadModel = "readmodels"
	kindMeta      = "meta"
	kindOther     = "other"
)

// keyInfo is one key of the namespace found by a scan.
type keyInfo struct {
	Key       string
	Kind      string
	Category  string // for keys inside a {category:partition} tag
	Partition int
	Stream    eventstore.StreamID // for entity streams
	// Read models: the model name and schema version ("active" pointer: 0).
	Model  string
	Schema int
	Bytes  int64 // MEMORY USAGE (when asked for; -1 when the key vanished)
}

// classify tells what a key of namespace ks is.
func classify(ks eventstore.Keyspace, key string) keyInfo {
	ki := keyInfo{Key: key, Kind: kindOther}
	rest, ok := strings.CutPrefix(key, ks.Namespace()+":")
	if !ok {
		return ki
	}
	if strings.HasPrefix(rest, "{") {
		tag, tail, ok := strings.Cut(rest[1:], "}:")
		if !ok {
			return ki
		}
		cat, ps, ok := strings.Cut(tag, ":")
		p, err := strconv.Atoi(ps)
		if !ok || err != nil {
			return ki
		}
		ki.Category, ki.Partition = cat, p
		switch {
		case tail == "log":
			ki.Kind = kindLog
		case strings.HasPrefix(tail, "s:"):
			if sid, _, err := ks.ParseStreamKey(key); err == nil {
				ki.Kind, ki.Stream = kindStream, sid
			}
		case strings.HasPrefix(tail, "snap:"):
			ki.Kind = kindSnapshot
		case strings.HasPrefix(tail, "proj:"):
			ki.Kind = kindProj
		}
		return ki
	}
	switch {
	case rest == "categories" || strings.HasPrefix(rest, "cat:"):
		ki.Kind = kindMeta
	case strings.HasPrefix(rest, "proj:"):
		ki.Kind = kindProj
	case strings.HasPrefix(rest, "rm:"):
		name, tail, ok := strings.Cut(rest[3:], ":")
		if !ok {
			return ki
		}
		ki.Kind, ki.Model = kindReadModel, name
		if vs, _, ok := strings.Cut(tail, ":"); ok && strings.HasPrefix(vs, "v") {
			ki.Schema, _ = strconv.Atoi(vs[1:])
		}
	}
	return ki
}

// scanOptions narrow a scan.
type scanOptions struct {
	match  string // SCAN MATCH pattern (default: the whole namespace)
	typ    string // SCAN TYPE
	memory bool   // also ask MEMORY USAGE of every key
	keep   func(keyInfo) bool
}

// scanNamespace scans every node (all masters of a cluster) for the keys of
// the namespace and classifies them; with memory it pipelines MEMORY USAGE
// per scanned page.
func scanNamespace(ctx context.Context, c rueidis.Client, ks eventstore.Keyspace, o scanOptions) ([]keyInfo, error) {
	if o.match == "" {
		o.match = ks.Namespace() + ":*"
	}
	var out []keyInfo
	err := clusterscan.Keys(ctx, c, clusterscan.Options{Match: o.match, Type: o.typ}, func(node rueidis.Client, keys []string) error {
		var page []keyInfo
		for _, key := range keys {
			ki := classify(ks, key)
			if o.keep != nil && !o.keep(ki) {
				continue
			}
			page = append(page, ki)
		}
		if o.memory && len(page) > 0 {
			cmds := make(rueidis.Commands, len(page))
			for i := range page {
				cmds[i] = node.B().MemoryUsage().Key(page[i].Key).Build()
			}
			for i, r := range node.DoMulti(ctx, cmds...) {
				n, err := r.AsInt64()
				if rueidis.IsRedisNil(err) {
					n = -1 // deleted since the scan
				} else if err != nil {
					return fmt.Errorf("memory usage %s: %w", page[i].Key, err)
				}
				page[i].Bytes = n
			}
		}
		out = append(out, page...)
		return nil
	})
	return out, err
}
