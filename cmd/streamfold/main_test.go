package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

type opened struct{ Owner string }
type deposited struct {
	Amount int
	Memo   string
}
type placed struct{ Items []string }

// fixture builds data with the library: two categories, a projection that
// dead-letters one event (a poison amount), a read model, and a consumer
// group with entries delivered to a consumer that never acks ("crashed").
func fixture(t *testing.T, tg *redistest.Target) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[opened](reg, "Opened")
	eventstore.MustRegister[deposited](reg, "Deposited")
	eventstore.MustRegister[placed](reg, "Placed")
	store, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg), eventstore.WithPartitions(4))
	if err != nil {
		t.Fatal(err)
	}
	var last eventstore.AppendResult
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		amount := 10
		if id == "3" {
			amount = 13 // poison
		}
		ev := eventstore.NewEvent(deposited{Amount: amount, Memo: "salary"})
		ev.CorrelationID = "corr-" + id
		res, err := store.Append(ctx, eventstore.Stream("account", id), eventstore.NoStream,
			eventstore.NewEvent(opened{Owner: "owner-" + id}), ev)
		if err != nil {
			t.Fatal(err)
		}
		if id != "3" {
			last = res
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := store.Append(ctx, eventstore.Stream("order", id), eventstore.NoStream,
			eventstore.NewEvent(placed{Items: []string{"x", "y"}})); err != nil {
			t.Fatal(err)
		}
	}

	balances, err := readmodel.New(tg.Client, tg.Namespace, "balances")
	if err != nil {
		t.Fatal(err)
	}
	h := projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
		var d *deposited
		switch x := ev.Data.(type) {
		case deposited:
			d = &x
		case *deposited:
			d = x
		}
		if d != nil {
			if d.Amount == 13 {
				return projection.Permanent(errors.New("poison amount 13"))
			}
			_, err := balances.Patch(ctx, ev.Stream.ID, ev.Version, readmodel.IncrBy("balance", int64(d.Amount)))
			return err
		}
		_, err := balances.Patch(ctx, ev.Stream.ID, ev.Version, readmodel.SetField("owner", "x"))
		return err
	})
	r, err := projection.NewRunner(store, projection.Projection{Name: "balances", Categories: []string{"account"}, Handler: h},
		projection.WithInstanceID("fixture-runner"), projection.WithBlock(50*time.Millisecond), projection.WithWorkers(2))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	if err := r.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	// Wait for the poison letter too.
	for ctx.Err() == nil {
		sts, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var dl int64
		for _, s := range sts {
			dl += s.DeadLetters
		}
		if dl > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A consumer group "audit" on the order logs whose consumer read and
	// died: its entries stay pending.
	c := tg.Client
	for p := range 4 {
		log := store.Keys().Log("order", p)
		if err := c.Do(ctx, c.B().XgroupCreate().Key(log).Group("audit").Id("0").Mkstream().Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, c.B().Xreadgroup().Group("audit", "crashed-1").Count(10).Streams().Key(log).Id(">").Build()).Error(); err != nil && !rueidis.IsRedisNil(err) {
			t.Fatal(err)
		}
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, tg *redistest.Target, args ...string) result {
	t.Helper()
	url := "redis://" + strings.Join(tg.Addrs, ",redis://")
	full := append([]string{"--redis", url, "--namespace", tg.Namespace}, args...)
	var out, errb bytes.Buffer
	code := run(context.Background(), full, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, tg *redistest.Target, args ...string) string {
	t.Helper()
	r := cli(t, tg, args...)
	if r.code != 0 {
		t.Fatalf("streamfold %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func okJSON(t *testing.T, tg *redistest.Target, v any, args ...string) {
	t.Helper()
	out := ok(t, tg, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("streamfold %s: bad JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s: want %q in:\n%s", what, sub, s)
		}
	}
}

// onEveryTarget runs test in parallel against a standalone server and a
// cluster.
func onEveryTarget(t *testing.T, test func(t *testing.T, tg *redistest.Target)) {
	for _, tc := range []struct {
		name   string
		target func(testing.TB) *redistest.Target
	}{{"standalone", redistest.Standalone}, {"cluster", redistest.Cluster}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			test(t, tc.target(t))
		})
	}
}

func TestCommands(t *testing.T) {
	onEveryTarget(t, func(t *testing.T, tg *redistest.Target) {
		fixture(t, tg)
		testCommands(t, tg)
	})
}

func testCommands(t *testing.T, tg *redistest.Target) {
	t.Run("streams", func(t *testing.T) {
		out := ok(t, tg, "streams")
		mustContain(t, "streams", out, "CATEGORY", "PARTITIONS", "ENTITIES", "account", "order")
		var v struct {
			Categories []categoryInfo `json:"categories"`
		}
		okJSON(t, tg, &v, "streams")
		want := map[string][2]int64{"account": {5, 10}, "order": {3, 3}}
		for _, c := range v.Categories {
			w := want[c.Category]
			if c.Entities != w[0] || c.LogEntries != w[1] || c.Partitions != 4 || c.MemoryBytes <= 0 {
				t.Errorf("streams %s: %+v, want entities %d, log entries %d, 4 partitions, memory", c.Category, c, w[0], w[1])
			}
		}
		if len(v.Categories) != 2 {
			t.Errorf("streams: %d categories, want 2", len(v.Categories))
		}
	})

	t.Run("read", func(t *testing.T) {
		out := ok(t, tg, "read", "account-1")
		mustContain(t, "read", out, "VERSION", "Opened", "Deposited", `"Amount":10`, "correlation=corr-1")
		var evs []eventJSON
		okJSON(t, tg, &evs, "read", "account-1")
		if len(evs) != 2 || evs[0].Version != 1 || evs[1].Type != "Deposited" || evs[1].CorrelationID != "corr-1" {
			t.Fatalf("read: %+v", evs)
		}
		if d, _ := evs[1].Data.(map[string]any); d["Amount"] != float64(10) || d["Memo"] != "salary" {
			t.Errorf("read: data %#v", evs[1].Data)
		}
		okJSON(t, tg, &evs, "read", "account-1", "--backward", "--limit", "1")
		if len(evs) != 1 || evs[0].Version != 2 {
			t.Errorf("read --backward --limit 1: %+v", evs)
		}
		okJSON(t, tg, &evs, "read", "--from", "2", "account-1")
		if len(evs) != 1 || evs[0].Version != 2 {
			t.Errorf("read --from 2: %+v", evs)
		}
		r := cli(t, tg, "read", "account-nope")
		if r.code != 1 || !strings.Contains(r.stderr, "not found (never written)") || !strings.Contains(r.stderr, "account-1") {
			t.Errorf("read missing: %+v, want the closest entity ids (account-1)", r)
		}
		r = cli(t, tg, "read", "ledger-1")
		if r.code != 1 || !strings.Contains(r.stderr, "known: account, order") {
			t.Errorf("read unknown category: %+v", r)
		}
	})

	t.Run("groups", func(t *testing.T) {
		out := ok(t, tg, "groups")
		mustContain(t, "groups", out, "PROJECTION", "LEASE HOLDER", "balances", "audit")
		var rows []groupRow
		okJSON(t, tg, &rows, "groups")
		var auditPending, balancesDLQ int64
		for _, r := range rows {
			switch r.Projection {
			case "audit":
				auditPending += r.Pending
			case "balances":
				balancesDLQ += r.DeadLetters
				if r.Lag != 0 || r.Pending != 0 {
					t.Errorf("groups balances: %+v", r)
				}
			}
		}
		if auditPending != 3 || balancesDLQ != 1 {
			t.Errorf("groups: audit pending %d (want 3), balances dlq %d (want 1)", auditPending, balancesDLQ)
		}
		for _, behind := range []string{"--behind", "--active"} { // --active: the old name
			okJSON(t, tg, &rows, "groups", "--projection", "audit", behind)
			if len(rows) == 0 {
				t.Errorf("groups --projection audit %s: no rows", behind)
			}
			for _, r := range rows {
				if r.Projection != "audit" || r.Pending == 0 || r.Consumers != 1 {
					t.Errorf("groups --projection audit %s: %+v", behind, r)
				}
			}
		}
		r := cli(t, tg, "groups", "--projection", "nope")
		if r.code != 1 || !strings.Contains(r.stderr, "known: audit, balances") {
			t.Errorf("groups unknown: %+v", r)
		}
	})

	t.Run("pending", func(t *testing.T) {
		out := ok(t, tg, "pending")
		mustContain(t, "pending", out, "IDLE", "DELIVERIES", "crashed-1", "order-a", "Placed")
		var es []pendingEntry
		okJSON(t, tg, &es, "pending")
		if len(es) != 3 {
			t.Fatalf("pending: %+v", es)
		}
		for _, e := range es {
			if e.Projection != "audit" || e.Consumer != "crashed-1" || e.Deliveries != 1 || e.Version != 1 || !strings.HasPrefix(e.Stream, "order-") {
				t.Errorf("pending: %+v", e)
			}
		}
		okJSON(t, tg, &es, "pending", "--min-idle", "1h")
		if len(es) != 0 {
			t.Errorf("pending --min-idle 1h: %+v", es)
		}
	})

	t.Run("dlq", func(t *testing.T) {
		out := ok(t, tg, "dlq", "list", "balances")
		mustContain(t, "dlq list", out, "REF", "failed", "account-3", "poison amount 13", "dlq retry balances")
		var ls []letterJSON
		okJSON(t, tg, &ls, "dlq", "list", "balances")
		if len(ls) != 1 || ls[0].Kind != projection.KindFailed || ls[0].Stream != "account-3" || ls[0].Version != 2 || ls[0].Event == nil {
			t.Fatalf("dlq list: %+v", ls)
		}
		if d, _ := ls[0].Event.Data.(map[string]any); d["Amount"] != float64(13) {
			t.Errorf("dlq list: event data %#v", ls[0].Event.Data)
		}
		out = ok(t, tg, "dlq", "retry", "balances", "account-3")
		mustContain(t, "dlq retry", out, "retry of account-3", "no runner holds")
		out = ok(t, tg, "dlq", "skip", "balances", ls[0].Ref)
		mustContain(t, "dlq skip", out, "skip of letter "+ls[0].Ref)
		var req requestJSON
		okJSON(t, tg, &req, "dlq", "skip", "balances", ls[0].ID)
		if req.Op != "skip" || req.Stream != "account-3" {
			t.Errorf("dlq skip --json: %+v", req)
		}
		for _, args := range [][]string{{"dlq", "retry", "balances", "account-1"}, {"dlq", "skip", "balances", "account/0/1-1"}, {"dlq", "list", "nope"}} {
			if r := cli(t, tg, args...); r.code != 1 {
				t.Errorf("%v: %+v", args, r)
			}
		}
		r := cli(t, tg, "dlq", "list", "nope")
		mustContain(t, "dlq unknown projection", r.stderr, "known: audit, balances")
		if r := cli(t, tg, "dlq", "purge", "balances"); r.code != 2 {
			t.Errorf("dlq purge: %+v", r)
		}
	})

	t.Run("rebuild", func(t *testing.T) {
		r := cli(t, tg, "rebuild", "balances")
		if r.code != 0 {
			t.Fatalf("rebuild: %+v", r)
		}
		mustContain(t, "rebuild", r.stdout, "account", "total", "projection.Rebuild", "cannot run it")
		mustContain(t, "rebuild progress", r.stderr, "5/5 entities")
		var plan rebuildPlan
		okJSON(t, tg, &plan, "rebuild", "balances", "--progress=false")
		if !plan.Known || plan.Entities != 5 || plan.Events != 10 || len(plan.Categories) != 1 {
			t.Errorf("rebuild: %+v", plan)
		}
		okJSON(t, tg, &plan, "rebuild", "balances_v2", "--category", "account,order", "--progress=false")
		if plan.Known || plan.Entities != 8 || plan.Events != 13 {
			t.Errorf("rebuild new: %+v", plan)
		}
		r = cli(t, tg, "rebuild", "balances_v2")
		if r.code != 1 || !strings.Contains(r.stderr, "--category") {
			t.Errorf("rebuild unknown without --category: %+v", r)
		}
	})

	t.Run("trim", func(t *testing.T) {
		out := ok(t, tg, "trim", "--dry-run", "--max-len", "1")
		mustContain(t, "trim", out, "HELD BACK BY", "would trim (dry run)")
		var rep struct {
			DryRun bool
			Logs   []struct {
				Category  string
				Length    int64
				LimitedBy string
			}
		}
		okJSON(t, tg, &rep, "trim", "--dry-run", "--max-len", "1", "--category", "order")
		if !rep.DryRun || len(rep.Logs) == 0 {
			t.Fatalf("trim --dry-run: %+v", rep)
		}
		ok(t, tg, "trim", "--max-len", "1000", "--category", "account")
	})

	t.Run("compact", func(t *testing.T) {
		out := ok(t, tg, "compact", "--dry-run", "--idle", "1h")
		mustContain(t, "compact", out, "would compact (dry run) 0 streams", "skipped 8: not idle long enough")
		var rep struct {
			DryRun  bool
			Skipped map[string]int
		}
		okJSON(t, tg, &rep, "compact", "--dry-run", "--idle", "1h", "--category", "account")
		if !rep.DryRun || rep.Skipped["not idle long enough"] != 5 {
			t.Errorf("compact --dry-run: %+v", rep)
		}
	})

	t.Run("stats", func(t *testing.T) {
		out := ok(t, tg, "stats")
		mustContain(t, "stats", out, "category account", "read model balances v1", "keyspace hits", "readmodel.Model.Stats")
		var st statsJSON
		okJSON(t, tg, &st, "stats")
		if len(st.Categories) != 2 || len(st.ReadModels) != 1 || st.ReadModels[0].Keys != 5 || st.Server.Nodes < 1 {
			t.Errorf("stats: %+v", st)
		}
	})
}

func TestUsageAndConnectionErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: streamfold"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"read"}, 2, "read takes one stream"},
		{[]string{"read", "nodash"}, 2, "category-id"},
		{[]string{"trim", "--dry-run"}, 2, "--max-len"},
		{[]string{"compact", "--dry-run"}, 2, "--idle"},
		{[]string{"dlq"}, 2, "dlq list <projection>"},
		{[]string{"--namespace", "a b", "streams"}, 2, "--namespace"},
		{[]string{"streams", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--redis", "redis://127.0.0.1:1", "streams"}, 1, "cannot reach Redis at 127.0.0.1:1 (from --redis)"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "rebuild") {
		t.Errorf("help: %d %q", code, out.String())
	}
}
