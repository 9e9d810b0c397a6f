package eventstore

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/streamfold/streamfold/internal/names"
	"github.com/vmihailenco/msgpack/v5"
)

// Codec encodes event payloads. The default is [Msgpack]. A codec must be
// safe for concurrent use.
type Codec interface {
	// Marshal encodes v. The returned slice is owned by the caller.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into the value v points to.
	Unmarshal(data []byte, v any) error
}

// A StreamCodec is a Codec whose encoding depends on the stream an event
// belongs to, such as per-entity encryption (crypto-shredding, see package
// retention/shred). The store calls the stream methods when its codec has
// them. They may do I/O (fetch a key): decoding happens on every read, so
// such a codec should cache.
type StreamCodec interface {
	Codec
	MarshalStream(ctx context.Context, stream StreamID, v any) ([]byte, error)
	UnmarshalStream(ctx context.Context, stream StreamID, data []byte, v any) error
}

// codecFor binds a StreamCodec to one stream; other codecs are returned as they are.
func codecFor(ctx context.Context, c Codec, stream StreamID) Codec {
	if sc, ok := c.(StreamCodec); ok {
		return boundCodec{ctx: ctx, sc: sc, stream: stream}
	}
	return c
}

type boundCodec struct {
	ctx    context.Context
	sc     StreamCodec
	stream StreamID
}

func (b boundCodec) Marshal(v any) ([]byte, error) { return b.sc.MarshalStream(b.ctx, b.stream, v) }
func (b boundCodec) Unmarshal(data []byte, v any) error {
	return b.sc.UnmarshalStream(b.ctx, b.stream, data, v)
}

// Msgpack is the default codec: msgpack through pooled encoders. Struct
// fields are encoded by name (the `msgpack` tag, else the Go field name), so
// adding fields is backward compatible.
type Msgpack struct{}

var _ Codec = Msgpack{}

// encBuf pairs a pooled encoder with its buffer.
type encBuf struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encPool = sync.Pool{New: func() any {
	e := &encBuf{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	return e
}}

// Marshal implements Codec.
func (Msgpack) Marshal(v any) ([]byte, error) {
	e := encPool.Get().(*encBuf)
	e.buf.Reset()
	err := e.enc.Encode(v)
	out := bytes.Clone(e.buf.Bytes())
	if e.buf.Cap() <= 64<<10 { // do not keep huge buffers alive in the pool
		encPool.Put(e)
	}
	return out, err
}

// Unmarshal implements Codec (msgpack.Unmarshal pools its decoders).
func (Msgpack) Unmarshal(data []byte, v any) error { return msgpack.Unmarshal(data, v) }

// Registry maps event type names to Go types and back. Register every event
// type before appending or reading it. It is safe for concurrent use.
type Registry struct {
	mu     sync.RWMutex
	byName map[string]*typeInfo
	byType map[reflect.Type]*typeInfo
	// upcasts[name][from] turns a payload of schema version from into the
	// next version (see RegisterUpcast).
	upcasts map[string]map[int]*upcaster
}

type typeInfo struct {
	name          string
	typ           reflect.Type
	schemaVersion int
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]*typeInfo{}, byType: map[reflect.Type]*typeInfo{}, upcasts: map[string]map[int]*upcaster{}}
}

// TypeOption configures a registered event type.
type TypeOption func(*typeInfo)

// SchemaVersion sets the schema version written with events of the type
// (default 1). Readers see it in RecordedEvent.SchemaVersion; events stored
// with an older version are brought up to it by the upcasters registered with
// RegisterUpcast.
func SchemaVersion(v int) TypeOption { return func(t *typeInfo) { t.schemaVersion = v } }

// Register adds event type T under name. Registering the same name and type
// again is a no-op; a name or Go type already bound to something else is an
// error.
func Register[T any](r *Registry, name string, opts ...TypeOption) error {
	return r.register(name, reflect.TypeFor[T](), opts...)
}

// MustRegister is Register that panics on error, for package-level setup.
func MustRegister[T any](r *Registry, name string, opts ...TypeOption) {
	if err := Register[T](r, name, opts...); err != nil {
		panic(err)
	}
}

func (r *Registry) register(name string, t reflect.Type, opts ...TypeOption) error {
	if err := validateTypeName(name); err != nil {
		return err
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	ti := &typeInfo{name: name, typ: t, schemaVersion: 1}
	for _, o := range opts {
		o(ti)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byName[name]; ok {
		if old.typ == t && old.schemaVersion == ti.schemaVersion {
			return nil
		}
		return fmt.Errorf("eventstore: event type %q already registered for %v", name, old.typ)
	}
	if old, ok := r.byType[t]; ok {
		return fmt.Errorf("eventstore: Go type %v already registered as %q", t, old.name)
	}
	r.byName[name] = ti
	r.byType[t] = ti
	return nil
}

// Types returns the registered type names.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	return out
}

// NameOf returns the registered name of v's type (v may be a pointer).
func (r *Registry) NameOf(v any) (string, bool) {
	ti := r.lookupType(v)
	if ti == nil {
		return "", false
	}
	return ti.name, true
}

func (r *Registry) lookupType(v any) *typeInfo {
	t := reflect.TypeOf(v)
	if t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Forgotten]() {
		return forgottenInfo()
	}
	r.mu.RLock()
	ti := r.byType[t]
	r.mu.RUnlock()
	return ti
}

func (r *Registry) lookupName(name string) *typeInfo {
	r.mu.RLock()
	ti := r.byName[name]
	r.mu.RUnlock()
	return ti
}

// New returns a pointer to a new zero value of the Go type registered as name.
func (r *Registry) New(name string) (any, bool) {
	ti := r.lookupName(name)
	if ti == nil {
		return nil, false
	}
	return reflect.New(ti.typ).Interface(), true
}

// validateTypeName keeps type names printable and short: they are stored in
// every entry and shown by tools.
func validateTypeName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: type name %q must be 1 to 128 bytes", ErrInvalidEvent, name)
	}
	if name[0] == '$' {
		return fmt.Errorf("%w: type name %q: names starting with '$' are reserved", ErrInvalidEvent, name)
	}
	if !names.Printable(name) {
		return fmt.Errorf("%w: type name %q contains a space or control character", ErrInvalidEvent, name)
	}
	return nil
}
