package aggregate_test

import (
	"errors"
	"testing"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/aggregate/aggregatetest"
)

// The test domain: a bank account, plain Go.
type (
	Opened    struct{ Owner string }
	Deposited struct{ Amount int64 }
	Withdrawn struct{ Amount int64 }

	Account struct {
		Owner    string
		Balance  int64
		Deposits int
		Open     bool
	}

	Open     struct{ Owner string }
	Deposit  struct{ Amount int64 }
	Withdraw struct{ Amount int64 }
)

var (
	errInsufficient = errors.New("insufficient funds")
	errNotOpen      = errors.New("account not open")
	errAlreadyOpen  = errors.New("account already open")
)

func applyAccount(s *Account, ev any) {
	switch e := ev.(type) {
	case Opened:
		s.Owner, s.Open = e.Owner, true
	case Deposited:
		s.Balance += e.Amount
		s.Deposits++
	case Withdrawn:
		s.Balance -= e.Amount
	}
}

func open(s Account, c Open) ([]any, error) {
	if s.Open {
		return nil, errAlreadyOpen
	}
	return []any{Opened{Owner: c.Owner}}, nil
}

func deposit(s Account, c Deposit) ([]any, error) {
	if !s.Open {
		return nil, errNotOpen
	}
	return []any{Deposited{Amount: c.Amount}}, nil
}

func withdraw(s Account, c Withdraw) ([]any, error) {
	if !s.Open {
		return nil, errNotOpen
	}
	if s.Balance < c.Amount {
		return nil, errInsufficient
	}
	return []any{Withdrawn{Amount: c.Amount}}, nil
}

func accountType(t testing.TB, opts ...aggregate.TypeOption) *aggregate.Type[Account] {
	t.Helper()
	typ := aggregate.NewType("account", applyAccount, opts...)
	for _, err := range []error{
		aggregate.RegisterEvent[Opened](typ, "Opened"),
		aggregate.RegisterEvent[Deposited](typ, "Deposited"),
		aggregate.RegisterEvent[Withdrawn](typ, "Withdrawn"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return typ
}

func TestDomain(t *testing.T) {
	typ := accountType(t)
	aggregatetest.Given(typ).
		When(aggregate.Decide(open, Open{Owner: "ann"})).
		Then(t, Opened{Owner: "ann"})
	aggregatetest.Given(typ, Opened{Owner: "ann"}, Deposited{Amount: 50}).
		When(aggregate.Decide(withdraw, Withdraw{Amount: 30})).
		Then(t, Withdrawn{Amount: 30})
	aggregatetest.Given(typ, Opened{Owner: "ann"}, Deposited{Amount: 50}).
		When(aggregate.Decide(withdraw, Withdraw{Amount: 80})).
		ThenError(t, errInsufficient)
	aggregatetest.Given(typ).
		When(aggregate.Decide(deposit, Deposit{Amount: 1})).
		ThenError(t, errNotOpen)
	aggregatetest.Given(typ, Opened{Owner: "bob"}, Deposited{Amount: 5}, Withdrawn{Amount: 2}).
		When(aggregate.Decide(deposit, Deposit{Amount: 10})).
		ThenState(t, Account{Owner: "bob", Balance: 13, Deposits: 2, Open: true})

	out := aggregatetest.Given(typ, Opened{Owner: "cy"}).Run()
	if out.Err != nil || len(out.Raised) != 0 || out.State.Owner != "cy" {
		t.Fatalf("no command: %+v", out)
	}
}

func TestRegisterEventConflicts(t *testing.T) {
	typ := accountType(t)
	if err := aggregate.RegisterEvent[Opened](typ, "Opened"); err != nil {
		t.Fatalf("same registration twice: %v", err)
	}
	if err := aggregate.RegisterEvent[Deposited](typ, "Opened"); err == nil {
		t.Fatal("a name bound to two Go types was accepted")
	}
	if err := aggregate.RegisterEvent[Withdrawn](typ, "bad name"); err == nil {
		t.Fatal("a bad name was accepted")
	}
}

func TestAggregateBookkeeping(t *testing.T) {
	a := accountType(t).New("a1")
	if !a.IsNew() || a.Version() != 0 || a.Stream().String() != "account-a1" {
		t.Fatalf("new aggregate: %v %d %s", a.IsNew(), a.Version(), a.Stream())
	}
	a.Replay(Opened{Owner: "x"}, Deposited{Amount: 3})
	a.Raise(Deposited{Amount: 4})
	if a.Version() != 2 || a.State().Balance != 7 || len(a.Pending()) != 1 {
		t.Fatalf("after replay and raise: v%d %+v %v", a.Version(), a.State(), a.Pending())
	}
}
