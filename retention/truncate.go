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
	if r.opts.snapshots == nil {
		return fmt.Errorf("%w: category %s truncates behind snapshots but the Retainer has no snapshot store (WithSnapshots)", ErrInvalidPolicy, p.Category)
	}
	return r.scanEntityStreams(ctx, p.Category, rep, func(keys []string, ids []eventstore.StreamID) error {
		for i, id := range ids {
			if err := r.truncate(ctx, p, keys[i], id, dryRun, rep); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r *Retainer) truncate(ctx context.Context, p Policy, key string, id eventstore.StreamID, dryRun bool, rep *Report) error {
	sn, err := r.opts.snapshots.Get(ctx, id)
	switch {
	case errors.Is(err, snapshot.ErrNotFound):
		rep.Skipped["no snapshot"]++
		return nil
	case err != nil:
		// A corrupt snapshot is no ground to drop the events behind it.
		var ce *snapshot.CorruptError
		if errors.As(err, &ce) {
			rep.Skipped["corrupt snapshot"]++
			r.opts.logger.Warn("retention: corrupt snapshot, stream left whole", "stream", id, "err", err)
			return nil
		}
		return fmt.Errorf("retention: snapshot of %s: %w", id, err)
	}
	if p.SnapshotSchema != 0 && sn.SchemaVersion != p.SnapshotSchema {
		// A snapshot of another schema is ignored by loads: the events are needed.
		rep.Skipped["snapshot of another schema"]++
		return nil
	}
	info, err := r.store.Info(ctx, id)
	if err != nil {
		return fmt.Errorf("retention: info of %s: %w", id, err)
	}
	if info.Version == 0 {
		return nil // deleted since the scan
	}
	if info.Damaged {
		// Damaged: its last events were removed by hand. Trimming the rest
		// could leave it empty, and the damage could no longer be seen.
		rep.Skipped["damaged stream"]++
		r.opts.logger.Warn("retention: stream damaged (its last events were removed by hand), left whole", "stream", id, "version", info.Version, "last", info.Last)
		return nil
	}
	if sn.Version < info.Start || sn.Version > info.Version {
		// A snapshot of another life of the entity (written late, after a
		// Delete) says nothing of this life's events: trusting its version
		// would trim events no snapshot covers.
		rep.Skipped["stale snapshot"]++
		r.opts.logger.Warn("retention: snapshot of another life of its entity, stream left whole",
			"stream", id, "snapshot", sn.Version, "start", info.Start, "version", info.Version)
		return nil
	}
	if sn.Version <= uint64(p.TruncateKeep) {
		rep.Skipped["nothing behind the snapshot"]++
		return nil
	}
	through := sn.Version - uint64(p.TruncateKeep)
	if info.First == 0 || info.First > through {
		rep.Skipped["nothing behind the snapshot"]++
		return nil
	}
	var events []eventstore.RecordedEvent
	for ev, err := range r.store.Read(ctx, id, 0) {
		var ut *eventstore.UnknownEventTypeError
		if err != nil && !errors.As(err, &ut) {
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				return nil // deleted since the scan
			}
			return fmt.Errorf("retention: read %s: %w", id, err)
		}
		if ev.Version > through {
			break
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		rep.Skipped["nothing behind the snapshot"]++
		return nil
	}
	tr := TruncateReport{Stream: id, Snapshot: sn.Version, Through: through, Trimmed: int64(len(events))}
	if dryRun {
		rep.Truncated = append(rep.Truncated, tr)
		return nil
	}
	if r.opts.archiver != nil {
		if err := r.opts.archiver.Archive(ctx, id, asStored(r.store.Codec(), events)); err != nil {
			// Nothing is trimmed; the next pass tries again.
			return fmt.Errorf("retention: archive %s through version %d: %w", id, through, err)
		}
	}
	c := r.store.Client()
	n, err := c.Do(ctx, c.B().Xtrim().Key(key).Minid().Threshold(versionid.Format(through+1)).Build()).AsInt64()
	if err != nil {
		return fmt.Errorf("retention: trim %s: %w", id, err)
	}
	tr.Trimmed = n
	rep.Truncated = append(rep.Truncated, tr)
	return nil
}
