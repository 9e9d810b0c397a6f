package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// bank is one run of the demo: a store in a fresh namespace and where to narrate.
type bank struct {
	store      *eventstore.Store
	w          io.Writer
	partitions int // of the account category
}

// run tells the demo's story against client, in a fresh namespace, and returns
// the first unexpected error. Every outcome it narrates is also checked: a
// conflict that does not happen or a retry that writes twice is an error.
func run(ctx context.Context, w io.Writer, client rueidis.Client) error {
	ns := "bank-" + strings.ToLower(rand.Text()[:8])
	reg := eventstore.NewRegistry()
	registerEvents(reg)
	store, err := eventstore.New(client, eventstore.WithNamespace(ns), eventstore.WithRegistry(reg))
	if err != nil {
		return err
	}
	parts, err := store.Partitions(ctx, category)
	if err != nil {
		return err
	}
	b := &bank{store: store, w: w, partitions: parts}
	b.say("namespace %s; category %q has %d partitions", ns, category, parts)

	steps := []struct {
		title string
		fn    func(context.Context) error
	}{
		{"1. Open accounts: expected version NoStream", b.open},
		{"2. Deposits and withdrawals, each at an exact expected version", b.moves},
		{"3. Optimistic concurrency: two tellers withdraw from bob at the same version", b.conflict},
		{"4. Idempotent retry: the same append sent twice", b.retry},
		{"5. Atomic transfer between two streams of one partition (AppendMulti)", b.transfer},
		{"6. Balances, folded from each account's stream (Store.Read)", b.balances},
		{"7. The partition log of alice's partition (Store.ReadLog)", b.log},
	}
	for _, s := range steps {
		b.say("\n%s", s.title)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
	}
	return nil
}

func (b *bank) say(format string, args ...any) { fmt.Fprintf(b.w, format+"\n", args...) }

func stream(id string) eventstore.StreamID { return eventstore.Stream(category, id) }

// load folds an account's events into its current state.
func (b *bank) load(ctx context.Context, id string) (Account, error) {
	a := Account{ID: id}
	for ev, err := range b.store.Read(ctx, stream(id), 0) {
		if err != nil {
			return a, fmt.Errorf("read %s: %w", stream(id), err)
		}
		if err := a.Apply(ev.Version, ev.Data); err != nil {
			return a, err
		}
	}
	return a, nil
}

func (b *bank) open(ctx context.Context) error {
	for _, a := range []struct{ id, owner string }{{"alice", "Alice"}, {"bob", "Bob"}, {"carol", "Carol"}} {
		res, err := b.store.Append(ctx, stream(a.id), eventstore.NoStream, eventstore.NewEvent(AccountOpened{Owner: a.owner}))
		if err != nil {
			return err
		}
		b.say("   %-14s opened for %-5s -> version %d, partition %d", res.Stream, a.owner, res.Version, res.Partition)
	}
	_, err := b.store.Append(ctx, stream("alice"), eventstore.NoStream, eventstore.NewEvent(AccountOpened{Owner: "Mallory"}))
	if !errors.Is(err, eventstore.ErrWrongVersion) {
		return fmt.Errorf("opening alice twice: want ErrWrongVersion, got %v", err)
	}
	b.say("   opening account-alice again is refused: %v", err)
	return nil
}

func (b *bank) moves(ctx context.Context) error {
	for _, m := range []struct {
		id       string
		expected uint64
		data     any
	}{
		{"alice", 1, Deposited{Amount: 100}},
		{"bob", 1, Deposited{Amount: 50}},
		{"carol", 1, Deposited{Amount: 20}},
		{"alice", 2, Withdrawn{Amount: 30}},
	} {
		res, err := b.store.Append(ctx, stream(m.id), eventstore.Exact(m.expected), eventstore.NewEvent(m.data))
		if err != nil {
			return err
		}
		b.say("   %-14s %-4s at version %d -> version %d", res.Stream, amount(m.data), m.expected, res.Version)
	}
	return nil
}

