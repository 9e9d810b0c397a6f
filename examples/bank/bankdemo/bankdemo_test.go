package bankdemo_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/examples/bank/bankdemo"
	"github.com/streamfold/streamfold/examples/internal/demo/demotest"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/snapshot"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func TestRunStandalone(t *testing.T) {
	t.Parallel()
	testRun(t, redistest.Standalone(t))
}

func TestRunCluster(t *testing.T) {
	t.Parallel()
	testRun(t, redistest.Cluster(t))
}

// testRun runs the story and checks what it left in Redis: that is what the
// CLI's tests build on.
func testRun(t *testing.T, tg *redistest.Target) {
	ctx, out := demotest.Tell(t, tg, "Run", bankdemo.Run)
	for _, want := range []string{" attempt 2: bob at version 3", "TransferCompleted", "TransferCompensated", "Ref:t2/refund",
		"statements: lag 8", "lag 0, pending 0", "dry run: nothing changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// The balances read model: alice +100 -30, -40 to bob, -25 +25 (compensated),
	// +4×5 interest; bob +50 -20 -10 (the two tellers) +40 +4×5; carol +20 -20, closed.
	balances, err := readmodel.New(tg.Client, tg.Namespace, bankdemo.BalancesProjection)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		balance, status string
		version         uint64
	}{"alice": {"50", "open", 10}, "bob": {"80", "open", 9}, "carol": {"0", "closed", 4}}
	for id, w := range want {
		e, err := balances.GetFresh(ctx, id)
		if err != nil {
			t.Fatalf("balances %s: %v", id, err)
		}
		if e.Fields["balance"] != w.balance || e.Fields["status"] != w.status || e.Version != w.version {
			t.Errorf("balances %s: %v at version %d, want balance %s, %s at version %d", id, e.Fields, e.Version, w.balance, w.status, w.version)
		}
	}

	// The statements read model agrees, line by line.
	sm, err := readmodel.New(tg.Client, tg.Namespace, bankdemo.StatementsProjection)
	if err != nil {
		t.Fatal(err)
	}
	statements := readmodel.NewTyped[bankdemo.Statement](sm)
	for id, w := range want {
		st, v, err := statements.GetFresh(ctx, id)
		if err != nil {
			t.Fatalf("statement %s: %v", id, err)
		}
		if v != w.version || len(st.Lines) != int(w.version) || st.Lines[len(st.Lines)-1].Balance != st.Balance {
			t.Errorf("statement %s at version %d: %+v", id, v, st)
		}
		if strconv.FormatInt(st.Balance, 10) != w.balance {
			t.Errorf("statement %s: balance %d, want %s", id, st.Balance, w.balance)
		}
	}

	// Transfers: one completed, one compensated, one dead-lettered.
	store, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithPartitions(bankdemo.Partitions))
	if err != nil {
		t.Fatal(err)
	}
	reg := store.Registry()
	eventstore.MustRegister[bankdemo.TransferRequested](reg, "TransferRequested")
	eventstore.MustRegister[bankdemo.TransferCompleted](reg, "TransferCompleted")
	eventstore.MustRegister[bankdemo.TransferCompensated](reg, "TransferCompensated")
	eventstore.MustRegister[bankdemo.TransferRejected](reg, "TransferRejected")
	for id, w := range map[string]string{"t1": "TransferCompleted", "t2": "TransferCompensated", "t3": "TransferRequested"} {
		last, err := store.Last(ctx, eventstore.Stream("transfer", id))
		if err != nil || last.Type != w {
			t.Errorf("transfer %s: last event %q (%v), want %s", id, last.Type, err, w)
		}
	}
	var letters []projection.DeadLetter
	for l, err := range projection.NewDeadLetters(store, bankdemo.TransfersProjection).List(ctx, "transfer") {
		if err != nil {
			t.Fatal(err)
		}
		letters = append(letters, l)
	}
	if len(letters) != 1 || letters[0].Stream != eventstore.Stream("transfer", "t3") || letters[0].Kind != projection.KindFailed {
		t.Errorf("dead letters %+v, want transfer-t3 (failed)", letters)
	}

	// Every runner stopped and released its leases; every group caught up.
	for name, cat := range map[string]string{bankdemo.BalancesProjection: "account", bankdemo.StatementsProjection: "account", bankdemo.TransfersProjection: "transfer"} {
		sts, err := projection.Status(ctx, store, name, cat)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sts {
			if s.Owner != "" || s.Lag != 0 || s.Pending != 0 {
				t.Errorf("%s on %s/%d: owner %q, lag %d, pending %d after Run", name, cat, s.Partition, s.Owner, s.Lag, s.Pending)
			}
		}
	}

	// A snapshot of alice was left beside her stream.
	snaps, err := snapshot.New(store, snapshot.WithPolicy(snapshot.Never()))
	if err != nil {
		t.Fatal(err)
	}
	defer snaps.Close(ctx)
	sn, err := snaps.Get(ctx, eventstore.Stream("account", "alice"))
	if err != nil || sn.Version < 5 {
		t.Errorf("snapshot of alice: %+v, %v; want one at version 5 or later", sn, err)
	}
}
