// Package clusterscan lists keys on every node of a standalone server or a
// cluster. SCAN only sees the keys of the node it is sent to, so a cluster
// is scanned node by node; replicas (READONLY) and nodes that own no slot
// (MOVED) are skipped, and a key a replica lists too is reported once.
package clusterscan

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/rediserr"
)

// Options narrow a scan.
type Options struct {
	Match string // SCAN MATCH pattern; required
	Type  string // SCAN TYPE; "" for every type
	Count int64  // SCAN COUNT hint; 0 for 1000
}

// Keys calls fn with each page of keys found, with the node that listed
// them (to pipeline per-key commands to it). An error of fn stops the scan
// and is returned as is.
func Keys(ctx context.Context, c rueidis.Client, o Options, fn func(node rueidis.Client, keys []string) error) error {
	if o.Count == 0 {
		o.Count = 1000
	}
	seen := map[string]bool{}
	for addr, node := range c.Nodes() {
		var cursor uint64
		for {
			cmd := node.B().Scan().Cursor(cursor).Match(o.Match).Count(o.Count)
			var e rueidis.ScanEntry
			var err error
			if o.Type != "" {
				e, err = node.Do(ctx, cmd.Type(o.Type).Build()).AsScanEntry()
			} else {
				e, err = node.Do(ctx, cmd.Build()).AsScanEntry()
			}
			if err != nil {
				if rediserr.IsNotOwner(err) {
					break // a replica, or a node that owns nothing
				}
				return fmt.Errorf("scan %s: %w", addr, err)
			}
			page := make([]string, 0, len(e.Elements))
			for _, key := range e.Elements {
				if !seen[key] {
					seen[key] = true
					page = append(page, key)
				}
			}
			if len(page) > 0 {
				if err := fn(node, page); err != nil {
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
