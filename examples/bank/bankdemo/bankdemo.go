// Package bankdemo is Streamfold's bank demo as a library: Run tells the story
// of a few accounts on a Redis and leaves its data there, for the streamfold CLI
// to inspect (and its tests to check).
//
// The story: accounts are aggregates (package aggregate) with snapshots; two
// tellers' concurrent withdrawals conflict and one is retried; transfers are
// carried out by a process manager (a projection) that compensates when the
// second leg fails; two projections keep a balances and a statement read model;
// a stopped projection catches up; reads are served from the client-side
// cache; a snapshot is taken; a retention pass is dry-run.
package bankdemo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/examples/internal/demo"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/retention"
	"github.com/streamfold/streamfold/snapshot"
)

// Partitions is the partition count of the demo's categories.
const Partitions = 4

// story is one run: the store, repositories, read models and runners.
type story struct {
	w         io.Writer
	log       *slog.Logger
	store     *eventstore.Store
	snaps     *snapshot.Store
	accounts  *aggregate.Repository[Account]
	transfers *aggregate.Repository[Transfer]

	balances   *readmodel.Model
	statements *readmodel.Typed[Statement]

	runners map[string]*demo.Runner
	writes  *writes
}

// Run tells the bank story on client, in namespace (which should hold no data
// of an earlier run), narrating on w. It returns the first unexpected error;
// every outcome it narrates is also checked. It leaves its data in Redis —
// entity streams, partition logs, consumer groups, read models, a snapshot and
// one dead letter — and stops its projection runners (releasing their leases)
// before it returns.
func Run(ctx context.Context, w io.Writer, client rueidis.Client, namespace string) (err error) {
	// Warnings and errors of the library go to w too, so that the narration
	// shows them where they happen; routine information is left out. The
	// runners log from their own goroutines: one lock serialises the two.
	w = &syncWriter{w: w}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := eventstore.New(client, eventstore.WithNamespace(namespace), eventstore.WithPartitions(Partitions), eventstore.WithLogger(log))
	if err != nil {
		return err
	}
	d := &story{w: w, log: log, store: store, runners: map[string]*demo.Runner{}, writes: newWrites()}
	d.snaps, err = snapshot.New(store, snapshot.WithPolicy(snapshot.Every(5)), snapshot.WithLogger(log))
	if err != nil {
		return err
	}
	defer func() {
		// Normally done by the story already; after an error, stop what runs.
		err = errors.Join(err, d.stopAll(), d.snaps.Close(context.WithoutCancel(ctx)))
	}()
	if err := d.prepare(ctx, client, namespace); err != nil {
		return err
	}
	d.say("namespace %s: categories account and transfer, %d partitions each", namespace, Partitions)
	return demo.Tell(ctx, d.w, []demo.Step{
		{Title: "1. Projections start: balances, statements, and the transfer process manager", Run: d.start},
		{Title: "2. Accounts are aggregates: commands decide events (Repository.Update + aggregate.Decide)", Run: d.open},
		{Title: "3. A conflict retried: two tellers withdraw from bob at once", Run: d.conflict},
		{Title: "4. Transfers, carried out by a process manager (a projection on category transfer)", Run: d.transfer},
		{Title: "5. The read models (projection.WaitFor, then Model.Get through the client-side cache)", Run: d.readModels},
		{Title: "6. A stopped projection catches up (projection.Status: lag)", Run: d.catchUp},
		{Title: "7. Projections stop: leases released", Run: d.stop},
		{Title: "8. A snapshot (snapshot.Every(5)), read with snapshot.Store.Get", Run: d.snapshot},
		{Title: "9. Retention, dry run (retention.Retainer.Apply(ctx, true))", Run: d.retention},
	})
}

