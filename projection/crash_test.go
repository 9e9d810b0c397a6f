package projection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// The crash test re-executes the test binary as a projector process
// (projectorMain) and kills it with SIGKILL while events are appended.
const (
	projectorEnv  = "STREAMFOLD_TEST_PROJECTOR"
	projectorAddr = "STREAMFOLD_TEST_ADDRS"
	projectorNS   = "STREAMFOLD_TEST_NS"
	projectorClu  = "STREAMFOLD_TEST_CLUSTER"
	crashInstance = "crash-projector"
	crashParts    = 16
)

// projectorMain runs the counting projection until killed (or SIGTERM).
func projectorMain() int {
	addrs := strings.Split(os.Getenv(projectorAddr), ",")
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, ForceSingleClient: os.Getenv(projectorClu) == "", DisableCache: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	ns := os.Getenv(projectorNS)
	s, err := eventstore.New(c, eventstore.WithNamespace(ns), eventstore.WithRegistry(newRegistry()), eventstore.WithPartitions(crashParts))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	m := newModel(nil, c, ns, "crash")
	r, err := projection.NewRunner(s, projection.Projection{Name: "crash", Categories: []string{category}, Handler: countingBatch(m)},
		projection.WithInstanceID(crashInstance), projection.WithLeaseTTL(2*time.Second), projection.WithBlock(500*time.Millisecond), quiet())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// delivered sums the entries the crash projection's groups have delivered.
func delivered(ctx context.Context, s *eventstore.Store) int64 {
	st, err := projection.Status(ctx, s, "crash", category)
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range st {
		n += int64(p.Checkpoint.Seq) + int64(p.Checkpoint.Ms) // changes whenever any group moves
	}
	return n
}

// TestCrashRecovery: 100k events over 1000 entities, appended while a
// projector subprocess is SIGKILLed 10 times and restarted; then the read
// model must equal the fold of all events, every event applied exactly once.
func TestCrashRecovery(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		const entities, perEntity, kills = 1000, 100, 10
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		s := newStore(t, tg.Client, tg.Namespace, crashParts)
		m := newModel(t, tg.Client, tg.Namespace, "crash")

		start := time.Now()
		appended := make(chan map[int]eventstore.AppendResult, 1)
		appendErr := make(chan error, 1)
		go func() {
			last, err := appendEvents(ctx, s, "e", entities, 0, perEntity, 64)
			appendErr <- err
			appended <- last
		}()

		spawn := func() *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), projectorEnv+"=1", projectorAddr+"="+strings.Join(tg.Addrs, ","), projectorNS+"="+tg.Namespace)
			if tg.Cluster {
				cmd.Env = append(cmd.Env, projectorClu+"=1")
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			return cmd
		}
		killed := 0
		for killed < kills {
			cmd := spawn()
			// Kill it once it is processing: its groups have moved since spawn.
			before := delivered(ctx, s)
			deadline := time.Now().Add(20 * time.Second)
			for delivered(ctx, s) == before && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // polling Redis for progress of another process
			}
			time.Sleep(time.Duration(20+rand.IntN(150)) * time.Millisecond) // let it get some way into a batch
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			killed++
		}
		killPhase := time.Since(start)
		if err := <-appendErr; err != nil {
			t.Fatal(err)
		}
		last := <-appended
		appendTime := time.Since(start)

		// The final restart runs in this process, as the same instance: it
		// takes the killed process's leases back at once.
		r, err := projection.NewRunner(s, projection.Projection{Name: "crash", Categories: []string{category}, Handler: countingBatch(m)},
			projection.WithInstanceID(crashInstance), projection.WithLeaseTTL(2*time.Second), projection.WithBlock(500*time.Millisecond), quiet())
		if err != nil {
			t.Fatal(err)
		}
		stop := runRunner(t, r)
		waitAll(t, ctx, r, last)
		stop()
		lost, doubled := checkFold(t, ctx, m, "e", entities, perEntity)
		var dead int64
		st, _ := projection.Status(ctx, s, "crash", category)
		for _, p := range st {
			dead += p.DeadLetters
		}
		redelivered := m.Stats().Skipped
		t.Logf("%s: events %d, entities %d, kills %d, lost %d, doubled %d, dead letters %d, redelivered after the last restart %d; kill phase %v, appends done %v, total %v",
			tg.Name, entities*perEntity, entities, killed, lost, doubled, dead, redelivered, killPhase.Round(time.Millisecond), appendTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if lost != 0 || doubled != 0 || dead != 0 {
			t.Fatalf("lost %d, doubled %d, dead letters %d", lost, doubled, dead)
		}
		_ = strconv.Itoa
	})
}
