// Package aggregatetest tests aggregate domain code with given/when/then,
// without Redis:
//
//	aggregatetest.Given(account, Opened{Owner: "ann"}, Deposited{Amount: 50}).
//		When(aggregate.Decide(Withdraw, WithdrawCmd{Amount: 80})).
//		ThenError(t, ErrInsufficientFunds)
//
// Besides comparing events, Then checks what a store would refuse or lose:
// every given and raised event must be registered with the aggregate type,
// and every raised event must survive an encode/decode round trip with the
// default codec (unexported fields do not).
package aggregatetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
)

// Scenario is one given/when/then test of aggregate type S.
type Scenario[S any] struct {
	typ     *aggregate.Type[S]
	id      string
	history []any
	when    func(*aggregate.Aggregate[S]) error
}

// Given starts a scenario of an aggregate of typ whose stored history is
// events (none: a new aggregate).
func Given[S any](typ *aggregate.Type[S], events ...any) *Scenario[S] {
	return &Scenario[S]{typ: typ, id: "test", history: events}
}

// ID sets the aggregate's id (default "test").
func (s *Scenario[S]) ID(id string) *Scenario[S] { s.id = id; return s }

// When sets the command: the same callback Repository.Update takes, for
// example aggregate.Decide(handler, cmd).
func (s *Scenario[S]) When(cmd func(*aggregate.Aggregate[S]) error) *Scenario[S] {
	s.when = cmd
	return s
}

// Outcome is what running a scenario gave.
type Outcome[S any] struct {
	Raised []any // the events the command raised
	State  S     // the state after the command (history + raised)
	Err    error // the command's error
}

// Run runs the scenario: folds the history, runs the command (if any).
func (s *Scenario[S]) Run() Outcome[S] {
	a := s.typ.New(s.id)
	a.Replay(s.history...)
	var out Outcome[S]
	if s.when != nil {
		out.Err = s.when(a)
	}
	out.Raised = a.Pending()
	out.State = a.State()
	return out
}

// Then runs the scenario and fails t unless the command succeeded and raised
// exactly want, in order.
func (s *Scenario[S]) Then(t testing.TB, want ...any) Outcome[S] {
	t.Helper()
	out := s.Run()
	s.checkRegistered(t, "given", s.history)
	if out.Err != nil {
		t.Fatalf("command failed: %v", out.Err)
	}
	s.checkRegistered(t, "raised", out.Raised)
	s.checkRoundTrip(t, out.Raised)
	if len(want) == 0 && len(out.Raised) == 0 {
		return out
	}
	if !reflect.DeepEqual(out.Raised, want) {
		t.Fatalf("raised events differ\n got: %s\nwant: %s", describe(out.Raised), describe(want))
	}
	return out
}

// ThenError runs the scenario and fails t unless the command failed with an
// error matching target (errors.Is) and raised nothing.
func (s *Scenario[S]) ThenError(t testing.TB, target error) Outcome[S] {
	t.Helper()
	out := s.Run()
	s.checkRegistered(t, "given", s.history)
	if !errors.Is(out.Err, target) {
		t.Fatalf("error %v, want %v", out.Err, target)
	}
	if len(out.Raised) > 0 {
		t.Fatalf("command failed but raised %s", describe(out.Raised))
	}
	return out
}

// ThenState runs the scenario and fails t unless the command succeeded and
// the state then equals want (reflect.DeepEqual).
func (s *Scenario[S]) ThenState(t testing.TB, want S) Outcome[S] {
	t.Helper()
	out := s.Run()
	s.checkRegistered(t, "given", s.history)
	if out.Err != nil {
		t.Fatalf("command failed: %v", out.Err)
	}
	s.checkRegistered(t, "raised", out.Raised)
	if !reflect.DeepEqual(out.State, want) {
		t.Fatalf("state differs\n got: %+v\nwant: %+v", out.State, want)
	}
	return out
}

func (s *Scenario[S]) checkRegistered(t testing.TB, what string, events []any) {
	t.Helper()
	for i, ev := range events {
		if _, ok := s.typ.EventName(ev); !ok {
			t.Fatalf("%s event %d (%T) is not registered with aggregate type %s (aggregate.RegisterEvent)", what, i, ev, s.typ.Category())
		}
	}
}

// checkRoundTrip decodes each encoded event as the store would on read.
func (s *Scenario[S]) checkRoundTrip(t testing.TB, events []any) {
	t.Helper()
	var codec eventstore.Msgpack
	for i, ev := range events {
		name, _ := s.typ.EventName(ev)
		b, err := codec.Marshal(ev)
		if err != nil {
			t.Fatalf("raised event %d (%s) does not encode: %v", i, name, err)
		}
		ptr, _ := s.typ.Registry().New(name)
		if err := codec.Unmarshal(b, ptr); err != nil {
			t.Fatalf("raised event %d (%s) does not decode: %v", i, name, err)
		}
		if back := reflect.ValueOf(ptr).Elem().Interface(); !reflect.DeepEqual(back, reflect.Indirect(reflect.ValueOf(ev)).Interface()) {
			t.Fatalf("raised event %d (%s) changes when stored (unexported fields?)\nraised: %+v\n  read: %+v", i, name, ev, back)
		}
	}
}

func describe(events []any) string {
	if len(events) == 0 {
		return "(none)"
	}
	out := ""
	for i, ev := range events {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%T%+v", ev, ev)
	}
	return out
}
