package readmodel

import (
	"errors"
	"fmt"

	"github.com/streamfold/streamfold/eventstore"
)

var (
	// ErrNotFound: the entry does not exist (or was deleted) and no loader filled it.
	ErrNotFound = errors.New("readmodel: not found")
	// ErrInvalid: a model name, id, version or option is not usable.
	ErrInvalid = errors.New("readmodel: invalid argument")
	// ErrCorrupt: a stored entry is not in the read-model format.
	ErrCorrupt = errors.New("readmodel: corrupt entry")
	// ErrMissingEntry: a patch (or Typed.Update) met an entry that should
	// exist but does not (expired, evicted or deleted by hand), on a model
	// without a Loader to rebuild it. See MissingEntryError.
	ErrMissingEntry = errors.New("readmodel: entry missing")
	// ErrMixedSources: a write of a Model entry came from another stream
	// than the one that fed it (see WithSource and MixedSourcesError).
	ErrMixedSources = errors.New("readmodel: entry fed by several streams")
)

// NotFoundError names the entry that was not found.
type NotFoundError struct {
	Model string
	ID    string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("readmodel: %s %q not found", e.Model, e.ID)
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// MissingEntryError names the entry a patch could not be applied to: the
// event is not the entity's first (version 1, or the first after the
// entry's tombstone), so applying it to an empty entry would give a wrong
// state, and the model has no Loader to rebuild the entry. Nothing was
// written.
type MissingEntryError struct {
	Model   string
	ID      string
	Version uint64 // the event's version
}

func (e *MissingEntryError) Error() string {
	return fmt.Sprintf("readmodel: %s %q: event version %d not applied: the entry is missing (expired, evicted or deleted by hand) "+
		"and the event needs its earlier state; rebuild the read model (projection.Rebuild), or configure a Loader "+
		"(readmodel.WithLoader) so that missing entries are rebuilt on demand", e.Model, e.ID, e.Version)
}

// Unwrap makes errors.Is(err, ErrMissingEntry) true.
func (e *MissingEntryError) Unwrap() error { return ErrMissingEntry }

// MixedSourcesError names a Model entry that refused a write because it
// is fed by another stream: a Model's version guard compares the versions
// of one stream, so writing events of several streams into one entry
// (say, every order of a customer into the customer's entry) would skip
// most of them as "not newer", silently. Nothing was written.
type MixedSourcesError struct {
	Model   string
	ID      string
	Version uint64 // the refused write's event version
	Source  string // the refused write's stream, "<category>-<id>"
}

func (e *MixedSourcesError) Error() string {
	return fmt.Sprintf("readmodel: %s %q: write of %s version %d refused: the entry is fed by another stream, and a Model's version guard "+
		"compares versions of one stream (events of several streams would be skipped as not newer); key the entry by the event's own "+
		"entity (ev.Stream.ID), or use a readmodel.Rollup, whose entries count each source stream's events exactly once",
		e.Model, e.ID, e.Source, e.Version)
}

// Unwrap makes errors.Is(err, ErrMixedSources) true.
func (e *MixedSourcesError) Unwrap() error { return ErrMixedSources }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// validID checks an entry id like an entity id (the key layout's rules).
// The error matches both ErrInvalid, as this package's doc promises, and
// eventstore.ErrInvalidStreamID, with the eventstore's detail.
func validID(id string) error {
	if err := eventstore.ValidateEntityID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
