package snapshot_test

import (
	"fmt"
	"time"

	"github.com/streamfold/streamfold/snapshot"
)

// Policies decide after each save whether a snapshot is due: here every 100
// events, or sooner when the latest snapshot is over an hour old and at least
// 10 events behind.
func ExamplePolicy() {
	policy := snapshot.AnyOf(
		snapshot.Every(100),
		snapshot.AllOf(snapshot.Every(10), snapshot.MaxAge(time.Hour)),
	)
	now := time.Now()
	for _, i := range []snapshot.Info{
		{Version: 150, SnapshotVersion: 100, SnapshotTime: now.Add(-time.Minute), Now: now},
		{Version: 200, SnapshotVersion: 100, SnapshotTime: now.Add(-time.Minute), Now: now},
		{Version: 115, SnapshotVersion: 100, SnapshotTime: now.Add(-2 * time.Hour), Now: now},
		{Version: 105, SnapshotVersion: 100, SnapshotTime: now.Add(-2 * time.Hour), Now: now},
	} {
		fmt.Printf("at %d, snapshot at %d taken %v ago: %v\n", i.Version, i.SnapshotVersion, i.Now.Sub(i.SnapshotTime).Round(time.Minute), policy.Due(i))
	}
	// Output:
	// at 150, snapshot at 100 taken 1m0s ago: false
	// at 200, snapshot at 100 taken 1m0s ago: true
	// at 115, snapshot at 100 taken 2h0m0s ago: true
	// at 105, snapshot at 100 taken 2h0m0s ago: false
}
