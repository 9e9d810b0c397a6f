package projection

import (
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
)

// Projection is a named handler of the events of some categories. The name
// is its consumer group on every partition log of those categories: keep it
// stable, and use a new name to build a new read-model version from scratch.
type Projection struct {
	Name       string
	Categories []string
	Handler    Handler
	// UnknownTypes says what happens to an event whose type is not
	// registered in this process's registry (a type added by a newer
	// writer, or a registration forgotten here): by default it is
	// dead-lettered and its entity parked, so a projection never reports
	// itself caught up past an event it could not understand.
	UnknownTypes UnknownTypes
}

// UnknownTypes is what a projection does with events of unregistered types.
type UnknownTypes int

const (
	// UnknownDeadLetter (the default): the Runner dead-letters the event as
	// [KindUnknownType] and parks its entity; register the type
	// (eventstore.Registry) and retry the entity's dead letters. Rebuild
	// stops with an error matching eventstore.UnknownEventTypeError.
	UnknownDeadLetter UnknownTypes = iota
	// UnknownSkip: the event is acknowledged without calling the handler
	// (logged at DEBUG); Rebuild skips it too.
	UnknownSkip
	// UnknownDeliver: the handler gets the event with Data nil and Raw set
	// (for generic handlers: forwarders, archivers).
	UnknownDeliver
)

// Validate checks the name, categories and handler.
func (p Projection) Validate() error {
	if err := readmodel.ValidateName(p.Name); err != nil {
		return invalid("projection name: %v", err)
	}
	if len(p.Categories) == 0 {
		return invalid("projection %s follows no category", p.Name)
	}
	seen := map[string]bool{}
	for _, c := range p.Categories {
		if err := eventstore.ValidateCategory(c); err != nil {
			return invalid("projection %s: %v", p.Name, err)
		}
		if seen[c] {
			return invalid("projection %s: category %s listed twice", p.Name, c)
		}
		seen[c] = true
	}
	if p.Handler == nil {
		return invalid("projection %s has no handler", p.Name)
	}
	if p.UnknownTypes < UnknownDeadLetter || p.UnknownTypes > UnknownDeliver {
		return invalid("projection %s: UnknownTypes %d", p.Name, p.UnknownTypes)
	}
	return nil
}
