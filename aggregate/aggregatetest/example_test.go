package aggregatetest_test

import (
	"errors"
	"fmt"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/aggregate/aggregatetest"
)

type (
	Deposited struct{ Amount int64 }
	Withdrawn struct{ Amount int64 }
	Account   struct{ Balance int64 }
	Withdraw  struct{ Amount int64 }
)

var errInsufficient = errors.New("insufficient funds")

func withdraw(s Account, c Withdraw) ([]any, error) {
	if s.Balance < c.Amount {
		return nil, errInsufficient
	}
	return []any{Withdrawn{Amount: c.Amount}}, nil
}

// A given/when/then run of a command handler, without Redis. In a test,
// Then(t, events...) and ThenError(t, err) compare and fail t.
func Example() {
	account := aggregate.NewType("account", func(s *Account, ev any) {
		switch e := ev.(type) {
		case Deposited:
			s.Balance += e.Amount
		case Withdrawn:
			s.Balance -= e.Amount
		}
	})
	aggregate.MustRegisterEvent[Deposited](account, "Deposited")
	aggregate.MustRegisterEvent[Withdrawn](account, "Withdrawn")

	out := aggregatetest.Given(account, Deposited{Amount: 50}).
		When(aggregate.Decide(withdraw, Withdraw{Amount: 30})).
		Run()
	fmt.Printf("raised %+v, balance %d, error %v\n", out.Raised, out.State.Balance, out.Err)

	out = aggregatetest.Given(account, Deposited{Amount: 50}).
		When(aggregate.Decide(withdraw, Withdraw{Amount: 80})).
		Run()
	fmt.Printf("raised %+v, balance %d, error %v\n", out.Raised, out.State.Balance, out.Err)
	// Output:
	// raised [{Amount:30}], balance 20, error <nil>
	// raised [], balance 50, error insufficient funds
}
