// Package retention bounds what Streamfold keeps in Redis: it trims
// partition logs, compacts cold entity streams, and (with package snapshot)
// truncates entity streams behind their snapshots.
//
// The two kinds of stream are treated differently. Partition logs are
// transport: they may be trimmed (MAXLEN or MINID, approximate, with LIMIT)
// but never past the oldest entry a consumer group still needs — an entry
// pending in its PEL or not yet delivered to it — unless the policy forces
// it. Entity streams are the truth: they are only rewritten compactly
// (every event, id and version kept) or truncated behind a snapshot.
//
// Every action has a dry run that reports what it would do and the bytes it
// would free. A Retainer runs its policies once ([Retainer.Apply]) or on a
// schedule ([Retainer.Run]).
//
// # Why compaction
//
// A new stream's first node preallocates 4 KB, so an aggregate with three
// small events costs ~4.4 KB of Redis memory; rewritten compactly it costs
// ~0.8 KB. Compaction picks streams idle longer than a threshold (OBJECT
// IDLETIME, so it needs a maxmemory-policy other than LFU) and rewrites each
// in one script, so no append can interleave; appends afterwards work as
// before. Cold streams also drop the log positions stored beside each event
// (the logs were trimmed past them long ago): an idempotent replay of a
// compacted append returns zero positions.
package retention
