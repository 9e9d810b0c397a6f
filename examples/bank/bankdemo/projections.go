package bankdemo

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
)

// Projection and read-model names: the CLI and the tests find the demo's data by them.
const (
	BalancesProjection   = "balances"   // read model "balances": owner, balance, status per account
	StatementsProjection = "statements" // read model "statements": a Statement per account
	TransfersProjection  = "transfers"  // the transfer process manager (no read model)
)

// balancesHandler keeps one hash per account: owner, balance, status. Every
// write is guarded by the account event's version, so a redelivered event
// changes nothing (IncrBy included).
func balancesHandler(m *readmodel.Model) projection.HandlerFunc {
	return func(ctx context.Context, ev eventstore.RecordedEvent) error {
		var ops []readmodel.Op
		switch e := ev.Data.(type) {
		case AccountOpened:
			ops = []readmodel.Op{readmodel.SetField("owner", e.Owner), readmodel.SetField("status", "open"), readmodel.IncrBy("balance", 0)}
		case Deposited:
			ops = []readmodel.Op{readmodel.IncrBy("balance", e.Amount)}
		case Withdrawn:
			ops = []readmodel.Op{readmodel.IncrBy("balance", -e.Amount)}
		case AccountClosed:
			ops = []readmodel.Op{readmodel.SetField("status", "closed")}
		default:
			return nil
		}
		_, err := m.Patch(ctx, ev.Stream.ID, ev.Version, ops...)
		return err
	}
}

// Statement is an account's statement: every movement with the balance after it.
type Statement struct {
	Owner   string
	Balance int64
	Lines   []Line
}

// Line is one movement of a Statement.
type Line struct {
	Version uint64
	What    string
	Amount  int64
	Balance int64
	Ref     string
}

// statementsHandler folds each account's events into its Statement, a msgpack
// value in a version-guarded hash (readmodel.Typed).
func statementsHandler(t *readmodel.Typed[Statement]) projection.HandlerFunc {
	return func(ctx context.Context, ev eventstore.RecordedEvent) error {
		_, err := t.Update(ctx, ev.Stream.ID, ev.Version, func(s *Statement) error {
			line := Line{Version: ev.Version, What: ev.Type}
			switch e := ev.Data.(type) {
			case AccountOpened:
				s.Owner = e.Owner
			case Deposited:
				line.Amount, line.Ref = e.Amount, e.Ref
			case Withdrawn:
				line.Amount, line.Ref = -e.Amount, e.Ref
			}
			s.Balance += line.Amount
			line.Balance = s.Balance
			s.Lines = append(s.Lines, line)
			return nil
		})
		return err
	}
}

// transferManager is the process manager of transfers: it reacts to
// TransferRequested by debiting the source and crediting the target, and
// when the credit is refused, compensates by refunding the source. Each step
// is an account command carrying a reference ("<transfer>/debit"), so a
// request delivered again (at-least-once) repeats no step; the outcome is
// recorded on the transfer's own stream.
type transferManager struct {
	accounts  *aggregate.Repository[Account]
	transfers *aggregate.Repository[Transfer]
	writes    *writes // the results of its account writes, for the demo's waits
}

func (m *transferManager) Handle(ctx context.Context, ev eventstore.RecordedEvent) error {
	req, ok := ev.Data.(TransferRequested)
	if !ok {
		return nil // outcomes are our own events
	}
	id := ev.Stream.ID
	a, err := m.accounts.Update(ctx, req.From, aggregate.Decide(withdraw, Withdraw{Amount: req.Amount, Ref: id + "/debit"}))
	if err == nil {
		m.writes.note(a)
	}
	switch {
	case errors.Is(err, ErrNoAccount):
		// A request naming an account that was never opened is a bug upstream,
		// not a business outcome: dead-letter it for an operator to look at.
		return projection.Permanent(fmt.Errorf("transfer %s: debit %s: %w", id, req.From, err))
	case errors.Is(err, ErrInsufficientFunds), errors.Is(err, ErrAccountClosed):
		return m.finish(ctx, id, TransferRejected{Reason: "debit " + req.From + ": " + err.Error()})
	case err != nil:
		return err // retried by the Retry middleware, then dead-lettered
	}

	a, err = m.accounts.Update(ctx, req.To, aggregate.Decide(deposit, Deposit{Amount: req.Amount, Ref: id + "/credit"}))
	if err == nil {
		m.writes.note(a)
	}
	switch {
	case errors.Is(err, ErrAccountClosed), errors.Is(err, ErrNoAccount):
		// The second leg failed: compensate the first.
		refund, rerr := m.accounts.Update(ctx, req.From, aggregate.Decide(deposit, Deposit{Amount: req.Amount, Ref: id + "/refund"}))
		if rerr != nil {
			return fmt.Errorf("transfer %s: refund %s: %w", id, req.From, rerr)
		}
		m.writes.note(refund)
		return m.finish(ctx, id, TransferCompensated{Reason: "credit " + req.To + ": " + err.Error()})
	case err != nil:
		return err
	}
	return m.finish(ctx, id, TransferCompleted{})
}

func (m *transferManager) finish(ctx context.Context, id string, outcome any) error {
	_, err := m.transfers.Update(ctx, id, aggregate.Decide(finishTransfer, finish{outcome}))
	return err
}

// balanceOf reads an entry of the balances read model.
func balanceOf(e readmodel.Entry) (int64, error) {
	return strconv.ParseInt(e.Fields["balance"], 10, 64)
}
