package retention

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/versionid"
	"github.com/streamfold/streamfold/snapshot"
)

// TruncateReport is one entity stream truncated behind its snapshot (or, on
// a dry run, that would be).
type TruncateReport struct {
	Stream   eventstore.StreamID
	Snapshot uint64 // the snapshot's version
	Through  uint64 // events up to this version were (or would be) archived and trimmed
	Trimmed  int64
}

// truncateCategory trims each entity stream behind its snapshot, keeping
// p.TruncateKeep events before it, after the archiver (if any) has kept
// them. A stream without a usable snapshot is left whole: its events are
// the only way to rebuild it. A snapshot is usable only if it belongs to the
// stream's current life (Store.Info: Start <= its version <= Version).
func (r *Retainer) truncateCategory(ctx context.Context, p Policy, dryRun bool, rep *Report) error {
	return r.scanEntityStreams(ctx, p.Category, rep, func(keys []string, ids []eventstore.StreamID) error {
		for i, id := range ids {
			if err := r.truncate(ctx, p, keys[i], id, dryRun, rep); err != nil {
				return err
			}
		}
		return nil
	})
}

// truncate trims one entity stream behind its snapshot, as
// truncateCategory says; a stream left whole is counted in rep.Skipped under
// its reason.
func (r *Retainer) truncate(ctx context.Context, p Policy, key string, id eventstore.StreamID, dryRun bool, rep *Report) error {
	sn, ok, err := r.usableSnapshot(ctx, p, id, rep)
	if err != nil || !ok {
		return err
	}
	through, ok, err := r.truncationPoint(ctx, p, id, sn, rep)
	if err != nil || !ok {
		return err
	}
	events, ok, err := r.eventsThrough(ctx, id, through)
	if err != nil || !ok {
		return err
	}
	if len(events) == 0 {
		rep.Skipped["nothing behind the snapshot"]++
		return nil
	}
	tr := TruncateReport{Stream: id, Snapshot: sn.Version, Through: through, Trimmed: int64(len(events))}
	if !dryRun {
		if tr.Trimmed, err = r.archiveAndTrim(ctx, key, id, through, events); err != nil {
			return err
		}
	}
	rep.Truncated = append(rep.Truncated, tr)
	return nil
}

// usableSnapshot returns the stream's snapshot if loads would use it: it
// exists, decodes, and is of the policy's schema. ok is false (the reason
// counted in rep) when there is none such.
func (r *Retainer) usableSnapshot(ctx context.Context, p Policy, id eventstore.StreamID, rep *Report) (sn snapshot.Snapshot, ok bool, err error) {
	sn, err = r.opts.snapshots.Get(ctx, id)
	var ce *snapshot.CorruptError
	switch {
	case errors.Is(err, snapshot.ErrNotFound):
		rep.Skipped["no snapshot"]++
		return sn, false, nil
	case errors.As(err, &ce):
		// A corrupt snapshot is no ground to drop the events behind it.
		rep.Skipped["corrupt snapshot"]++
		r.opts.logger.Warn("retention: corrupt snapshot, stream left whole", "stream", id, "err", err)
		return sn, false, nil
	case err != nil:
		return sn, false, fmt.Errorf("retention: snapshot of %s: %w", id, err)
	}
	if p.SnapshotSchema != 0 && sn.SchemaVersion != p.SnapshotSchema {
		// A snapshot of another schema is ignored by loads: the events are needed.
		rep.Skipped["snapshot of another schema"]++
		return sn, false, nil
	}
	return sn, true, nil
}

// truncationPoint returns the last version to trim behind sn, keeping
// p.TruncateKeep events before it. ok is false when nothing is to be
// trimmed: the stream was deleted since the scan, is damaged, sn belongs to
// another of its lives, or no stored event is old enough (counted in rep).
func (r *Retainer) truncationPoint(ctx context.Context, p Policy, id eventstore.StreamID, sn snapshot.Snapshot, rep *Report) (through uint64, ok bool, err error) {
	info, err := r.store.Info(ctx, id)
	if err != nil {
		return 0, false, fmt.Errorf("retention: info of %s: %w", id, err)
	}
	switch {
	case info.Version == 0:
		return 0, false, nil // deleted since the scan
	case info.Damaged:
		// Damaged: its last events were removed by hand. Trimming the rest
		// could leave it empty, and the damage could no longer be seen.
		rep.Skipped["damaged stream"]++
		r.opts.logger.Warn("retention: stream damaged (its last events were removed by hand), left whole", "stream", id, "version", info.Version, "last", info.Last)
		return 0, false, nil
	case sn.Version < info.Start || sn.Version > info.Version:
		// A snapshot of another life of the entity (written late, after a
		// Delete) says nothing of this life's events: trusting its version
		// would trim events no snapshot covers.
		rep.Skipped["stale snapshot"]++
		r.opts.logger.Warn("retention: snapshot of another life of its entity, stream left whole",
			"stream", id, "snapshot", sn.Version, "start", info.Start, "version", info.Version)
		return 0, false, nil
	case sn.Version <= uint64(p.TruncateKeep):
		rep.Skipped["nothing behind the snapshot"]++
		return 0, false, nil
	}
	through = sn.Version - uint64(p.TruncateKeep)
	if info.First == 0 || info.First > through {
		rep.Skipped["nothing behind the snapshot"]++
		return 0, false, nil
	}
	return through, true, nil
}

// eventsThrough reads the stream's events up to version through (those of
// an unknown type included: they are archived as stored). ok is false when
// the stream was deleted since the scan.
func (r *Retainer) eventsThrough(ctx context.Context, id eventstore.StreamID, through uint64) (events []eventstore.RecordedEvent, ok bool, err error) {
	for ev, err := range r.store.Read(ctx, id, 0) {
		var ut *eventstore.UnknownEventTypeError
		if err != nil && !errors.As(err, &ut) {
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("retention: read %s: %w", id, err)
		}
		if ev.Version > through {
			break
		}
		events = append(events, ev)
	}
	return events, true, nil
}

// archiveAndTrim hands events to the archiver (if any) and, once it has
// kept them, trims the stream at key through version through. It returns
// the number of entries trimmed.
func (r *Retainer) archiveAndTrim(ctx context.Context, key string, id eventstore.StreamID, through uint64, events []eventstore.RecordedEvent) (int64, error) {
	if r.opts.archiver != nil {
		if err := r.opts.archiver.Archive(ctx, id, asStored(r.store.Codec(), events)); err != nil {
			// Nothing is trimmed; the next pass tries again.
			return 0, fmt.Errorf("retention: archive %s through version %d: %w", id, through, err)
		}
	}
	c := r.store.Client()
	n, err := c.Do(ctx, c.B().Xtrim().Key(key).Minid().Threshold(versionid.Format(through+1)).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("retention: trim %s: %w", id, err)
	}
	return n, nil
}
