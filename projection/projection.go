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
}

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
	return nil
}
