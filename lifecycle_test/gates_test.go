package lifecycle_test

// Gates: operations (or expectations) whose fix had not landed when the
// checker was written. A closed gate (false) keeps the bounded run green by
// not generating the operation; open it once the fix is in. Each names the
// finding in /tmp/checker-findings.md it waits for.
const (
	// gateStaleSnapshotSave: save a snapshot captured in an earlier life
	// after Delete + re-create; save.lua must refuse it (issue item 2).
	gateStaleSnapshotSave = true

	// gateReadModelExpiry: delete or expire read-model entries by hand
	// (TTL) and expect the Loader to rebuild them (issue item 6).
	gateReadModelExpiry = true

	// gateArchive: truncate with a FileArchiver while entities may be
	// forgotten later; archives must not hold personal fields (item 3).
	gateArchive = true

	// gateRebuildTruncated: Rebuild while an entity is truncated; it must
	// refuse with projection.ErrIncompleteHistory (item 4).
	gateRebuildTruncated = true

	// gateUnusableSnapshot: store a snapshot of another schema and truncate
	// behind it; loads must fail with aggregate.ErrHistoryGap (item 5).
	gateUnusableSnapshot = true

	// gateTailXDel: an operator XDELs a stream's last entry (item 7).
	gateTailXDel = true

	// gateXDelLastStored: XDEL a stream's only stored event (leaving it
	// empty at its version). Appends to it are accepted today and leave a
	// stream no load can fold (F4). Closed: only tails with an event before
	// them are removed.
	gateXDelLastStored = false

	// gateLateSnapshotAfterForget: write a snapshot captured before Forget
	// after it (the background writer's race); it must be refused with
	// snapshot.ErrStale (Forget's snapshot floor). Not in the list.
	gateLateSnapshotAfterForget = true
)