// prepare makes the repositories and read models, and creates the
// categories the projections follow.
func (d *story) prepare(ctx context.Context, client rueidis.Client, namespace string) (err error) {
	store, log := d.store, d.log
	if d.accounts, err = aggregate.NewRepository(store, accountType(), aggregate.WithSnapshots(d.snaps), aggregate.WithLogger(log)); err != nil {
		return err
	}
	if d.transfers, err = aggregate.NewRepository(store, transferType(), aggregate.WithLogger(log)); err != nil {
		return err
	}
	if d.balances, err = readmodel.New(client, namespace, BalancesProjection); err != nil {
		return err
	}
	sm, err := readmodel.New(client, namespace, StatementsProjection)
	if err != nil {
		return err
	}
	d.statements = readmodel.NewTyped[Statement](sm)
	// The projections start before anything is appended: create the
	// categories they follow (a runner never creates one, so that a typo
	// fails instead of creating a category nobody writes to).
	for _, cat := range []string{"account", "transfer"} {
		if _, err := store.CreateCategory(ctx, cat); err != nil {
			return err
		}
	}
	return nil
}

func (d *story) say(format string, args ...any) { fmt.Fprintf(d.w, format+"\n", args...) }

// syncWriter lets the narration and the library's logs share one writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// startRunner starts a runner of p in the background.
func (d *story) startRunner(ctx context.Context, p projection.Projection, opts ...projection.Option) error {
	opts = append([]projection.Option{projection.WithLogger(d.log), projection.WithWorkers(4),
		// A runner can hold a finished event's ack until its idle XREAD
		// block times out (default 2s), when the handler finishes between
		// the reader's last ack-carrying read and its check for work in
		// flight; WaitFor then waits that long. A short block bounds it.
		projection.WithBlock(100 * time.Millisecond)}, opts...)
	r, err := projection.NewRunner(d.store, p, opts...)
	if err != nil {
		return err
	}
	d.runners[p.Name] = demo.Start(ctx, r)
	return nil
}

// stopRunner stops a runner and waits until it has released its leases.
func (d *story) stopRunner(name string) error {
	r := d.runners[name]
	if r == nil {
		return nil
	}
	delete(d.runners, name)
	return r.Stop()
}

func (d *story) stopAll() error { return demo.StopAll(d.runners) }

func (d *story) balancesProjection() projection.Projection {
	return projection.Projection{Name: BalancesProjection, Categories: []string{"account"}, Handler: balancesHandler(d.balances)}
}

func (d *story) statementsProjection() projection.Projection {
	return projection.Projection{Name: StatementsProjection, Categories: []string{"account"}, Handler: statementsHandler(d.statements)}
}

func (d *story) start(ctx context.Context) error {
	pm := &transferManager{accounts: d.accounts, transfers: d.transfers, writes: d.writes}
	retry := projection.WithMiddleware(projection.Retry(projection.RetryPolicy{Attempts: 3, Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}))
	for _, p := range []struct {
		proj projection.Projection
		opts []projection.Option
	}{
		{d.balancesProjection(), nil},
		{d.statementsProjection(), nil},
		{projection.Projection{Name: TransfersProjection, Categories: []string{"transfer"}, Handler: pm}, []projection.Option{retry}},
	} {
		if err := d.startRunner(ctx, p.proj, p.opts...); err != nil {
			return err
		}
		d.say("   %-10s consumer group %q on every partition log of %s", p.proj.Name, p.proj.Name, strings.Join(p.proj.Categories, ", "))
	}
	return nil
}

