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
// Deletes leave a tombstone {_v, _del}, kept forever by default (see
// [WithTombstoneTTL]), so that a redelivered older event cannot resurrect a
// deleted entry. After a delete at version D, a re-created entity's events
// continue at D+1 (the event store's versions continue across lives), and
// its first patch starts from an empty entry.
//
// # Missing entries
//
// A [Model.Patch] (or a [Batch] patch, or a [Typed.Update] step) needs the
// entry's earlier state. It starts from an empty entry only when that is the
// truth: the entry is missing and the event is version 1, or the entry is a
// tombstone at exactly the event's version minus one. An entry can also be
// missing because it expired ([WithTTL]), was evicted (maxmemory), deleted
// by hand, or its tombstone expired; a patch is then never applied to an
// empty entry (that would be a silently wrong state, e.g. a balance of 100
// where 400 is right):
//
//   - With a [Loader] the patch is deferred: not applied, counted in
//     [Stats].Deferred, and the key becomes a marker of the event's version
//     ({_v, _stale}, with the model's TTL). [Model.Get] treats the marker as
//     a miss and rebuilds the whole entry with the Loader. A Loader fill is
//     a [Model.Set]: one older than the marker is skipped (the load started
//     before the deferred event; Get loads again), one at the marker's
//     version or later replaces it. Later patches on a marker are deferred
//     too. So a load racing a projection never leaves an entry without an
//     event the projection has seen.
//   - Without a Loader the write is refused with an error matching
//     [ErrMissingEntry] (a [*MissingEntryError] naming model, id and
//     version), and nothing is written: rebuild the read model
//     (projection.Rebuild), or configure a Loader. [New] refuses WithTTL
//     without WithLoader, since every expiry would lead there.
//
// A handler that patches must therefore write for the entity's first event
// too (a Patch with no ops will do). [Model.Set] writes a whole state and
// always fills a missing entry.
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
// [Model.Stats] counts hits, misses and loads, and the writes applied,
// skipped (redeliveries) and deferred (missing entries).
//
// # Versioned keys, blue/green
//
// The read model's schema version is part of its keys
// (<ns>:rm:<name>:v<schema>:<id>). A new schema is built into new keys while
// the old version keeps serving (see projection.Rebuild), then [Versions.Switch]
// flips the active version that [Versions.Get] follows.
package readmodel
