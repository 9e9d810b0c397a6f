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
// # Truncation
//
// A stream is truncated only behind a snapshot that loads would use (of the
// policy's SnapshotSchema) and that belongs to the stream's current life:
// Start <= snapshot version <= Version (eventstore.Store.Info). A snapshot
// written late, after a Delete, belongs to an earlier life; trusting its
// version would trim events no snapshot covers. Such a stream is left whole,
// counted in Report.Skipped["stale snapshot"] and logged as a warning. A
// damaged stream (its last events removed by hand, see
// eventstore.ErrStreamDamaged) is left whole too (Skipped["damaged stream"]):
// trimmed to empty, its damage could no longer be told.
// Streams whose snapshot is missing, corrupt or of another schema are left
// whole too, each counted under its own reason.
//
// A truncated stream can still be loaded (from its snapshot) but no longer
// folded from its first event: projection.Rebuild refuses it with
// projection.ErrIncompleteHistory. Do not truncate the categories a
// projection is rebuilt from, or replay the archive first.
//
// # Archives and shredding
//
// The Archiver gets the events as stored (see [Archiver]): with a codec
// that seals fields per entity (package shred), Data is decoded without the
// entity's key, so personal fields stay sealed in the archive. An archive
// file cannot be rewritten by Forget; holding only sealed values, it needs
// no rewriting: once the entity's key is deleted they are unreadable there
// as everywhere else. To restore, decode [ArchivedEvent].Data with the
// store's codec and the event's stream, or write it back as it is.
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
// compacted append returns zero positions. Everything the append script
// reads is kept: the stream's last id (its version, also when no entry is
// left or its tail was removed by hand), entries-added and max-deleted id;
// where a life started is kept apart (the stream tombstone), untouched.
package retention
