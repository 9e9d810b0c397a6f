package bankdemo

import (
	"testing"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/aggregate/aggregatetest"
)

// The domain rules the transfer process manager relies on, without Redis.
func TestAccountRules(t *testing.T) {
	account := accountType()
	opened := AccountOpened{Owner: "Alice"}

	aggregatetest.Given(account, opened, Deposited{Amount: 50}).
		When(aggregate.Decide(withdraw, Withdraw{Amount: 80})).
		ThenError(t, ErrInsufficientFunds)

	// A leg applied once is not applied again: a redelivered request is harmless.
	aggregatetest.Given(account, opened, Deposited{Amount: 50}, Withdrawn{Amount: 20, Ref: "t1/debit"}).
		When(aggregate.Decide(withdraw, Withdraw{Amount: 20, Ref: "t1/debit"})).
		Then(t)

	// A closed account refuses credits: the second leg of a transfer fails.
	aggregatetest.Given(account, opened, AccountClosed{}).
		When(aggregate.Decide(deposit, Deposit{Amount: 25, Ref: "t2/credit"})).
		ThenError(t, ErrAccountClosed)

	aggregatetest.Given(account).
		When(aggregate.Decide(deposit, Deposit{Amount: 10, Ref: "t3/debit"})).
		ThenError(t, ErrNoAccount)

	aggregatetest.Given(account, opened, Deposited{Amount: 5}).
		When(aggregate.Decide(closeAccount, Close{})).
		ThenError(t, ErrNonZeroBalance)
}

func TestTransferRules(t *testing.T) {
	transfer := transferType()
	requested := TransferRequested{From: "alice", To: "bob", Amount: 40}

	aggregatetest.Given(transfer).
		When(aggregate.Decide(requestTransfer, RequestTransfer(requested))).
		Then(t, requested)

	// An outcome is recorded once.
	aggregatetest.Given(transfer, requested, TransferCompensated{Reason: "closed"}).
		When(aggregate.Decide(finishTransfer, finish{TransferCompleted{}})).
		Then(t)
}
