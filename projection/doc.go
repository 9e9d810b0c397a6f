// Package projection runs projections: handlers that turn the events of some
// categories into read models, through Redis consumer groups on the
// categories' partition logs.
//
// A [Projection] is a name (its consumer group), categories and a [Handler].
// A [Runner] runs it in one process; run several for availability and
// throughput: they share the partitions. [Inline] applies a projection
// right after an append (write-through) beside the runner (write-behind).
// [Rebuild] fills a new read-model version from the entity streams. [WaitFor]
// gives read-your-writes from any process.
//
// # Delivery and ordering
//
// Delivery is at least once; handlers are made idempotent by the version
// guard of package readmodel (effectively once). Events of one entity are
// handled in version order, one at a time: an entity lives in one partition,
// a partition is read by at most one instance (a lease), and inside the
// instance a partition's events are spread over workers by entity id.
//
// # Leases and fencing
//
// Each partition has a lease key "<token>:<owner>" (SET PX, renewed every
// TTL/3 or every second, whichever is shorter, by a script that checks the
// value), in the partition's hash tag.
// The token comes from INCR on a counter that never expires, so it only
// grows. Instances heartbeat in a members set and each takes
// ceil(partitions/instances) leases; surplus leases are handed back
// gracefully (the others take them within about a second), and a dead
// holder's leases are taken when they expire (at once when it restarts
// with the same WithInstanceID). An instance whose heartbeat fails takes no
// partition until it succeeds again: the others cannot count it, so its
// share would be wrong and it would fight them for leases.
//
// Fencing is enforced in Redis, not by the holder's belief: every read, ack
// and dead-letter write of a partition is one Lua script that first checks
// that the lease still holds this instance's token (the lease, the log and
// the dead letters share a hash tag, so this is atomic on a cluster too).
// A paused holder whose lease expired can therefore not ack entries the new
// holder has not applied, nor take new entries into its pending list (from
// where they would be applied late, out of order). Read-model writes are
// not checked against the token: they live in other slots, and need no
// check, because a late write by a fenced holder is a write of an event
// version the new holder writes too, and the version guard keeps exactly
// one of them.
//
// # Start, pending entries and claims
//
// A runner never creates a category (a typo would otherwise create one,
// with the default partition count, that nobody writes to): Run waits for a
// category that no append (nor eventstore.Store.CreateCategory) created yet,
// with one WARN naming the known ones, and starts on it once it exists, so
// projections may be deployed before the first event. [Status], [Rebuild]
// and [DeadLetters] return an *eventstore.UnknownCategoryError listing the
// known ones.
//
// Groups are created with XGROUP CREATE ... MKSTREAM (BUSYGROUP is fine),
// at the start of the log or at its end ([WithStart]). A new lease holder
// first moves every pending entry of the group to itself with XAUTOCLAIM
// (min idle 0: the lease proves the others dead or fenced), then reads its
// pending list with XREADGROUP from 0, in log order, and only then reads
// new entries with ">". Pending entries whose log entry was trimmed (no
// fields from XREADGROUP, or XAUTOCLAIM's deleted list) are dead-lettered
// as [KindTrimmed] in the same script that removes them from the pending
// list. Consumers are deleted only by a script that checks, atomically, that
// they have nothing pending.
//
// # Entries that are not the store's
//
// Only the store writes partition logs, in the same script that writes the
// event into its entity stream (whose entry records the log entry's id). An
// entry added to a log by anything else (XADD by hand, another program, a
// restore mixing files) must not change a read model, however well formed:
// before an entry reaches the handler, the reader checks it against the
// entity stream whenever it is not the plain continuation of what it has
// seen of that entity (its first entry since the lease was taken, a version
// gap or an older version, the same version with another event id, an
// entry that cannot be decoded): one pipelined XRANGE per such entry and
// read. An entry that is not the event stored at the version it claims is
// dead-lettered as [KindForeign], without parking its entity; a retry never
// applies it. An entry claiming a version that is no longer stored is told
// by the stream's life: an event of an earlier life (the stream was
// deleted) or behind a truncation is the store's; one beyond the stream's
// version, of an entity never written, or in a hole removed by hand, is
// foreign. Steady traffic is checked once per entity and lease (measured
// with BenchmarkProjectionVsGuideLoop: 4.5k XRANGEs for 100k events, ~0.5
// µs of Redis per event; checking every entry would cost ~5 µs per event,
// half again the whole read-and-apply). The one forgery this does not catch
// when it is read, an entry at exactly the next version of an entity the
// reader has seen, written before the real event, is shown by the real
// event when it comes: that is dead-lettered as [KindFailed] with its
// entity parked and a message to rebuild the read model.
//
// # Events of unregistered types
//
// A projection is strict by default: an event whose type is not registered
// in the projecting process's registry (a newer writer added it, or a
// registration is missing here) is dead-lettered as [KindUnknownType] and
// its entity parked, so WaitFor reports [ErrDeadLettered] rather than
// success and no read model silently misses it; register the type and
// retry the entity (a retry while the type is still unknown leaves it
// parked). [Rebuild] stops with an error matching
// *eventstore.UnknownEventTypeError. Projection.UnknownTypes chooses
// otherwise: [UnknownSkip] acks such events unhandled (DEBUG log), and
// [UnknownDeliver] hands them to the handler with Data nil and Raw set.
//
// # Failures: the sequenced dead-letter queue
//
// A handler error (after the retries of a [Retry] middleware) dead-letters
// the event: one script adds it to the partition's dead-letter stream, marks
// its entity parked and acks it. The entity's later events are dead-lettered
// as [KindParked] behind it, so the entity's order survives; other entities
// go on. [DeadLetters] lists letters and queues retry and skip requests,
// which the partition's runner executes on the entity's worker, ordered with
// its live events: a retry applies the entity's letters in version order and
// unparks it when all succeed.
//
// # Read your writes
//
// [WaitFor] returns when a projection has applied an append: the
// projection's consumer group has delivered the append's last log entry,
// nothing at or before it is pending (being applied, or waiting for the next
// lease holder), and its entity is not parked. It asks Redis by projection
// name, so any process can wait (an API replica that runs no projection, or
// one whose partition another instance holds); [Runner.WaitFor] is the same
// wait, woken early by its own acks. The result to wait for comes from the
// write: Store.Append, Delete, shred's Forget, or aggregate's
// Aggregate.LastAppend after Repository.Update or Save. Since a handler acks
// an event only after its read-model writes returned, those writes are in
// Redis when WaitFor returns nil: a read that reaches Redis afterwards
// (readmodel's GetFresh), from any process or connection, sees them or
// something newer. A client-side cached read (Get) may not yet: Redis
// invalidates a cached key by a message to the reading connection sent
// after the write, which can arrive after WaitFor returned (measured: 2-3
// stale Gets in 300 on a cluster, none with GetFresh).
//
// # Batches
//
// A read returns up to WithBatch entries per partition. With a plain Handler,
// each event is a task on its entity's worker. When the Handler is a
// [BatchHandler] (for example [Writes]), the entries of one read are grouped
// by worker and each group is one HandleBatch call: the read-model writes of
// up to a few hundred events go out as one readmodel.Batch (one Lua call per
// hash slot, all in one round trip) instead of one script call each. Order
// is unchanged (an entity's events stay on its worker, in log order). A
// batch holding a corrupt entry or a parked entity, and a batch whose
// HandleBatch fails, are handled event by event, so dead-letter sequencing is
// exactly the per-event path's; see BatchHandler for why re-applying a
// partly applied batch is exact.
//
// # Rebuilds
//
// [Rebuild] folds every entity stream of the categories into a new read
// model, up to a cut, and the Runner continues from the cut. It needs whole
// histories: an entity whose oldest events were truncated (package
// retention, behind a snapshot) is refused with an [IncompleteHistoryError]
// (errors.Is [ErrIncompleteHistory]) naming it, before any of its events is
// handled — never a fold of what is left. An entity deleted and re-created
// is whole from its new life's start; the handler gets its deletion marker
// first, as from the log.
//
// # Observability
//
// With [WithTracerProvider] every handled event gets a span
// "streamfold.handle", child of the W3C trace context ("traceparent",
// "tracestate") in the event's headers; with [WithMeterProvider] the runner
// counts events by outcome and observes lag and dead letters per partition
// it holds. Both default to the global OpenTelemetry providers, which are
// no-ops until the program installs real ones.
//
// # An emptied Redis
//
// Redis may lose the projection's state under a running runner: FLUSHALL, a
// restart without persistence, a restore of an older file, an operator's
// XGROUP DESTROY. The runner heals itself rather than retrying forever. A
// lease found gone together with its fence counter (the counter never
// expires and only grows, so only a Redis that lost it goes back), or a
// consumer group found missing (NOGROUP), makes it recreate every missing
// group of its partitions at the start of its log — whatever [WithStart]
// says, since what a lost group had delivered is unknown — and take the
// leases again as free ones; it logs one WARN for the loss (further
// partitions noticing it within a few seconds log at INFO). Everything
// still in a log is delivered again: the version guard skips what the read
// models already hold, and a handler without one sees those events twice
// (at least once, as always). What Redis lost is not brought back: after
// FLUSHALL the logs, the entity streams, the dead letters and read models
// kept in that Redis are gone too, and the store starts the entities again
// at version 1; read models kept elsewhere still remember versions of the
// lost history and skip the new events until they are reset or rebuilt.
// Tokens start again from 1 after such a loss, so fencing relies on
// distinct instance ids (see [WithInstanceID]).
//
// The category's partition count, lost with the rest, is written again by
// the store on its next append (it compares its cached count with Redis
// once a second), with the count the logs already use; a runner keeps its
// partitions. If another process re-created the category with another
// count meanwhile, the runner cannot read the partitions the store now
// routes to: it compares its categories' counts with Redis in every
// maintenance round, and on a difference Run stops gracefully and returns a
// *StateLostError (errors.Is [ErrStateLost]) that says to restart it, as
// it does when Redis refuses to recreate a group (NOPERM, say). A Redis
// that cannot be reached is retried, with a WARN at most every 30 seconds.
//
// # Shutdown
//
// When Run's context ends, each partition stops reading (a blocked XREAD is
// released with CLIENT UNBLOCK, not by dropping the connection), waits for
// its in-flight events, acks them and releases its lease. Handlers still
// running after [WithShutdownTimeout] see their context cancelled; an
// event whose handler then fails stays pending for the next holder, and so
// do the later events of its entity that this runner has read (none of
// them is handled here, whatever the failure), so the next holder applies
// the entity's events in order.
package projection
