package readmodel

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound: the entry does not exist (or was deleted) and no loader filled it.
	ErrNotFound = errors.New("readmodel: not found")
	// ErrInvalid: a model name, id, version or option is not usable.
	ErrInvalid = errors.New("readmodel: invalid argument")
	// ErrCorrupt: a stored entry is not in the read-model format.
	ErrCorrupt = errors.New("readmodel: corrupt entry")
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

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