func (d *story) open(ctx context.Context) error {
	for _, a := range []struct {
		id, owner string
		amount    int64
	}{{"alice", "Alice", 100}, {"bob", "Bob", 50}, {"carol", "Carol", 20}} {
		if _, err := d.accounts.Update(ctx, a.id, aggregate.Decide(open, Open{Owner: a.owner})); err != nil {
			return err
		}
		acc, err := d.accounts.Update(ctx, a.id, aggregate.Decide(deposit, Deposit{Amount: a.amount}))
		if err != nil {
			return err
		}
		d.writes.note(acc)
		d.say("   account-%-6s opened for %s, deposited %d -> balance %d at version %d", a.id, a.owner, a.amount, acc.State().Balance, acc.Version())
	}
	acc, err := d.accounts.Update(ctx, "alice", aggregate.Decide(withdraw, Withdraw{Amount: 30}))
	if err != nil {
		return err
	}
	d.writes.note(acc)
	d.say("   account-alice  withdrew 30 -> balance %d at version %d", acc.State().Balance, acc.Version())
	_, err = d.accounts.Update(ctx, "carol", aggregate.Decide(withdraw, Withdraw{Amount: 500}))
	if !errors.Is(err, ErrInsufficientFunds) {
		return fmt.Errorf("withdrawing 500 from carol: want ErrInsufficientFunds, got %v", err)
	}
	d.say("   account-carol  withdraw 500 refused by the domain, nothing stored: %v", err)
	_, err = d.accounts.Update(ctx, "alice", aggregate.Decide(open, Open{Owner: "Mallory"}))
	if !errors.Is(err, ErrAccountExists) {
		return fmt.Errorf("opening alice twice: want ErrAccountExists, got %v", err)
	}
	d.say("   account-alice  opening it again is refused: %v", err)
	return nil
}

