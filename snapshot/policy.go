package snapshot

import (
	"time"

	"github.com/streamfold/streamfold/eventstore"
)

// Info is what a Policy decides on, after events were saved.
type Info struct {
	Stream eventstore.StreamID
	// Version is the stream's version after the save.
	Version uint64
	// SnapshotVersion is the version of the latest snapshot the writer knows
	// of (the one it loaded, or queued since); 0 when none.
	SnapshotVersion uint64
	// SnapshotTime is when that snapshot was taken; zero when none.
	SnapshotTime time.Time
	// Now is the time of the decision.
	Now time.Time
}

// Policy decides when a snapshot is due.
type Policy interface {
	// Due reports whether a snapshot at info.Version should be taken. It runs
	// on the command's goroutine after every save: keep it cheap.
	Due(info Info) bool
}

// PolicyFunc is a custom Policy.
type PolicyFunc func(Info) bool

// Due implements Policy.
func (f PolicyFunc) Due(info Info) bool { return f(info) }

// Every is due once n events or more were stored since the latest snapshot.
// Counting from the latest snapshot rather than at multiples of n means a
// dropped snapshot is taken again on the next save instead of n events later.
func Every(n uint64) Policy {
	if n < 1 {
		n = 1
	}
	return PolicyFunc(func(i Info) bool { return i.Version >= i.SnapshotVersion+n })
}

// MaxAge is due when events were stored after the latest snapshot and that
// snapshot is older than d, or there is none: a slowly growing aggregate is
// not left loading from an old snapshot. Alone it snapshots every aggregate
// on its first save; AllOf(Every(k), MaxAge(d)) waits for k events first.
func MaxAge(d time.Duration) Policy {
	return PolicyFunc(func(i Info) bool {
		return i.Version > i.SnapshotVersion && (i.SnapshotTime.IsZero() || i.Now.Sub(i.SnapshotTime) >= d)
	})
}

// AnyOf is due when one of ps is.
func AnyOf(ps ...Policy) Policy {
	return PolicyFunc(func(i Info) bool {
		for _, p := range ps {
			if p.Due(i) {
				return true
			}
		}
		return false
	})
}

// AllOf is due when all of ps are.
func AllOf(ps ...Policy) Policy {
	return PolicyFunc(func(i Info) bool {
		for _, p := range ps {
			if !p.Due(i) {
				return false
			}
		}
		return len(ps) > 0
	})
}

// Never is never due: snapshots are only read (and written with Store.Save).
func Never() Policy { return PolicyFunc(func(Info) bool { return false }) }
