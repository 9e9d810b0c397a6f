// Package readmodel keeps CQRS read models in Redis: one hash per entity,
// written by projections with version-guarded scripts and read through
// rueidis client-side caching.
//
// # Version guard
//
// Every entry remembers the version of the last event applied to it (hash
// field "_v"). [Model.Set], [Model.Patch] and [Model.Delete] run one
// single-key Lua script that skips the write when the event is not newer than
// the stored version. Projections deliver events at least once; the guard
// makes redelivery harmless (effectively once), including read-modify-write
// updates such as [IncrBy]. One entry must be fed by one entity stream: the
// guard compares versions of one stream.
//
// [Batch] queues many such writes (of many entities and models) and sends
// them as one script call per hash slot, all in one round trip; a
// projection's BatchHandler uses it to apply a whole read at once.
//
// Deletes leave a tombstone {_v, _del} (expiring after [WithTombstoneTTL])
// so that a redelivered older event cannot resurrect a deleted entry.
//
// # Query side
//
// [Model.Get] reads through rueidis client-side caching (RESP3 client
// tracking): a hot entry is served from process memory and Redis
// invalidates it when any writer changes the key. With caching off
// (ClientOption.DisableCache, RESP2 or managed Redis without tracking)
// rueidis sends the same command to the server; nothing else changes.
// On a miss, an optional [Loader] (cache-aside: for example a fold of the
// entity's events) fills the key, version-guarded, with the model's TTL.
// [Model.Stats] counts hits, misses and loads.
//
// # Versioned keys, blue/green
//
// The read model's schema version is part of its keys
// (<ns>:rm:<name>:v<schema>:<id>). A new schema is built into new keys while
// the old version keeps serving (see projection.Rebuild), then [Versions.Switch]
// flips the active version that [Versions.Get] follows.
package readmodel
