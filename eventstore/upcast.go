package eventstore

import (
	"errors"
	"fmt"
	"reflect"
)

// ErrUpcast: a stored event could not be brought to its type's current schema
// version (no upcaster for its version, an upcaster failed, or the event was
// written with a newer schema than the registry knows).
var ErrUpcast = errors.New("eventstore: cannot upcast event")

// UpcastError explains why a stored event could not be upcast. The event is
// still yielded, with Raw and SchemaVersion set and Data nil.
type UpcastError struct {
	Type   string
	Stream StreamID
	From   int // the stored schema version
	To     int // the registered (current) schema version
	Reason string
	Err    error // the upcaster's or the codec's error, if any
}

func (e *UpcastError) Error() string {
	msg := fmt.Sprintf("eventstore: cannot upcast %s in stream %s from schema version %d to %d: %s", e.Type, e.Stream, e.From, e.To, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrUpcast and the underlying cause.
func (e *UpcastError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrUpcast, e.Err}
	}
	return []error{ErrUpcast}
}

// upcaster is one step of a type's chain: schema version from to from+1.
type upcaster struct {
	from   int
	in     reflect.Type // the Go type of version from
	decode func(c Codec, raw []byte) (any, error)
	apply  func(any) (any, error)
}

// RegisterUpcast registers one step of the upcaster chain of event type name:
// fn turns a payload stored with schema version fromVersion, decoded as Old,
// into the value of version fromVersion+1, New. Register the current version
// of the type with Register and SchemaVersion(n), and one step for each older
// version 1 … n-1: on read, a stored event of version k is decoded as the Old
// of step k and passed through steps k, k+1, … n-1, so every step's New must be
// the next step's Old, and the last step's New the registered type.
//
// Old types are only ever decoded, never appended: they need not (and should
// not) be registered with Register. Upcasters run on every read of an old
// event (snapshots make that rare): keep them pure and cheap. An error from
// fn is returned as an *UpcastError wrapping it.
func RegisterUpcast[Old, New any](r *Registry, name string, fromVersion int, fn func(Old) (New, error)) error {
	if err := validateTypeName(name); err != nil {
		return err
	}
	if fromVersion < 1 {
		return fmt.Errorf("%w: upcaster of %q from schema version %d: versions start at 1", ErrInvalidEvent, name, fromVersion)
	}
	if fn == nil {
		return fmt.Errorf("%w: upcaster of %q from schema version %d is nil", ErrInvalidEvent, name, fromVersion)
	}
	u := &upcaster{
		from: fromVersion,
		in:   reflect.TypeFor[Old](),
		decode: func(c Codec, raw []byte) (any, error) {
			var v Old
			if err := c.Unmarshal(raw, &v); err != nil {
				return nil, err
			}
			return v, nil
		},
		apply: func(v any) (any, error) {
			old, ok := v.(Old)
			if !ok {
				return nil, fmt.Errorf("upcaster from version %d takes %v, the previous step gave %T", fromVersion, reflect.TypeFor[Old](), v)
			}
			return fn(old)
		},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	steps := r.upcasts[name]
	if steps == nil {
		steps = map[int]*upcaster{}
		r.upcasts[name] = steps
	}
	if _, dup := steps[fromVersion]; dup {
		return fmt.Errorf("%w: upcaster of %q from schema version %d registered twice", ErrInvalidEvent, name, fromVersion)
	}
	steps[fromVersion] = u
	return nil
}

// MustRegisterUpcast is RegisterUpcast that panics on error, for
// package-level setup.
func MustRegisterUpcast[Old, New any](r *Registry, name string, fromVersion int, fn func(Old) (New, error)) {
	if err := RegisterUpcast(r, name, fromVersion, fn); err != nil {
		panic(err)
	}
}

func (r *Registry) upcastStep(name string, from int) *upcaster {
	r.mu.RLock()
	u := r.upcasts[name][from]
	r.mu.RUnlock()
	return u
}

// upcast decodes raw, stored with schema version from, and runs the chain up
// to ti's version. The result has ti's Go type.
func (d entryDecoder) upcast(codec Codec, ti *typeInfo, stream StreamID, from int, raw []byte) (any, error) {
	fail := func(reason string, err error) (any, error) {
		return nil, &UpcastError{Type: ti.name, Stream: stream, From: from, To: ti.schemaVersion, Reason: reason, Err: err}
	}
	if from > ti.schemaVersion {
		// Written by a newer release: decoding it as an older type could
		// silently drop what the new schema added.
		return fail("stored by a newer schema version", nil)
	}
	first := d.reg.upcastStep(ti.name, from)
	if first == nil {
		return fail(fmt.Sprintf("no upcaster registered from version %d", from), nil)
	}
	v, err := first.decode(codec, raw)
	if err != nil {
		return fail(fmt.Sprintf("cannot decode payload as %v", first.in), err)
	}
	for ver := from; ver < ti.schemaVersion; ver++ {
		u := first
		if ver != from {
			if u = d.reg.upcastStep(ti.name, ver); u == nil {
				return fail(fmt.Sprintf("no upcaster registered from version %d", ver), nil)
			}
		}
		if v, err = u.apply(v); err != nil {
			return fail(fmt.Sprintf("upcaster from version %d failed", ver), err)
		}
	}
	if t := reflect.TypeOf(v); t != ti.typ {
		return fail(fmt.Sprintf("the chain ends with %v, not the registered %v", t, ti.typ), nil)
	}
	return v, nil
}
