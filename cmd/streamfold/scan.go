package main

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/clusterscan"
)

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
func scanNamespace(ctx context.Context, c rueidis.Client, kc *keyClassifier, o scanOptions) ([]keyInfo, error) {
	if o.match == "" {
		o.match = kc.ks.Key("*")
	}
	var out []keyInfo
	err := clusterscan.Keys(ctx, c, clusterscan.Options{Match: o.match, Type: o.typ}, func(node rueidis.Client, keys []string) error {
		var page []keyInfo
		for _, key := range keys {
			ki := kc.classify(key)
			if o.keep != nil && !o.keep(ki) {
				continue
			}
			page = append(page, ki)
		}
		if o.memory {
			if err := memoryUsage(ctx, node, page); err != nil {
				return err
			}
		}
		out = append(out, page...)
		return nil
	})
	return out, err
}

// memoryUsage fills in the Bytes of a page of keys, pipelined to the node
// that listed them.
func memoryUsage(ctx context.Context, node rueidis.Client, page []keyInfo) error {
	if len(page) == 0 {
		return nil
	}
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
	return nil
}
