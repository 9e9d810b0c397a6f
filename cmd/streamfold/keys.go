package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/streamfold/streamfold/eventstore"
)

// Key kinds the CLI reports (JSON field values and table labels).
const (
	kindStream    = "streams"
	kindLog       = "logs"
	kindSnapshot  = "snapshots"
	kindProj      = "projection"
	kindReadModel = "readmodels"
	kindMeta      = "meta"
	kindOther     = "other"
)

// The CLI only reads keys it finds with SCAN and classifies them here; it
// never writes a key (dlq, trim and compact go through the libraries).
// eventstore/keys.go owns the layout: every shape below is asked of its
// Keyspace (a key builder called with an empty id gives the prefix of that
// kind), never spelled out here. Two prefixes belong to packages that
// export no key builder, and are named once:
const (
	// projectionKeys starts every key of projection/keys.go, in a
	// partition's hash tag and namespace-wide (<ns>:proj:<name>:members).
	projectionKeys = "proj:"
	// readModelKeys starts readmodel's keys: <ns>:rm:<name>:v<schema>:<id>
	// and the blue/green pointer <ns>:rm:<name>:active.
	readModelKeys = "rm:"
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

// partitionRef is one partition of a category.
type partitionRef struct {
	category  string
	partition int
}

// keyClassifier tells what a key of one namespace is. Keys in a partition's
// hash tag are recognised by the tag (Keyspace.Tag) of each partition of the
// known categories, so a key whose tag names no known category partition is
// "other".
type keyClassifier struct {
	ks   eventstore.Keyspace
	tags map[string]partitionRef // Keyspace.Tag -> partition
}

// classifier returns the key classifier that knows the partitions of cats
// (known categories: see app.categories).
func (a *app) classifier(cats []string) (*keyClassifier, error) {
	store, err := a.connect()
	if err != nil {
		return nil, err
	}
	partitions := map[string]int{}
	for _, c := range cats {
		n, err := store.Partitions(a.ctx, c)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", c, err)
		}
		partitions[c] = n
	}
	return newKeyClassifier(store.Keys(), partitions), nil
}

// newKeyClassifier returns the classifier of namespace ks whose categories
// have the given partition counts.
func newKeyClassifier(ks eventstore.Keyspace, partitions map[string]int) *keyClassifier {
	kc := &keyClassifier{ks: ks, tags: map[string]partitionRef{}}
	for c, n := range partitions {
		for p := range n {
			kc.tags[ks.Tag(c, p)] = partitionRef{c, p}
		}
	}
	return kc
}

// classify tells what key is.
func (kc *keyClassifier) classify(key string) keyInfo {
	ki := keyInfo{Key: key, Kind: kindOther}
	if !strings.HasPrefix(key, kc.ks.Key("")) {
		return ki
	}
	// A read model's key may hold a hash tag too (readmodel.Rollup's
	// <ns>:rm:<name>:v<schema>:{<id>}): only a tag where Keyspace puts a
	// partition's counts.
	if ref, ok := kc.tags[hashTag(key)]; ok && strings.HasPrefix(key, kc.ks.PartitionKey(ref.category, ref.partition, "")) {
		kc.classifyTagged(&ki, ref)
		return ki
	}
	kc.classifyNamespaceWide(&ki)
	return ki
}

// hashTag returns the part of key that Redis Cluster hashes when it has
// one, braces included: from the first '{' to the first '}' after it
// (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags).
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j < 0 {
		return ""
	}
	return key[i : i+j+2]
}

// classifyTagged classifies a key in the hash tag of partition ref.
func (kc *keyClassifier) classifyTagged(ki *keyInfo, ref partitionRef) {
	c, p := ref.category, ref.partition
	ki.Category, ki.Partition = c, p
	empty := eventstore.Stream(c, "")
	switch {
	case ki.Key == kc.ks.Log(c, p):
		ki.Kind = kindLog
	case strings.HasPrefix(ki.Key, kc.ks.Stream(empty, p)):
		if sid, _, err := kc.ks.ParseStreamKey(ki.Key); err == nil {
			ki.Kind, ki.Stream = kindStream, sid
		}
	case strings.HasPrefix(ki.Key, kc.ks.Snapshot(empty, p)):
		ki.Kind = kindSnapshot
	case strings.HasPrefix(ki.Key, kc.ks.PartitionKey(c, p, projectionKeys)):
		ki.Kind = kindProj
	}
}

// classifyNamespaceWide classifies a key outside every partition's tag.
func (kc *keyClassifier) classifyNamespaceWide(ki *keyInfo) {
	switch {
	case ki.Key == kc.ks.Categories() || strings.HasPrefix(ki.Key, kc.ks.Category("")):
		ki.Kind = kindMeta
	case strings.HasPrefix(ki.Key, kc.ks.Key(projectionKeys)):
		ki.Kind = kindProj
	case strings.HasPrefix(ki.Key, kc.ks.Key(readModelKeys)):
		if model, schema, ok := parseReadModelKey(strings.TrimPrefix(ki.Key, kc.ks.Key(readModelKeys))); ok {
			ki.Kind, ki.Model, ki.Schema = kindReadModel, model, schema
		}
	}
}

// parseReadModelKey reads "<name>:v<schema>:<id>" or "<name>:active" (schema
// 0), what follows readModelKeys in a read model's key.
func parseReadModelKey(rest string) (model string, schema int, ok bool) {
	name, tail, ok := strings.Cut(rest, ":")
	if !ok {
		return "", 0, false
	}
	if vs, _, ok := strings.Cut(tail, ":"); ok && strings.HasPrefix(vs, "v") {
		schema, _ = strconv.Atoi(vs[1:])
	}
	return name, schema, true
}
