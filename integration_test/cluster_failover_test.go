package integration_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
)

// TestClusterFailover runs a 3-master cluster with a replica per master. The
// store asks for one replica's acknowledgement of every append (WAIT). A
// master is killed while appends run: its replica is promoted, the client
// follows the new slot owner by itself (MOVED), the killed node comes back
// and rejoins as a replica, and every append acknowledged with durability is
// still there.
func TestClusterFailover(t *testing.T) {
	ctx := context.Background()
	cl := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), redistest.WithClusterReplicas(),
		redistest.WithArgs("--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"))
	addrs := cl.Addrs()
	masters, replicas := addrs[:3], addrs[3:]
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: masters})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	store := newStore(t, c, "cfo", eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: 500 * time.Millisecond}))
	w := &workload{store: store, category: "acct", workers: 6, entities: 8, timeout: 2 * time.Second, pad: 64}
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- w.run(stop, 30*time.Second) }()
	waitFor(t, 20*time.Second, "durable appends before the failover", func() bool { return w.ackedCount() >= 300 })

	victim, heir := masters[0], replicas[0]
	killedAt := time.Now()
	if err := cl.KillNode(victim); err != nil {
		t.Fatal(err)
	}
	hc := nodeClient(t, heir)
	waitFor(t, 30*time.Second, "the replica to be promoted", func() bool {
		role, err := hc.Do(ctx, hc.B().Role().Build()).ToArray()
		if err != nil || len(role) == 0 {
			return false
		}
		r, _ := role[0].ToString()
		return r == "master"
	})
	promoted := time.Since(killedAt)
	// The promoted master has no replica until the old one rejoins: its
	// durable appends wait (DurabilityError, retried). Bring it back.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = cl.RestartNode(rctx, victim)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	vc := nodeClient(t, victim)
	waitFor(t, 30*time.Second, "the old master to rejoin as a replica", func() bool {
		info, err := vc.Do(ctx, vc.B().Info().Section("replication").Build()).ToString()
		return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up")
	})
	base := w.ackedCount()
	waitFor(t, 40*time.Second, "durable appends on every shard again", func() bool { return w.ackedCount() >= base+300 })
	recovered := time.Since(killedAt)
	close(stop)
	if left := <-done; left != 0 {
		t.Errorf("%d appends still unacknowledged after the drain", left)
	}
	v := w.verify(t, store)
	summary(t, "attempted", w.attempted.Load(), "acknowledged", w.ackedCount(), "lost", v.lost, "duplicated", v.duplicated, "log_duplicated", v.logDuplicated,
		"calls", w.calls.Load(), "failed_calls", w.errs.Load(), "not_durable", w.notDurable.Load(), "replayed", w.replayed.Load(),
		"promoted_after", promoted.Round(time.Millisecond), "recovered_after", recovered.Round(time.Millisecond), "errors", w.errorKinds())
	if v.lost != 0 || v.duplicated != 0 || v.gaps != 0 || v.mismatched != 0 || w.conflicts.Load() != 0 {
		t.Fatalf("cluster failover: %+v, writer saw %d conflicts", v, w.conflicts.Load())
	}
}
