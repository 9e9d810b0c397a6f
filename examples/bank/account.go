package main

import (
	"errors"
	"fmt"

	"github.com/streamfold/streamfold/eventstore"
)

// The bank's domain: what can happen to an account, and the fold that turns an
// account's events into its state. Plain Go: the event store only needs the event
// types registered.

// category is the event store category (aggregate type) of accounts: an account's
// stream is "account-<id>".
const category = "account"

// AccountOpened is the first event of every account.
type AccountOpened struct{ Owner string }

// Deposited adds Amount (in cents, say) to the balance.
type Deposited struct{ Amount int64 }

// Withdrawn takes Amount from the balance.
type Withdrawn struct{ Amount int64 }

// registerEvents adds the account events to r under their stored type names.
// The names are part of the data: renaming a Go type is fine, renaming an entry here is not.
func registerEvents(r *eventstore.Registry) {
	eventstore.MustRegister[AccountOpened](r, "AccountOpened")
	eventstore.MustRegister[Deposited](r, "Deposited")
	eventstore.MustRegister[Withdrawn](r, "Withdrawn")
}

// Account is the state of one account: the fold of its events.
type Account struct {
	ID      string
	Owner   string
	Balance int64
	// Version is the version of the last event folded in: the expected version of
	// the next append decided on this state.
	Version uint64
}

// Apply folds the event with the given version into the account.
func (a *Account) Apply(version uint64, data any) error {
	switch e := data.(type) {
	case AccountOpened:
		a.Owner = e.Owner
	case Deposited:
		a.Balance += e.Amount
	case Withdrawn:
		a.Balance -= e.Amount
	default:
		return fmt.Errorf("account %s: unexpected event %T at version %d", a.ID, data, version)
	}
	a.Version = version
	return nil
}

// ErrInsufficientFunds: a withdrawal larger than the balance.
var ErrInsufficientFunds = errors.New("insufficient funds")

// Withdraw decides a withdrawal on the current state: the event to append, or why not.
func (a *Account) Withdraw(amount int64) (Withdrawn, error) {
	if amount <= 0 {
		return Withdrawn{}, fmt.Errorf("account %s: withdraw %d: amount must be positive", a.ID, amount)
	}
	if amount > a.Balance {
		return Withdrawn{}, fmt.Errorf("account %s: withdraw %d: %w (balance %d)", a.ID, amount, ErrInsufficientFunds, a.Balance)
	}
	return Withdrawn{Amount: amount}, nil
}
