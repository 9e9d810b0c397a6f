// Package readmodel keeps CQRS read models in Redis, written by projections
// with guarded scripts and read through rueidis client-side caching: a
// [Model] has one hash per entity (fed by that entity's stream), a [Rollup]
// one entry per key of your choosing fed by any number of streams (per
// customer, per day).
//
// # Version guard
//
// Every entry remembers the version of the last event applied to it (hash
// field "_v"). [Model.Set], [Model.Patch] and [Model.Delete] run one
// single-key Lua script that skips the write when the event is not newer than
// the stored version. Projections deliver events at least once; the guard
// makes redelivery harmless (effectively once), including read-modify-write
// updates such as [IncrBy].
//
// One Model entry must be fed by one entity stream: the guard compares
// versions of one stream. Written from several (Patch(customerID,
// ev.Version, ...) for every order of a customer), it would skip most
// events as "not newer", silently. So an entry also remembers the stream
// that fed it (field "_s"), and a write from another stream is refused
// before the guard runs, with a [*MixedSourcesError] (errors.Is
// [ErrMixedSources]) that says to use a Rollup: the projection runner
// dead-letters the event, nothing is skipped unseen. The runner, Rebuild
// and Inline tell the writes which stream they apply ([WithSource];
// projection.Writes uses [Batch.Source]); writes outside a projection are
// not checked.
//
// # Rollups: many streams into one entry, exactly once
//
// A [Rollup] entry is fed by any number of streams, and each write names
// the event it applies: [Rollup.Apply](ctx, key, ev.Stream, ev.Version,
// ops...). Ops are counters and sums ([IncrBy], [IncrByFloat]), fields
// ([SetField], [DelField]), sets ([AddMember], [RemoveMember]) and "latest
// N" lists ([KeepLatest]).
//
// The guard keeps, beside the entry, one version per source stream: the
// last version of that stream applied to the entry (a hash "<key>:src" in
// the entry's hash slot, written by the same script as the entry). A write
// applies only when its version is above its source's, so a redelivered
// event is skipped. That is exact because a projection applies each
// stream's events in version order, one at a time (per-entity order,
// through crashes, lease moves, dead-letter retries and rebuilds): the
// events of a source applied to an entry are always a prefix of those
// routed to it, and one number per source says which prefix. It holds
// whatever the order across streams, and whatever subset of a stream's
// events reaches the entry.
//
// Why not the alternatives. A version per entry (Model) compares versions
// of different streams. A per-partition sub-entry guarded by the log
// position (summed on read) needs positions applied in log order, but
// inside a runner a partition's events are spread over workers by entity
// id, so only per-entity order holds (entity b's position 9 may be applied
// before entity a's position 7); a dead-letter retry applies an old
// position after newer ones; and projection.Rebuild replays entity streams
// one by one, in no log order at all. A set of applied event ids grows with
// events. One version per source stream is the smallest state that is exact
// under all of these, and Rebuild needs nothing special: it applies each
// stream's events in version order, into new keys (WithSchemaVersion), and
// the runner continues after its cut.
//
// What it costs, and what stays bounded. The entry itself (its fields, a
// set's members, a latest list's n members) is as big as its content, and
// it is all that Get, Members and Latest read and the client-side cache
// holds. The guard's hash grows with the number of distinct source
// streams, never with the number of events: an entry fed by a million
// events of a thousand orders keeps a thousand versions. Each costs about
// 21 bytes of Redis memory while the entry has up to 128 sources (a
// listpack, hash-max-listpack-entries), about 57 beyond (a hashtable),
// with stream names of ~14 characters (MEMORY USAGE; bench S3b prints it):
// a few percent of what each source stream itself costs the store (about
// 4 KB for a new stream). An entry fed by millions of streams (per day: every
// order of the day) keeps millions of versions; key such models so that
// each entry's sources are bounded (per day and shop, say). Rollup.Sources
// reports the count.
//
// Order across streams is not defined, so use ops whose result does not
// depend on it: integer counters and sums (IncrByFloat sums can differ in
// the last bits), sets whose members each one stream adds and removes, and
// KeepLatest, which keeps the n highest (score, member) and is the same
// whatever the order of the adds. SetField from several streams keeps the
// last applied, whichever that is. Give all of one event's ops for one
// entry in one Apply: a second Apply of the same event to the same entry
// is a redelivery to the guard (Batch.Apply refuses it). A Rollup has no
// Loader and no TTL: an entry is the fold of many streams, rebuilt with
// projection.Rebuild, never from one stream on demand; nor must Redis
// evict its keys (maxmemory-policy noeviction or volatile-*), since a lost
// guard hash would let redeliveries count again.
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
