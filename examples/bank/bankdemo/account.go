package bankdemo

import (
	"errors"
	"fmt"

	"github.com/streamfold/streamfold/aggregate"
)

// The bank's domain, as plain Go: states, the folds that build them from events,
// and commands that decide events or refuse. None of it touches Redis.

// Account events. Ref names the business operation behind a movement (a transfer
// leg, "t1/debit"), so that a command delivered twice is recognised.
type (
	AccountOpened struct{ Owner string }
	Deposited     struct {
		Amount int64
		Ref    string
	}
	Withdrawn struct {
		Amount int64
		Ref    string
	}
	AccountClosed struct{}
)

// Account is the state of one account. Its exported fields are all of it: it is
// what a snapshot stores.
type Account struct {
	Owner   string
	Balance int64
	Closed  bool
	Refs    map[string]bool // operations already applied (transfer legs)
}

func applyAccount(s *Account, ev any) {
	switch e := ev.(type) {
	case AccountOpened:
		s.Owner = e.Owner
	case Deposited:
		s.Balance += e.Amount
		s.remember(e.Ref)
	case Withdrawn:
		s.Balance -= e.Amount
		s.remember(e.Ref)
	case AccountClosed:
		s.Closed = true
	}
}

func (s *Account) remember(ref string) {
	if ref == "" {
		return
	}
	if s.Refs == nil {
		s.Refs = map[string]bool{}
	}
	s.Refs[ref] = true
}

// Domain errors.
var (
	ErrNoAccount         = errors.New("no such account")
	ErrAccountExists     = errors.New("account already open")
	ErrAccountClosed     = errors.New("account closed")
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrNonZeroBalance    = errors.New("balance is not zero")
)

// Account commands.
type (
	Open    struct{ Owner string }
	Deposit struct {
		Amount int64
		Ref    string
	}
	Withdraw struct {
		Amount int64
		Ref    string
	}
	Close struct{}
)

// accountType binds the account domain to the event store category "account".
func accountType() *aggregate.Type[Account] {
	t := aggregate.NewType("account", applyAccount)
	aggregate.MustRegisterEvent[AccountOpened](t, "AccountOpened")
	aggregate.MustRegisterEvent[Deposited](t, "Deposited")
	aggregate.MustRegisterEvent[Withdrawn](t, "Withdrawn")
	aggregate.MustRegisterEvent[AccountClosed](t, "AccountClosed")
	return t
}

func open(s Account, c Open) ([]any, error) {
	if s.Owner != "" {
		return nil, ErrAccountExists
	}
	return []any{AccountOpened(c)}, nil
}

// usable refuses commands on accounts that cannot move money.
func usable(s Account) error {
	switch {
	case s.Owner == "":
		return ErrNoAccount
	case s.Closed:
		return ErrAccountClosed
	}
	return nil
}

func deposit(s Account, c Deposit) ([]any, error) {
	if s.Refs[c.Ref] {
		return nil, nil // already applied: a redelivered command
	}
	if err := usable(s); err != nil {
		return nil, err
	}
	if c.Amount <= 0 {
		return nil, fmt.Errorf("deposit %d: amount must be positive", c.Amount)
	}
	return []any{Deposited(c)}, nil
}

func withdraw(s Account, c Withdraw) ([]any, error) {
	if s.Refs[c.Ref] {
		return nil, nil
	}
	if err := usable(s); err != nil {
		return nil, err
	}
	if c.Amount <= 0 {
		return nil, fmt.Errorf("withdraw %d: amount must be positive", c.Amount)
	}
	if c.Amount > s.Balance {
		return nil, fmt.Errorf("withdraw %d: %w (balance %d)", c.Amount, ErrInsufficientFunds, s.Balance)
	}
	return []any{Withdrawn(c)}, nil
}

func closeAccount(s Account, _ Close) ([]any, error) {
	if err := usable(s); err != nil {
		return nil, err
	}
	if s.Balance != 0 {
		return nil, fmt.Errorf("close: %w (%d)", ErrNonZeroBalance, s.Balance)
	}
	return []any{AccountClosed{}}, nil
}

// Transfer events: a transfer is an aggregate of its own (category "transfer"),
// whose request the transfer process manager carries out.
type (
	TransferRequested struct {
		From, To string
		Amount   int64
	}
	TransferCompleted   struct{}
	TransferCompensated struct{ Reason string } // the source was refunded
	TransferRejected    struct{ Reason string } // nothing moved
)

// Transfer is the state of one transfer.
type Transfer struct {
	From, To string
	Amount   int64
	Status   string // requested, completed, compensated, rejected
	Reason   string
}

func applyTransfer(s *Transfer, ev any) {
	switch e := ev.(type) {
	case TransferRequested:
		s.From, s.To, s.Amount, s.Status = e.From, e.To, e.Amount, "requested"
	case TransferCompleted:
		s.Status = "completed"
	case TransferCompensated:
		s.Status, s.Reason = "compensated", e.Reason
	case TransferRejected:
		s.Status, s.Reason = "rejected", e.Reason
	}
}

func transferType() *aggregate.Type[Transfer] {
	t := aggregate.NewType("transfer", applyTransfer)
	aggregate.MustRegisterEvent[TransferRequested](t, "TransferRequested")
	aggregate.MustRegisterEvent[TransferCompleted](t, "TransferCompleted")
	aggregate.MustRegisterEvent[TransferCompensated](t, "TransferCompensated")
	aggregate.MustRegisterEvent[TransferRejected](t, "TransferRejected")
	return t
}

// RequestTransfer asks for Amount to move From one account To another.
type RequestTransfer TransferRequested

// finish records a transfer's outcome; the outcome event is one of
// TransferCompleted, TransferCompensated and TransferRejected.
type finish struct{ outcome any }

func requestTransfer(s Transfer, c RequestTransfer) ([]any, error) {
	if s.Status != "" {
		return nil, fmt.Errorf("transfer already %s", s.Status)
	}
	if c.Amount <= 0 || c.From == c.To {
		return nil, fmt.Errorf("transfer %d from %s to %s: not a transfer", c.Amount, c.From, c.To)
	}
	return []any{TransferRequested(c)}, nil
}

func finishTransfer(s Transfer, c finish) ([]any, error) {
	if s.Status != "requested" {
		return nil, nil // already finished: a redelivered request
	}
	return []any{c.outcome}, nil
}