// conflict runs two Updates of bob at once, through two repositories (two
// service instances, say: one repository would queue them behind its local
// lock). Both decide on the same version; one save wins, the other meets
// ErrWrongVersion, and Update loads bob again and reruns the command.
func (d *story) conflict(ctx context.Context) error {
	tellers := []struct {
		name   string
		amount int64
	}{{"teller-1", 20}, {"teller-2", 10}}
	var (
		mu      sync.Mutex
		lines   []string
		loaded  sync.WaitGroup
		results = make([]*aggregate.Aggregate[Account], len(tellers))
		errs    = make([]error, len(tellers))
		wg      sync.WaitGroup
	)
	loaded.Add(len(tellers))
	for i, t := range tellers {
		repo, err := aggregate.NewRepository(d.store, accountType(), aggregate.WithSnapshots(d.snaps), aggregate.WithLogger(d.log))
		if err != nil {
			return err
		}
		wg.Go(func() {
			attempt := 0
			results[i], errs[i] = repo.Update(ctx, "bob", func(a *aggregate.Aggregate[Account]) error {
				attempt++
				mu.Lock()
				lines = append(lines, fmt.Sprintf("%s attempt %d: bob at version %d, balance %d: withdraw %d",
					t.name, attempt, a.Version(), a.State().Balance, t.amount))
				mu.Unlock()
				if attempt == 1 {
					// Both tellers have read bob before either saves.
					loaded.Done()
					loaded.Wait()
				}
				return aggregate.Decide(withdraw, Withdraw{Amount: t.amount})(a)
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, a := range results {
		d.writes.note(a)
	}
	for _, l := range lines {
		d.say("   %s", l)
	}
	if len(lines) != 3 {
		return fmt.Errorf("want 3 command runs (one retried), got %d", len(lines))
	}
	for i, t := range tellers {
		d.say("   %s saved: bob at version %d, balance %d", t.name, results[i].Version(), results[i].State().Balance)
	}
	d.say("   the loser met ErrWrongVersion, loaded bob again and decided again: no lost update")
	return nil
}

// writes keeps the result of the last append to each stream the story
// wrote (aggregate.Aggregate.LastAppend), for projection.WaitFor: the demo
// and the process manager note what their Updates return.
type writes struct {
	mu   sync.Mutex
	last map[eventstore.StreamID]eventstore.AppendResult
}

func newWrites() *writes { return &writes{last: map[eventstore.StreamID]eventstore.AppendResult{}} }

// note records a's last append, if it wrote one and it is the stream's newest.
func (w *writes) note(a interface {
	LastAppend() eventstore.AppendResult
}) {
	res := a.LastAppend()
	if len(res.Positions) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if res.Version > w.last[res.Stream].Version {
		w.last[res.Stream] = res
	}
}

func (w *writes) of(stream eventstore.StreamID) eventstore.AppendResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[stream]
}

// waitFor waits until projection name has applied the last write to stream,
// by name (projection.WaitFor works without the runner).
func (d *story) waitFor(ctx context.Context, name string, stream eventstore.StreamID) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return projection.WaitFor(ctx, d.store, name, d.writes.of(stream))
}

func (d *story) requestTransfer(ctx context.Context, id, from, to string, amount int64) error {
	t, err := d.transfers.Update(ctx, id, aggregate.Decide(requestTransfer, RequestTransfer{From: from, To: to, Amount: amount}))
	if err != nil {
		return err
	}
	d.say("   transfer-%s requested: %d from %s to %s", id, amount, from, to)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return projection.WaitFor(ctx, d.store, TransfersProjection, t.LastAppend())
}

// showTransfer prints the transfer's stream and the account events it caused.
func (d *story) showTransfer(ctx context.Context, id string) (Transfer, error) {
	t, err := d.transfers.Load(ctx, id)
	if err != nil {
		return Transfer{}, err
	}
	for ev, err := range d.store.Read(ctx, eventstore.Stream("transfer", id), 0) {
		if err != nil {
			return Transfer{}, err
		}
		d.say("     transfer-%s v%d %-19s %+v", id, ev.Version, ev.Type, ev.Data)
	}
	s := t.State()
	for _, acc := range []string{s.From, s.To} {
		for ev, err := range d.store.Read(ctx, eventstore.Stream("account", acc), 0) {
			if err != nil {
				return Transfer{}, err
			}
			var ref string
			switch e := ev.Data.(type) {
			case Deposited:
				ref = e.Ref
			case Withdrawn:
				ref = e.Ref
			}
			if strings.HasPrefix(ref, id+"/") {
				d.say("     account-%-6s v%d %-19s %+v", acc, ev.Version, ev.Type, ev.Data)
			}
		}
	}
	return s, nil
}

func (d *story) transfer(ctx context.Context) error {
	d.say("   a: alice -> bob, both open")
	if err := d.requestTransfer(ctx, "t1", "alice", "bob", 40); err != nil {
		return err
	}
	t1, err := d.showTransfer(ctx, "t1")
	if err != nil {
		return err
	}
	if t1.Status != "completed" {
		return fmt.Errorf("transfer t1: %s, want completed", t1.Status)
	}

	d.say("   b: alice -> carol, after carol emptied and closed her account")
	if _, err := d.accounts.Update(ctx, "carol", aggregate.Decide(withdraw, Withdraw{Amount: 20})); err != nil {
		return err
	}
	acc, err := d.accounts.Update(ctx, "carol", aggregate.Decide(closeAccount, Close{}))
	if err != nil {
		return err
	}
	d.writes.note(acc)
	d.say("   account-carol  withdrew 20 and closed at version %d", acc.Version())
	if err := d.requestTransfer(ctx, "t2", "alice", "carol", 25); err != nil {
		return err
	}
	t2, err := d.showTransfer(ctx, "t2")
	if err != nil {
		return err
	}
	if t2.Status != "compensated" {
		return fmt.Errorf("transfer t2: %s, want compensated", t2.Status)
	}
	d.say("   the credit failed, so the process manager refunded the debit: compensated")

	d.say("   c: dave -> bob, but dave never opened an account")
	err = d.requestTransfer(ctx, "t3", "dave", "bob", 10)
	if !errors.Is(err, projection.ErrDeadLettered) {
		return fmt.Errorf("transfer t3: want ErrDeadLettered from WaitFor, got %v", err)
	}
	d.say("   WaitFor: %v", err)
	for l, err := range d.runners[TransfersProjection].DeadLetters().List(ctx, "transfer") {
		if err != nil {
			return err
		}
		d.say("   dead letter %s on transfer/%d: %s v%d, kind %s, %d attempt(s): %s", l.ID, l.Partition, l.Stream, l.Version, l.Kind, l.Attempts, l.Err)
	}
	d.say("   (left for an operator: list it, fix the cause, retry or skip it)")
	return nil
}

var accountIDs = []string{"alice", "bob", "carol"}

func (d *story) readModels(ctx context.Context) error {
	for _, id := range accountIDs {
		for _, name := range []string{BalancesProjection, StatementsProjection} {
			if err := d.waitFor(ctx, name, eventstore.Stream("account", id)); err != nil {
				return err
			}
		}
	}
	d.say("   both projections have applied every account event (WaitFor)")
	d.say("   balances (%s):", d.balances.Key("<id>"))
	var total int64
	for _, id := range accountIDs {
		e, err := d.balances.Get(ctx, id)
		if err != nil {
			return err
		}
		b, err := balanceOf(e)
		if err != nil {
			return err
		}
		total += b
		d.say("     %-6s %-5s balance %4d  %-6s (as of version %d)", id, e.Fields["owner"], b, e.Fields["status"], e.Version)
	}
	d.say("     total %d", total)

	st, v, err := d.statements.Get(ctx, "alice")
	if err != nil {
		return err
	}
	d.say("   statement of alice (%s), as of version %d:", d.statements.Model().Key("alice"), v)
	for _, l := range st.Lines {
		d.say("     v%-2d %-14s %+5d  balance %4d  %s", l.Version, l.What, l.Amount, l.Balance, l.Ref)
	}

	// Reads of unchanged entries are served from process memory (RESP3 client
	// tracking); Redis invalidates them when a projection writes.
	for range 5 {
		for _, id := range accountIDs {
			if _, err := d.balances.Get(ctx, id); err != nil {
				return err
			}
		}
	}
	s := d.balances.Stats()
	d.say("   balances read 18 times: %d hits, %d misses: hit ratio %.0f%%", s.Hits, s.Misses, 100*float64(s.Hits)/float64(max(s.Hits+s.Misses, 1)))
	return nil
}

// lag sums a projection's undelivered and pending entries over its partitions.
func (d *story) lag(ctx context.Context, name string) (lag, pending int64, err error) {
	sts, err := projection.Status(ctx, d.store, name, "account")
	if err != nil {
		return 0, 0, err
	}
	for _, s := range sts {
		lag += s.Lag
		pending += s.Pending
	}
	return lag, pending, nil
}

func (d *story) catchUp(ctx context.Context) error {
	if err := d.stopRunner(StatementsProjection); err != nil {
		return err
	}
	d.say("   statements runner stopped; 8 deposits of interest arrive meanwhile")
	for i := range 4 {
		for _, id := range []string{"alice", "bob"} {
			a, err := d.accounts.Update(ctx, id, aggregate.Decide(deposit, Deposit{Amount: 5, Ref: fmt.Sprintf("interest-%d", i+1)}))
			if err != nil {
				return err
			}
			d.writes.note(a)
		}
	}
	lag, pending, err := d.lag(ctx, StatementsProjection)
	if err != nil {
		return err
	}
	d.say("   statements: lag %d, pending %d (projection.Status, summed over the partitions)", lag, pending)
	if lag != 8 {
		return fmt.Errorf("statements lag %d, want 8", lag)
	}
	if err := d.startRunner(ctx, d.statementsProjection()); err != nil {
		return err
	}
	for _, id := range []string{"alice", "bob"} {
		if err := d.waitFor(ctx, StatementsProjection, eventstore.Stream("account", id)); err != nil {
			return err
		}
	}
	if lag, pending, err = d.lag(ctx, StatementsProjection); err != nil {
		return err
	}
	d.say("   restarted, caught up (WaitFor): lag %d, pending %d", lag, pending)
	if err := d.waitFor(ctx, BalancesProjection, eventstore.Stream("account", "bob")); err != nil {
		return err
	}
	for _, id := range []string{"alice", "bob"} {
		e, err := d.balances.GetFresh(ctx, id)
		if err != nil {
			return err
		}
		st, _, err := d.statements.GetFresh(ctx, id)
		if err != nil {
			return err
		}
		d.say("   %-5s balance %s in balances, %d in its statement (%d lines)", id, e.Fields["balance"], st.Balance, len(st.Lines))
	}
	return nil
}

func (d *story) stop(ctx context.Context) error {
	if err := d.stopAll(); err != nil {
		return err
	}
	for _, name := range []string{BalancesProjection, StatementsProjection, TransfersProjection} {
		cat := "account"
		if name == TransfersProjection {
			cat = "transfer"
		}
		sts, err := projection.Status(ctx, d.store, name, cat)
		if err != nil {
			return err
		}
		var held, lag, dead int64
		for _, s := range sts {
			if s.Owner != "" {
				held++
			}
			lag += s.Lag
			dead += s.DeadLetters
		}
		d.say("   %-10s partitions leased %d, lag %d, dead letters %d", name, held, lag, dead)
		if held != 0 {
			return fmt.Errorf("projection %s: %d leases still held after stop", name, held)
		}
	}
	return nil
}

func (d *story) snapshot(ctx context.Context) error {
	// Snapshots are written in the background; Close flushes the queue.
	if err := d.snaps.Close(ctx); err != nil {
		return err
	}
	st := d.snaps.Stats()
	d.say("   snapshot store: %d queued, %d written", st.Queued, st.Written)
	for _, id := range accountIDs {
		stream := eventstore.Stream("account", id)
		v, err := d.store.Version(ctx, stream)
		if err != nil {
			return err
		}
		sn, err := d.snaps.Get(ctx, stream)
		if errors.Is(err, snapshot.ErrNotFound) {
			d.say("   account-%-6s at version %2d: no snapshot yet", id, v)
			continue
		}
		if err != nil {
			return err
		}
		d.say("   account-%-6s at version %2d: snapshot at version %d (%d bytes of state, schema %d); a load reads it and %d event(s)",
			id, v, sn.Version, len(sn.State), sn.SchemaVersion, v-sn.Version)
	}
	acc, err := d.accounts.Load(ctx, "alice")
	if err != nil {
		return err
	}
	d.say("   account-alice loaded: balance %d at version %d", acc.State().Balance, acc.Version())
	return nil
}

func (d *story) retention(ctx context.Context) error {
	r, err := retention.New(d.store, []retention.Policy{
		{Category: "account", LogMaxLen: 5, CompactIdle: time.Nanosecond, Truncate: true, TruncateKeep: 2},
		{Category: "transfer", LogMaxLen: 5},
	}, retention.WithSnapshots(d.snaps), retention.WithLogger(d.log))
	if err != nil {
		return err
	}
	rep, err := r.Apply(ctx, true)
	if err != nil {
		return err
	}
	d.say("   policies: account logs ~5 entries, compact idle streams, truncate behind snapshots keeping 2; transfer logs ~5 entries")
	sort.Slice(rep.Logs, func(i, j int) bool { return rep.Logs[i].Key < rep.Logs[j].Key })
	for _, l := range rep.Logs {
		limited := ""
		if l.LimitedBy != "" {
			limited = ", held back by group " + l.LimitedBy
		}
		d.say("   log %s/%d: %d entries, would trim %d (%d bytes)%s", l.Category, l.Partition, l.Length, l.Trimmed, l.BytesFreed, limited)
	}
	for _, c := range rep.Compacted {
		d.say("   compact %s: %d entries, %d -> %d bytes", c.Key, c.Entries, c.Before, c.After)
	}
	for _, t := range rep.Truncated {
		d.say("   truncate %s behind its snapshot at v%d: %d event(s) through v%d", t.Stream, t.Snapshot, t.Trimmed, t.Through)
	}
	if len(rep.Skipped) > 0 {
		d.say("   skipped: %v", rep.Skipped)
	}
	d.say("   dry run: nothing changed; %d bytes would be freed", rep.BytesFreed())
	return nil
}