func amount(data any) string {
	switch e := data.(type) {
	case Deposited:
		return fmt.Sprintf("+%d", e.Amount)
	case Withdrawn:
		return fmt.Sprintf("-%d", e.Amount)
	}
	return fmt.Sprintf("%T", data)
}

// tellerRun is what one teller did, narrated after both finished so the lines do
// not interleave.
type tellerRun struct {
	name      string
	lines     []string
	conflicts int
	err       error
}

func (b *bank) conflict(ctx context.Context) error {
	bob, err := b.load(ctx, "bob")
	if err != nil {
		return err
	}
	b.say("   both tellers read account-bob: balance %d at version %d", bob.Balance, bob.Version)
	tellers := []struct {
		name   string
		amount int64
	}{{"teller-1", 20}, {"teller-2", 10}}
	runs := make([]tellerRun, len(tellers))
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i, t := range tellers {
		wg.Go(func() {
			<-ready
			runs[i] = b.withdraw(ctx, t.name, bob, t.amount)
		})
	}
	close(ready) // both appends go out together, expecting the same version
	wg.Wait()

	conflicts := 0
	for _, r := range runs {
		if r.err != nil {
			return fmt.Errorf("%s: %w", r.name, r.err)
		}
		conflicts += r.conflicts
	}
	if conflicts != 1 {
		return fmt.Errorf("want exactly one conflict between the tellers, got %d", conflicts)
	}
	// The winner first.
	if runs[0].conflicts > 0 {
		runs[0], runs[1] = runs[1], runs[0]
	}
	for _, r := range runs {
		for _, l := range r.lines {
			b.say("   %s: %s", r.name, l)
		}
	}
	return nil
}

// withdraw is the usual command loop: decide on the state read, append at its
// version, and on ErrWrongVersion read again and decide again.
func (b *bank) withdraw(ctx context.Context, teller string, acct Account, amount int64) (r tellerRun) {
	r.name = teller
	const attempts = 3
	for attempt := 1; ; attempt++ {
		ev, err := acct.Withdraw(amount)
		if err != nil {
			r.err = err
			return r
		}
		res, err := b.store.Append(ctx, stream(acct.ID), eventstore.Exact(acct.Version), eventstore.NewEvent(ev))
		var wrong *eventstore.WrongVersionError
		switch {
		case err == nil:
			r.lines = append(r.lines, fmt.Sprintf("withdrew %d at version %d -> version %d", amount, acct.Version, res.Version))
			return r
		case errors.As(err, &wrong) && attempt < attempts:
			r.conflicts++
			r.lines = append(r.lines, fmt.Sprintf("withdraw %d at version %d refused (ErrWrongVersion): the stream is at version %d",
				amount, acct.Version, wrong.Actual))
			if acct, err = b.load(ctx, acct.ID); err != nil {
				r.err = err
				return r
			}
			r.lines = append(r.lines, fmt.Sprintf("read again: balance %d at version %d; retrying", acct.Balance, acct.Version))
		default:
			r.err = err
			return r
		}
	}
}

func (b *bank) retry(ctx context.Context) error {
	alice, err := b.load(ctx, "alice")
	if err != nil {
		return err
	}
	// NewEvent fixes the event id now, so a resend is recognisably the same event.
	ev := eventstore.NewEvent(Deposited{Amount: 25})
	first, err := b.store.Append(ctx, stream("alice"), eventstore.Exact(alice.Version), ev)
	if err != nil {
		return err
	}
	b.say("   account-alice  +25 at version %d -> version %d, Replayed=%t", alice.Version, first.Version, first.Replayed)
	b.say("   (suppose the reply was lost to a timeout: the client sends the same append again)")
	again, err := b.store.Append(ctx, stream("alice"), eventstore.Exact(alice.Version), ev)
	if err != nil {
		return err
	}
	if !again.Replayed || again.Version != first.Version {
		return fmt.Errorf("resent append: want Replayed at version %d, got %+v", first.Version, again)
	}
	b.say("   account-alice  +25 at version %d -> version %d, Replayed=%t: same event id, nothing written twice",
		alice.Version, again.Version, again.Replayed)
	return nil
}

