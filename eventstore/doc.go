// Package eventstore is Streamfold's event store on Redis Streams.
//
// Every entity has its own stream (the truth); every category (aggregate
// type) is split into a fixed number of partitions, each with a partition log
// (the transport projections consume). One Lua script writes each appended
// event to the entity stream and to its partition log atomically. Both keys
// share one hash tag, {<category>:<partition>}, so the same code runs on a
// standalone server and on Redis Cluster.
//
// # Versions
//
// An entity stream's entry ids are "<version>-0": the first event has version
// 1. Redis itself refuses a non-increasing id, a read after a snapshot at
// version v is XRANGE from "<v+1>-0", and trimming behind a snapshot with
// XTRIM MINID is exact. The version never comes from XLEN: a stream trimmed to
// empty still reports its last version (from the stream's last-generated-id),
// and so does one whose last events an operator removed by hand (XDEL). Such
// a stream is damaged: an append would leave versions missing for good, and
// no load could fold across them. Every append to it is refused with a
// [DamagedStreamError] (ErrStreamDamaged), whole, with nothing written (the
// script takes back the log entry it wrote before Redis refused the entity
// write; nobody can have read it); Delete still works, and the entity can
// start again after it. [Store.Info] tells such a stream apart
// (StreamInfo.Damaged). Loads fold what is stored, up to the last
// remaining event: telling a removed tail apart on every load would cost an
// XINFO (~8 µs of Redis) each.
//
// # Delete and the lives of a stream
//
// [Store.Delete] removes a stream and its snapshot, writes a $deleted marker
// at the next version to the partition log, and leaves a small stream
// tombstone (the marker's version, kept for good) beside the stream. The
// stream then reads as not found and only NoStream or Any may append to it.
// Such an append starts a new life whose versions continue after the marker
// (as with KurrentDB's soft delete): a stream deleted at version 10 (marker
// 11) starts again at 12. Nothing derived from the old life can shadow the
// new one: version-guarded read models apply the new events over the
// tombstone the marker left, and a snapshot of the old life (written late by
// a background writer) is refused and never loaded. [StreamInfo.Start] is the
// first version of the current life; a stream whose first stored event is
// after it was truncated (StreamInfo.Truncated).
//
// # Optimistic concurrency and idempotency
//
// [Store.Append] takes an [ExpectedVersion]: [Any], [NoStream], [StreamExists]
// or an exact version ([Exact]). When the check fails, the script compares the
// appended event ids with the events already stored after the expected
// version; if they are the same events, the append is a retry of one that
// already succeeded (say after a timeout) and the original result is returned,
// with nothing written. Event ids are UUIDv7, generated when left zero.
//
// # Group commit
//
// Appends from many goroutines are pipelined by rueidis, and grouped: while
// a queue's script calls are in flight, later appends queue up and go out
// together in the next call (no timers, so a lone append is never delayed).
// On a cluster each partition has its queue, since a script's keys must
// share a slot; on a standalone server one queue serves the store and one
// call carries appends of every partition, so batches grow with the number
// of callers rather than with callers per partition (see [GroupCommit]).
// Each grouped append is still checked and applied on its own and gets its
// own outcome: one refused by Redis (a key of another type, out of memory)
// fails alone with an [AppendFailedError] while the others of the call are
// written. Each caller waits only until its own context ends: if it ends
// while its append is in flight, the outcome is unknown, as after a network
// timeout, and retrying the same events is safe; if it ends while the
// append is still queued, nothing was sent.
//
// # Durability
//
// An append is acknowledged once the primary has applied it; with
// appendfsync always it is also in the primary's AOF. [WithDurability] makes
// Append also wait (WAIT, on the same connection, in the same round trip)
// until enough replicas have it, so that a failover cannot lose an
// acknowledged append; when they do not confirm in time, Append returns a
// [DurabilityError] that carries the result (the write stands on the primary).
//
// # Errors
//
// Every error is errors.Is-able against a sentinel (ErrWrongVersion,
// ErrStreamNotFound, ErrUnknownEventType, ErrInvalidStreamID, ErrEventTooLarge,
// ErrCrossPartition, ErrEmptyAppend, ErrInvalidEvent, ErrCorruptEntry,
// ErrNotDurable, ErrOutOfMemory, ErrReadOnly, ErrAppendFailed,
// ErrStreamDamaged, ErrUnavailable) and carries detail in a
// typed error ([WrongVersionError], ...). Invalid input is rejected before
// anything is sent to Redis.
//
// A call Redis refuses without running it (during a cluster slot migration
// TRYAGAIN, ASK or MOVED; CLUSTERDOWN, LOADING, BUSY) is sent again with
// capped exponential backoff and jitter until the caller's deadline, and
// only then fails with an [UnavailableError] (ErrUnavailable): nothing was
// written. An error after the call was sent (a network error, a deadline)
// leaves its outcome unknown; retrying the same events is safe (a replay).
package eventstore
