package aggregate

import (
	"errors"
	"fmt"
	"sync"

	"github.com/streamfold/streamfold/eventstore"
)

// Type describes one aggregate type: its category (the event store's
// category, e.g. "account"), how an event changes its state, and its events.
// Build it once at start-up with NewType and RegisterEvent, then share it.
type Type[S any] struct {
	category     string
	apply        func(*S, any)
	stateVersion int

	mu   sync.Mutex
	reg  *eventstore.Registry               // the type's own events, to check registrations early
	regs []func(*eventstore.Registry) error // replayed into each repository's store registry
}

// TypeOption configures a Type.
type TypeOption func(*typeOptions)

type typeOptions struct{ stateVersion int }

// StateVersion sets the schema version of the state S as stored in snapshots
// (default 1). Raise it whenever S changes incompatibly: snapshots of another
// version are ignored and rebuilt from the events.
func StateVersion(v int) TypeOption { return func(o *typeOptions) { o.stateVersion = v } }

// NewType returns the aggregate type of category, whose state S starts as
// S's zero value and changes by apply. apply must be deterministic and never
// fail: events are facts already decided. It sees every event of the stream,
// the ones it raises itself included; it should ignore types it does not
// know. The category is validated by NewRepository.
func NewType[S any](category string, apply func(state *S, event any), opts ...TypeOption) *Type[S] {
	o := typeOptions{stateVersion: 1}
	for _, f := range opts {
		f(&o)
	}
	return &Type[S]{category: category, apply: apply, stateVersion: o.stateVersion, reg: eventstore.NewRegistry()}
}

// Category returns the type's event store category.
func (t *Type[S]) Category() string { return t.category }

// StateVersion returns the schema version of S in snapshots.
func (t *Type[S]) StateVersion() int { return t.stateVersion }

// EventName returns the registered name of event's type.
func (t *Type[S]) EventName(event any) (string, bool) { return t.reg.NameOf(event) }

// Registry returns the registry of the type's events (for tools and tests;
// repositories copy these registrations into their store's registry).
func (t *Type[S]) Registry() *eventstore.Registry { return t.reg }

// New returns a new aggregate of this type with id, at version 0.
func (t *Type[S]) New(id string) *Aggregate[S] { return &Aggregate[S]{typ: t, id: id} }

// RegisterEvent registers event type E of aggregate type t under name (as
// eventstore.Register does). The registration is copied into the store's
// registry by NewRepository.
func RegisterEvent[E, S any](t *Type[S], name string, opts ...eventstore.TypeOption) error {
	return t.add(func(r *eventstore.Registry) error { return eventstore.Register[E](r, name, opts...) })
}

// MustRegisterEvent is RegisterEvent that panics on error, for package-level
// setup.
func MustRegisterEvent[E, S any](t *Type[S], name string, opts ...eventstore.TypeOption) {
	if err := RegisterEvent[E](t, name, opts...); err != nil {
		panic(err)
	}
}

// RegisterUpcast registers a step of an event type's upcaster chain (see
// eventstore.RegisterUpcast): events stored as Old at schema version
// fromVersion are read as New.
func RegisterUpcast[Old, New, S any](t *Type[S], name string, fromVersion int, fn func(Old) (New, error)) error {
	return t.add(func(r *eventstore.Registry) error { return eventstore.RegisterUpcast(r, name, fromVersion, fn) })
}

func (t *Type[S]) add(reg func(*eventstore.Registry) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := reg(t.reg); err != nil {
		return fmt.Errorf("aggregate %s: %w", t.category, err)
	}
	t.regs = append(t.regs, reg)
	return nil
}

// validate reports why t cannot back a repository: no apply function, or
// a category the store refuses.
func (t *Type[S]) validate() error {
	if t == nil || t.apply == nil {
		return errors.New("aggregate: type without an apply function")
	}
	return eventstore.ValidateCategory(t.category)
}

// registerInto copies the type's registrations into r. Registering the same
// name and type again is a no-op, so several repositories of one type may
// share a store.
func (t *Type[S]) registerInto(r *eventstore.Registry) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, reg := range t.regs {
		if err := reg(r); err != nil {
			return fmt.Errorf("aggregate %s: %w", t.category, err)
		}
	}
	return nil
}
