package integration_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
)

// TestSentinelFailover runs a primary, a replica and a Sentinel on loopback.
// The store asks for one replica's acknowledgement (WAIT) and reaches the
// primary through Sentinel. The primary is killed while appends run; Sentinel
// promotes the replica, the client follows it by itself, and the old primary
// comes back (empty: no persistence) and is turned into a replica by Sentinel.
// Every append acknowledged with durability is on the new primary.
func TestSentinelFailover(t *testing.T) {
	ctx := context.Background()
	fast := redistest.WithArgs("--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1")
	primary := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), fast)
	host, port := splitAddr(t, primary.Addrs()[0])
	var replicas []string
	for range 2 {
		r := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), fast,
			redistest.WithArgs("--replicaof", host, fmt.Sprint(port)))
		waitLinkUp(t, r.Addrs()[0])
		replicas = append(replicas, r.Addrs()[0])
	}
	sentinel := redistest.NewSentinel(t, primary.Addrs()[0], redistest.SentinelConfig{MasterSet: "sf", DownAfter: time.Second, FailoverMax: 5 * time.Second})
	sc := nodeClient(t, sentinel.Addr())
	// Sentinel must know the replica before it can promote it.
	waitFor(t, 20*time.Second, "sentinel to discover the replica", func() bool {
		r, err := sc.Do(ctx, sc.B().Arbitrary("SENTINEL", "REPLICAS", "sf").Build()).ToArray()
		return err == nil && len(r) == len(replicas)
	})

	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{sentinel.Addr()},
		Sentinel:    rueidis.SentinelOption{MasterSet: "sf", TopologyRefreshInterval: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	store := newStore(t, c, "fo", eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: 500 * time.Millisecond}))
	w := &workload{store: store, category: "acct", workers: 8, entities: 8, timeout: 2 * time.Second, pad: 64}
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- w.run(stop, 30*time.Second) }()

	waitFor(t, 20*time.Second, "durable appends before the failover", func() bool { return w.ackedCount() >= 300 })
	killedAt := time.Now()
	atKill := w.ackedCount()
	resumed := make(chan time.Duration, 1)
	go func() {
		for i := 0; i < 3000 && w.ackedCount() <= atKill; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		resumed <- time.Since(killedAt)
	}()
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	var newPrimary string
	waitFor(t, 30*time.Second, "sentinel to promote a replica", func() bool {
		newPrimary = masterAddr(ctx, sc, "sf")
		return slices.Contains(replicas, newPrimary)
	})
	promoted := time.Since(killedAt)
	// Durable appends resume once Sentinel has pointed the other replica at
	// the new primary.
	waitFor(t, 30*time.Second, "durable appends on the new primary", func() bool { return w.ackedCount() > atKill })
	base := w.ackedCount()
	waitFor(t, 40*time.Second, "more durable appends", func() bool { return w.ackedCount() >= base+300 })
	if *long {
		// The old primary returns (empty: no persistence) and Sentinel turns
		// it into a replica of the new one (this takes Sentinel ~20 s).
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = primary.Restart(rctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, "sentinel to reconfigure the old primary as a replica", func() bool {
			r, err := sc.Do(ctx, sc.B().Arbitrary("SENTINEL", "REPLICAS", "sf").Build()).ToArray()
			if err != nil {
				return false
			}
			for _, m := range r {
				kv, err := m.AsStrMap() // RESP3: a map; RESP2: a flat list
				if err != nil {
					kv = map[string]string{}
					fields, _ := m.AsStrSlice()
					for i := 0; i+1 < len(fields); i += 2 {
						kv[fields[i]] = fields[i+1]
					}
				}
				if kv["name"] == primary.Addrs()[0] && kv["master-link-status"] == "ok" {
					return true
				}
			}
			return false
		})
		base := w.ackedCount()
		waitFor(t, 40*time.Second, "durable appends with the old primary back", func() bool { return w.ackedCount() >= base+300 })
	}
	recovered := time.Since(killedAt)
	firstAck := <-resumed
	close(stop)
	if left := <-done; left != 0 {
		t.Errorf("%d appends still unacknowledged after the drain", left)
	}

	// Read back from the new primary, directly.
	vstore := newStore(t, nodeClient(t, newPrimary), "fo")
	v := w.verify(t, vstore)
	summary(t, "attempted", w.attempted.Load(), "acknowledged", w.ackedCount(), "lost", v.lost, "duplicated", v.duplicated, "log_duplicated", v.logDuplicated,
		"calls", w.calls.Load(), "failed_calls", w.errs.Load(), "not_durable", w.notDurable.Load(), "replayed", w.replayed.Load(),
		"promoted_after", promoted.Round(time.Millisecond), "first_durable_ack_after", firstAck.Round(time.Millisecond), "test_phase_after_kill", recovered.Round(time.Millisecond),
		"errors", w.errorKinds())
	if v.lost != 0 || v.duplicated != 0 || v.gaps != 0 || v.mismatched != 0 || w.conflicts.Load() != 0 {
		t.Fatalf("failover: %+v, writer saw %d conflicts", v, w.conflicts.Load())
	}
}

func masterAddr(ctx context.Context, sc rueidis.Client, set string) string {
	r, err := sc.Do(ctx, sc.B().Arbitrary("SENTINEL", "GET-MASTER-ADDR-BY-NAME", set).Build()).AsStrSlice()
	if err != nil || len(r) != 2 {
		return ""
	}
	return r[0] + ":" + r[1]
}

// waitLinkUp waits until the replica at addr has synced with its primary.
func waitLinkUp(t testing.TB, addr string) {
	t.Helper()
	rc := nodeClient(t, addr)
	waitFor(t, 20*time.Second, "replica "+addr+" to sync", func() bool {
		info, err := rc.Do(context.Background(), rc.B().Info().Section("replication").Build()).ToString()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
}
