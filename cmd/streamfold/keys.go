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
// kind; ParseStreamKey reads an entity stream's), never spelled out here. Two prefixes belong to packages that
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

// partitionPrefixes are the key prefixes of one category partition, from
// the Keyspace.
type partitionPrefixes struct {
	partitionRef
	tagged     string // every key in the partition's hash tag
	log        string // the partition log (the whole key)
	streams    string // entity streams
	snapshots  string
	projection string
}

// keyClassifier tells what a key of one namespace is. Keys in a partition's
// hash tag are recognised by the tag (Keyspace.Tag) of each partition of the
// known categories, so a key whose tag names no known category partition is
// "other".
type keyClassifier struct {
	ks   eventstore.Keyspace
	tags map[string]*partitionPrefixes // by Keyspace.Tag
	// Namespace-wide prefixes.
	namespace, categories, category, projection, readModel string
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
	kc := &keyClassifier{ks: ks, tags: map[string]*partitionPrefixes{},
		namespace: ks.Key(""), categories: ks.Categories(), category: ks.Category(""),
		projection: ks.Key(projectionKeys), readModel: ks.Key(readModelKeys)}
	for c, n := range partitions {
		empty := eventstore.Stream(c, "") // a builder given no id returns its kind's prefix
		for p := range n {
			kc.tags[ks.Tag(c, p)] = &partitionPrefixes{
				partitionRef: partitionRef{c, p},
				tagged:       ks.PartitionKey(c, p, ""),
				log:          ks.Log(c, p),
				streams:      ks.Stream(empty, p),
				snapshots:    ks.Snapshot(empty, p),
				projection:   ks.PartitionKey(c, p, projectionKeys),
			}
		}
	}
	return kc
}

// classify tells what key is.
func (kc *keyClassifier) classify(key string) keyInfo {
	ki := keyInfo{Key: key, Kind: kindOther}
	if !strings.HasPrefix(key, kc.namespace) {
		return ki
	}
	// A read model's key may hold a hash tag too (readmodel.Rollup's
	// <ns>:rm:<name>:v<schema>:{<id>}): a tag names a partition only where
	// Keyspace puts a partition's tag.
	if pp, ok := kc.tags[hashTag(key)]; ok && strings.HasPrefix(key, pp.tagged) {
		kc.classifyTagged(&ki, pp)
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

// classifyTagged classifies a key in the hash tag of partition pp.
func (kc *keyClassifier) classifyTagged(ki *keyInfo, pp *partitionPrefixes) {
	ki.Category, ki.Partition = pp.category, pp.partition
	switch {
	case ki.Key == pp.log:
		ki.Kind = kindLog
	case strings.HasPrefix(ki.Key, pp.streams):
		if sid, _, err := kc.ks.ParseStreamKey(ki.Key); err == nil {
			ki.Kind, ki.Stream = kindStream, sid
		}
	case strings.HasPrefix(ki.Key, pp.snapshots):
		ki.Kind = kindSnapshot
	case strings.HasPrefix(ki.Key, pp.projection):
		ki.Kind = kindProj
	}
}

// classifyNamespaceWide classifies a key outside every partition's tag.
func (kc *keyClassifier) classifyNamespaceWide(ki *keyInfo) {
	switch {
	case ki.Key == kc.categories || strings.HasPrefix(ki.Key, kc.category):
		ki.Kind = kindMeta
	case strings.HasPrefix(ki.Key, kc.projection):
		ki.Kind = kindProj
	case strings.HasPrefix(ki.Key, kc.readModel):
		if model, schema, ok := parseReadModelKey(strings.TrimPrefix(ki.Key, kc.readModel)); ok {
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
