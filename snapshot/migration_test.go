package snapshot_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/snapshot"
)

// While the slot of an entity migrates between two masters with its keys
// split between them (the snapshot moved, the stream not yet), Redis refuses
// the load and save scripts (TRYAGAIN, or ASK then TRYAGAIN): it ran
// nothing. Load and Save retry such refusals within the caller's deadline,
// as the store's appends do, and succeed once the migration is done,
// instead of handing TRYAGAIN to the caller.
func TestLoadAndSaveDuringSlotMigration(t *testing.T) {
	srv := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), redistest.WithCluster())
	c := srv.NewClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Counted](reg, "Counted")
	es, err := eventstore.New(c, eventstore.WithNamespace("mig"), eventstore.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(es)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close(context.Background()) })
	stream := eventstore.Stream("acct", "a")
	appendN(t, es, stream, 1, 5)
	if _, err := snaps.Save(ctx, stream, snapshot.Snapshot{Version: 3, SchemaVersion: 1, State: []byte("s3")}); err != nil {
		t.Fatal(err)
	}

	// Start migrating the slot and move only the snapshot key.
	_, streamKey, err := storetest.Locate(ctx, es, stream)
	if err != nil {
		t.Fatal(err)
	}
	m := newSlotMover(t, ctx, c, streamKey)
	m.moveKeys(t, ":snap:")
	finished := m.finishWhenRefused()
	snap, got := load(t, snaps, stream, 1)
	if snap != 3 || len(got) != 2 {
		t.Fatalf("load during the migration: snapshot v%d, events %v; want v3 and 4, 5", snap, got)
	}
	if err := <-finished; err != nil {
		t.Fatal(err)
	}

	// The same for a save, migrating the slot back.
	m = newSlotMover(t, ctx, c, streamKey)
	m.moveKeys(t, ":s:")
	finished = m.finishWhenRefused()
	if ok, err := snaps.Save(ctx, stream, snapshot.Snapshot{Version: 5, SchemaVersion: 1, State: []byte("s5")}); err != nil || !ok {
		t.Fatalf("save during the migration: %v %v", ok, err)
	}
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	if snap, got := load(t, snaps, stream, 1); snap != 5 || len(got) != 0 {
		t.Fatalf("after: snapshot v%d, events %v; want v5", snap, got)
	}
}

// slotMover migrates the slot of a key from its master to another, the way
// redis-cli --cluster reshard does, one key at a time.
type slotMover struct {
	ctx          context.Context
	slot         int64
	from, to     rueidis.Client
	toAddr       string
	fromID, toID string
	all          map[string]rueidis.Client
}

func newSlotMover(t *testing.T, ctx context.Context, c rueidis.Client, key string) *slotMover {
	t.Helper()
	m := &slotMover{ctx: ctx, all: c.Nodes()}
	slot, err := c.Do(ctx, c.B().ClusterKeyslot().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	m.slot = slot
	for addr, n := range m.all {
		n2, err := n.Do(ctx, n.B().ClusterCountkeysinslot().Slot(slot).Build()).AsInt64()
		if err != nil {
			continue // a node that does not own it answers too; a replica may refuse
		}
		id, err := n.Do(ctx, n.B().ClusterMyid().Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		if n2 > 0 && m.from == nil {
			m.from, m.fromID = n, id
		} else if m.to == nil {
			m.to, m.toID, m.toAddr = n, id, addr
		}
	}
	if m.from == nil || m.to == nil {
		t.Fatal("no source or target master for the slot")
	}
	for _, err := range []error{m.setSlot(m.to, "IMPORTING", m.fromID), m.setSlot(m.from, "MIGRATING", m.toID)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *slotMover) setSlot(n rueidis.Client, state, id string) error {
	if err := n.Do(m.ctx, n.B().Arbitrary("CLUSTER", "SETSLOT").Args(strconv.FormatInt(m.slot, 10), state, id).Build()).Error(); err != nil {
		return fmt.Errorf("CLUSTER SETSLOT %d %s %s: %w", m.slot, state, id, err)
	}
	return nil
}

// moveKeys moves the slot's keys whose name contains part (the others stay
// behind: the slot's keys are split between the two masters).
func (m *slotMover) moveKeys(t *testing.T, part string) {
	t.Helper()
	if err := m.moveAll(func(k string) bool { return strings.Contains(k, part) }); err != nil {
		t.Fatal(err)
	}
}

// moveAll moves the keys still on the source that match.
func (m *slotMover) moveAll(match func(string) bool) error {
	ks, err := m.from.Do(m.ctx, m.from.B().ClusterGetkeysinslot().Slot(m.slot).Count(100).Build()).AsStrSlice()
	if err != nil {
		return err
	}
	host, port, _ := strings.Cut(m.toAddr, ":")
	for _, k := range ks {
		if !match(k) {
			continue
		}
		if err := m.from.Do(m.ctx, m.from.B().Arbitrary("MIGRATE").Args(host, port, k, "0", "5000").Build()).Error(); err != nil {
			return fmt.Errorf("MIGRATE %s: %w", k, err)
		}
	}
	return nil
}

// refused sums the TRYAGAIN and ASK replies of the two masters (INFO
// errorstats): calls Redis refused or redirected without running them.
func (m *slotMover) refused() (int64, error) {
	var sum int64
	for _, n := range []rueidis.Client{m.from, m.to} {
		info, err := n.Do(m.ctx, n.B().Info().Section("errorstats").Build()).ToString()
		if err != nil {
			return 0, err
		}
		for line := range strings.Lines(info) {
			for _, k := range []string{"errorstat_TRYAGAIN:count=", "errorstat_ASK:count="} {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), k); ok {
					c, _ := strconv.ParseInt(v, 10, 64)
					sum += c
				}
			}
		}
	}
	return sum, nil
}

// finishWhenRefused waits until Redis has refused a call since now (the call
// the test makes next, while the slot's keys are split), then moves the
// slot's other keys and gives the slot to the target on every master. The
// channel gets the outcome: an error when nothing was refused before the
// context ended (the test would not have exercised the migration).
func (m *slotMover) finishWhenRefused() <-chan error {
	out := make(chan error, 1)
	before, err := m.refused()
	if err != nil {
		out <- err
		return out
	}
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			n, err := m.refused()
			if err != nil {
				out <- err
				return
			}
			if n > before {
				break
			}
			select {
			case <-m.ctx.Done():
				out <- fmt.Errorf("no call was refused while the slot's keys were split: %w", m.ctx.Err())
				return
			case <-tick.C:
			}
		}
		if err := m.moveAll(func(string) bool { return true }); err != nil {
			out <- err
			return
		}
		for _, n := range m.all {
			if err := m.setSlotNode(n); err != nil {
				out <- err
				return
			}
		}
		out <- nil
	}()
	return out
}

// setSlotNode gives the slot to the target on n (a replica refuses: its
// master's view is what counts).
func (m *slotMover) setSlotNode(n rueidis.Client) error {
	err := m.setSlot(n, "NODE", m.toID)
	if err != nil && strings.Contains(err.Error(), "READONLY") {
		return nil
	}
	return err
}