func (b *bank) transfer(ctx context.Context) error {
	p := eventstore.PartitionOf("alice", b.partitions)
	savings, err := b.savingsID()
	if err != nil {
		return err
	}
	b.say("   account-alice is in partition %d; so is account-%s (eventstore.PartitionOf)", p, savings)

	alice, err := b.load(ctx, "alice")
	if err != nil {
		return err
	}
	out, err := alice.Withdraw(40)
	if err != nil {
		return err
	}
	results, err := b.store.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: stream("alice"), Expected: eventstore.Exact(alice.Version),
			Events: []eventstore.Event{eventstore.NewEvent(out)}},
		eventstore.StreamAppend{Stream: stream(savings), Expected: eventstore.NoStream,
			Events: []eventstore.Event{eventstore.NewEvent(AccountOpened{Owner: "Alice"}), eventstore.NewEvent(Deposited{Amount: out.Amount})}},
	)
	if err != nil {
		return err
	}
	b.say("   moved %d in one atomic append:", out.Amount)
	for _, r := range results {
		b.say("     %-18s -> version %d, %d event(s) appended", r.Stream, r.Version, len(r.Positions))
	}

	// A stream of another partition cannot join: refused before anything is sent.
	for _, other := range []string{"bob", "carol"} {
		if eventstore.PartitionOf(other, b.partitions) == p {
			continue
		}
		_, err := b.store.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: stream("alice"), Expected: eventstore.Any, Events: []eventstore.Event{eventstore.NewEvent(Withdrawn{Amount: 5})}},
			eventstore.StreamAppend{Stream: stream(other), Expected: eventstore.Any, Events: []eventstore.Event{eventstore.NewEvent(Deposited{Amount: 5})}},
		)
		if !errors.Is(err, eventstore.ErrCrossPartition) {
			return fmt.Errorf("transfer alice -> %s: want ErrCrossPartition, got %v", other, err)
		}
		b.say("   alice -> %s is refused, nothing written: %v", other, err)
		break
	}
	return nil
}

// savingsID returns the id of alice's savings account: the first "savings-<n>" in
// alice's partition. One script writes one hash slot, so only streams of one
// partition can be appended atomically.
func (b *bank) savingsID() (string, error) {
	p := eventstore.PartitionOf("alice", b.partitions)
	for n := 1; n <= 100*b.partitions; n++ {
		if id := fmt.Sprintf("savings-%d", n); eventstore.PartitionOf(id, b.partitions) == p {
			return id, nil
		}
	}
	return "", fmt.Errorf("no savings-<n> id in partition %d", p)
}

func (b *bank) balances(ctx context.Context) error {
	savings, err := b.savingsID()
	if err != nil {
		return err
	}
	ids := []string{"alice", "bob", "carol", savings}
	var total int64
	for _, id := range ids {
		a, err := b.load(ctx, id)
		if err != nil {
			return err
		}
		total += a.Balance
		b.say("   %-18s %-6s balance %4d  (version %d)", stream(id), a.Owner, a.Balance, a.Version)
	}
	b.say("   total %d", total)
	return nil
}

func (b *bank) log(ctx context.Context) error {
	p := eventstore.PartitionOf("alice", b.partitions)
	for ev, err := range b.store.ReadLog(ctx, category, p, eventstore.Position{}) {
		if err != nil {
			return err
		}
		b.say("   %-16s %-18s v%d  %-13s %+v", ev.Position, ev.Stream, ev.Version, ev.Type, ev.Data)
	}
	return nil
}
