// Package lifecycle_test is a model-based checker of an entity's whole life
// in Streamfold: random sequences of appends (every expected-version kind,
// multi-stream appends, retries of the same events, group commit), deletes and
// re-creates, aggregate updates with and without snapshots, snapshot offers
// written late, retention (truncation behind snapshots with and without an
// archive, compaction, log trimming), crypto-shredding (Forget), read-model
// expiry, projection rebuilds and runner restarts, and an operator's XDEL of
// a stream's tail. After every step the store is compared with a plain Go
// reference model (model_test.go) on the invariants of DESIGN.md:
//
//   - Repository.Load (with and without snapshots) is the model's fold at the
//     model's version, or aggregate.ErrHistoryGap where the model predicts a
//     gap; never a silently shorter fold;
//   - Store.Info, the entity stream and the snapshot are what the model says;
//     an append reported failed wrote nothing, one reported done is in its
//     stream and its partition log exactly once, in version order; every
//     caller of a group-commit batch gets its own true outcome;
//   - the read model (a projection.Runner keeping a balance with Patch/IncrBy)
//     equals the fold of live entities and is not found for deleted ones;
//   - the rollup the same runner feeds from every entity (one entry holding
//     each live entity's balance and count, and the set of live entities;
//     rollup_test.go) agrees with the same folds: each source event applied
//     exactly once through restarts, forged entries, deletes, Forget and
//     rebuilds;
//   - after Forget no personal marker is readable in the clear in any key of
//     the namespace on any node, nor in any archive file.
//
// Each sequence runs in a fresh namespace of the shared Redis, on the
// standalone server and on the 3-master cluster (subtests). The sequence is
// built and shrunk by pgregory.net/rapid: a failure prints the minimal
// sequence of actions (with each step's log line) and what differed.
//
// # Running and replaying
//
// make test runs a bounded check (defaults below); make check runs a long one:
//
//	go test -race -count=1 -run TestLifecycle ./lifecycle_test/ -rapid.checks=500 -rapid.steps=100 -v
//
// The seed is chosen at start and logged ("lifecycle: seed N"); rapid prints
// it again with a failure. Replay a failure with the same seed, checks and
// steps:
//
//	go test -count=1 -run 'TestLifecycle/cluster' ./lifecycle_test/ -rapid.seed=N -rapid.steps=100 -v
package lifecycle_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/streamfold/streamfold/redistest"
)

// Bounded defaults for make test; flags given on the command line win.
const (
	defaultChecks = 15
	defaultSteps  = 30
)

func TestMain(m *testing.M) {
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["rapid.checks"] && os.Getenv("RAPID_CHECKS") == "" {
		_ = flag.Set("rapid.checks", fmt.Sprint(defaultChecks))
	}
	if !set["rapid.steps"] && os.Getenv("RAPID_STEPS") == "" {
		_ = flag.Set("rapid.steps", fmt.Sprint(defaultSteps))
	}
	// Fail files would land in the source tree; the seed replays a failure.
	if !set["rapid.nofailfile"] {
		_ = flag.Set("rapid.nofailfile", "true")
	}
	// Pick the seed here so that it can be logged before anything runs.
	if !set["rapid.seed"] && os.Getenv("RAPID_SEED") == "" {
		_ = flag.Set("rapid.seed", fmt.Sprint(rand.Uint64()>>1))
	}
	fmt.Printf("lifecycle: seed %s (replay with -rapid.seed=%[1]s -rapid.checks=%s -rapid.steps=%s)\n",
		flag.Lookup("rapid.seed").Value, flag.Lookup("rapid.checks").Value, flag.Lookup("rapid.steps").Value)
	redistest.Main(m)
}
