package snapshot_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
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
	_, streamKey, err := es.Locate(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	m := newSlotMover(t, ctx, c, streamKey)
	for _, k := range m.keys() {
		if strings.Contains(k, ":snap:") {
			m.move(k)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond) // the load below is refused meanwhile
		m.finish()
	}()
	snap, got := load(t, snaps, stream, 1)
	if snap != 3 || len(got) != 2 {
		t.Fatalf("load during the migration: snapshot v%d, events %v; want v3 and 4, 5", snap, got)
	}
	<-done

	// The same for a save, migrating the slot back.
	m = newSlotMover(t, ctx, c, streamKey)
	for _, k := range m.keys() {
		if strings.Contains(k, ":s:") {
			m.move(k)
		}
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		m.finish()
	}()
	if ok, err := snaps.Save(ctx, stream, snapshot.Snapshot{Version: 5, SchemaVersion: 1, State: []byte("s5")}); err != nil || !ok {
		t.Fatalf("save during the migration: %v %v", ok, err)
	}
	if snap, got := load(t, snaps, stream, 1); snap != 5 || len(got) != 0 {
		t.Fatalf("after: snapshot v%d, events %v; want v5", snap, got)
	}
}

// slotMover migrates the slot of a key from its master to another, the way
// redis-cli --cluster reshard does, one key at a time.
type slotMover struct {
	t            *testing.T
	ctx          context.Context
	slot         int64
	from, to     rueidis.Client
	toAddr       string
	fromID, toID string
	all          map[string]rueidis.Client
}

func newSlotMover(t *testing.T, ctx context.Context, c rueidis.Client, key string) *slotMover {
	t.Helper()
	m := &slotMover{t: t, ctx: ctx, all: c.Nodes()}
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
	m.setSlot(m.to, "IMPORTING", m.fromID)
	m.setSlot(m.from, "MIGRATING", m.toID)
	return m
}

func (m *slotMover) setSlot(n rueidis.Client, state, id string) {
	m.t.Helper()
	if err := n.Do(m.ctx, n.B().Arbitrary("CLUSTER", "SETSLOT").Args(strconv.FormatInt(m.slot, 10), state, id).Build()).Error(); err != nil {
		m.t.Fatalf("CLUSTER SETSLOT %d %s %s: %v", m.slot, state, id, err)
	}
}

func (m *slotMover) keys() []string {
	m.t.Helper()
	ks, err := m.from.Do(m.ctx, m.from.B().ClusterGetkeysinslot().Slot(m.slot).Count(100).Build()).AsStrSlice()
	if err != nil {
		m.t.Fatal(err)
	}
	return ks
}

func (m *slotMover) move(key string) {
	m.t.Helper()
	host, port, _ := strings.Cut(m.toAddr, ":")
	if err := m.from.Do(m.ctx, m.from.B().Arbitrary("MIGRATE").Args(host, port, key, "0", "5000").Build()).Error(); err != nil {
		m.t.Fatalf("MIGRATE %s: %v", key, err)
	}
}

// finish moves the slot's other keys and gives the slot to the target on
// every master.
func (m *slotMover) finish() {
	for _, k := range m.keys() {
		m.move(k)
	}
	for _, n := range m.all {
		_ = n.Do(m.ctx, n.B().Arbitrary("CLUSTER", "SETSLOT").Args(strconv.FormatInt(m.slot, 10), "NODE", m.toID).Build()).Error()
	}
}
