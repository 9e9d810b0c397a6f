// Package shred implements crypto-shredding for event payloads: string
// fields tagged `shred:"personal"` are encrypted (AES-256-GCM) with a key of
// their entity, stored apart from the events. Forgetting the entity deletes
// its key: its personal fields become unreadable for good, in the entity
// stream, the partition logs, archives and backups alike, while the rest of
// its history stays loadable.
//
//	type Registered struct {
//		Email string `shred:"personal"`
//		Plan  string
//	}
//
//	keys := shred.NewKeys(store)        // or shred.NewKeys(store, shred.WithKeyClient(other, "vault"))
//	store, _ = eventstore.New(client, eventstore.WithCodec(shred.NewCodec(eventstore.Msgpack{}, keys)), ...)
//	...
//	keys.Forget(ctx, stream)            // the entity's e-mail is gone everywhere; projections get eventstore.Forgotten
//
// Reads of a forgotten entity return its events with personal fields empty.
// Keys are read through rueidis client-side caching (RESP3 tracking), so a
// hot entity's key costs no round trip and a Forget reaches every reader's
// cache at once; with caching off (RESP2, managed Redis) every decode asks
// Redis. Only top-level exported string fields can be personal.
//
// Archives: package retention hands its Archiver the events as stored, with
// personal fields still sealed (it decodes payloads without the stream), so
// a FileArchiver's lines hold "shred:v1:..." values, never the clear text,
// and need no rewriting after Forget. Restoring an archived payload with
// this Codec and its stream gives the personal fields while the key lives,
// and empty ones after Forget, as reads of the store do. An archiver of
// your own must not decrypt what it is given. (Archives written by
// retention before this was so hold the clear text in data_json.)
//
// Snapshots hold the aggregate's state as folded, personal data in the
// clear: Forget deletes the entity's snapshot and sets a snapshot floor at
// the stream's version, so a snapshot taken before it and written late by a
// background writer is refused (snapshot.ErrStale); the next one is taken
// from events read without the key. Read models are not sealed: Forget
// appends an eventstore.Forgotten event to the stream, and a projection that
// keeps personal data drops or rewrites it when it gets one (its version is
// newer, so the version guard applies the write).
package shred

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/snapshot"
)

// prefix marks an encrypted field value: "shred:v1:<key id, 8 hex>:<base64
// of nonce and ciphertext>". The key id tells a value sealed with a key that
// has since been forgotten (and replaced by a new one) from a tampered value.
const prefix = "shred:v1:"

// A stored key is a 4-byte id followed by the 32-byte AES key.
const storedKeyLen = 4 + 32

// Errors.
var (
	// ErrNoStream: the codec was asked to encode personal fields without
	// knowing their entity (Marshal instead of MarshalStream).
	ErrNoStream = errors.New("shred: personal fields need the stream to encrypt")
	// ErrTampered: a personal field does not decrypt with its entity's key.
	ErrTampered = errors.New("shred: personal field does not decrypt with its entity's key")
)

// Keys stores one AES-256 key per entity, in Redis.
type Keys struct {
	es     *eventstore.Store
	client rueidis.Client
	ns     string
	ttl    time.Duration
}

// KeysOption configures Keys.
type KeysOption func(*Keys)

// WithKeyClient stores the keys with another client and namespace (another
// Redis, another ACL user): keeping keys apart from the events is what makes
// a backup of the events safe to keep after a Forget.
func WithKeyClient(c rueidis.Client, namespace string) KeysOption {
	return func(k *Keys) { k.client, k.ns = c, namespace }
}

// WithCacheTTL bounds how long a key stays in the client-side cache
// (default 1 minute); Redis invalidates it at once when it is deleted.
func WithCacheTTL(d time.Duration) KeysOption { return func(k *Keys) { k.ttl = d } }

// NewKeys returns the key store of es's entities (by default in es's Redis,
// namespace "<ns>:shred").
func NewKeys(es *eventstore.Store, opts ...KeysOption) *Keys {
	k := &Keys{es: es, client: es.Client(), ns: es.Keys().Key("shred"), ttl: time.Minute}
	for _, o := range opts {
		o(k)
	}
	return k
}

func (k *Keys) key(stream eventstore.StreamID) string {
	return k.ns + ":key:" + stream.Category + ":" + stream.ID
}

// get returns the entity's stored key (id and AES key), creating it when
// create is set. ok is false when there is none (never created, or forgotten).
func (k *Keys) get(ctx context.Context, stream eventstore.StreamID, create bool) ([]byte, bool, error) {
	c := k.client
	b, err := c.DoCache(ctx, c.B().Get().Key(k.key(stream)).Cache(), k.ttl).AsBytes()
	if err == nil && len(b) == storedKeyLen {
		return b, true, nil
	}
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, false, fmt.Errorf("shred: key of %s: %w", stream, err)
	}
	// The cache may hold a "no key" answer older than a key's creation:
	// ask Redis itself before treating the entity as forgotten.
	b, err = c.Do(ctx, c.B().Get().Key(k.key(stream)).Build()).AsBytes()
	if err == nil && len(b) == storedKeyLen {
		return b, true, nil
	}
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, false, fmt.Errorf("shred: key of %s: %w", stream, err)
	}
	if !create {
		return nil, false, nil
	}
	fresh := make([]byte, storedKeyLen)
	if _, err := rand.Read(fresh); err != nil {
		return nil, false, err
	}
	// SET NX, then GET when another writer won: the first writer wins and
	// everyone uses its key. Not SET NX GET in one command: Redis 6.2
	// refuses NX with GET. A key forgotten between the two is created
	// afresh, as it would be by the next call.
	for {
		err := c.Do(ctx, c.B().Set().Key(k.key(stream)).Value(rueidis.BinaryString(fresh)).Nx().Build()).Error()
		if err == nil {
			return fresh, true, nil
		}
		if !rueidis.IsRedisNil(err) {
			return nil, false, fmt.Errorf("shred: create key of %s: %w", stream, err)
		}
		old, err := c.Do(ctx, c.B().Get().Key(k.key(stream)).Build()).AsBytes()
		switch {
		case rueidis.IsRedisNil(err):
			continue
		case err != nil:
			return nil, false, fmt.Errorf("shred: create key of %s: %w", stream, err)
		case len(old) != storedKeyLen:
			return nil, false, fmt.Errorf("shred: key of %s is %d bytes", stream, len(old))
		}
		return old, true, nil
	}
}

// Forget forgets an entity: its personal fields can no longer be read
// anywhere. It deletes the entity's key (every sealed field of its events,
// in streams, logs, archives and backups, is unreadable from then on),
// deletes its snapshot and refuses every snapshot taken before now
// (snapshot.Invalidate: the background writer may deliver one late), and
// appends an eventstore.Forgotten event to the entity's stream, so that
// projections drop or rewrite the personal data they derived (a read model
// is not sealed). It returns that append's result, for projection.WaitFor;
// a stream that does not exist (never written, or deleted) gets no event
// and a zero result. Forgetting again is harmless.
//
// An aggregate loaded before the Forget still holds the personal data in
// memory: what it saves afterwards stores it again, under the entity's new
// key. Load again after forgetting an entity.
func (k *Keys) Forget(ctx context.Context, stream eventstore.StreamID) (eventstore.AppendResult, error) {
	if err := stream.Validate(); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := k.client.Do(ctx, k.client.B().Del().Key(k.key(stream)).Build()).Error(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("shred: forget %s: %w", stream, err)
	}
	if err := snapshot.Invalidate(ctx, k.es, stream); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("shred: forget %s: %w", stream, err)
	}
	res, err := k.es.Append(ctx, stream, eventstore.StreamExists, eventstore.NewEvent(eventstore.Forgotten{}))
	if errors.Is(err, eventstore.ErrWrongVersion) {
		return eventstore.AppendResult{}, nil // no live stream: nothing to tell
	}
	if errors.Is(err, eventstore.ErrStreamDamaged) {
		return eventstore.AppendResult{}, fmt.Errorf("shred: forget %s: the key is deleted and its snapshots refused, but the stream is damaged, so projections cannot be told with a Forgotten event: delete the stream (eventstore.Store.Delete), whose deletion marker reaches them: %w", stream, err)
	}
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("shred: forget %s: the key is deleted, but the Forgotten event was not appended (forget again): %w", stream, err)
	}
	return res, nil
}

// Codec wraps a payload codec, encrypting personal fields per entity. It
// implements eventstore.StreamCodec.
type Codec struct {
	inner  eventstore.Codec
	keys   *Keys
	fields sync.Map // reflect.Type -> []int (indexes of personal fields)
}

// NewCodec returns a Codec over inner (typically eventstore.Msgpack{}).
func NewCodec(inner eventstore.Codec, keys *Keys) *Codec { return &Codec{inner: inner, keys: keys} }

var _ eventstore.StreamCodec = (*Codec)(nil)

func (c *Codec) personal(t reflect.Type) []int {
	if v, ok := c.fields.Load(t); ok {
		return v.([]int)
	}
	var idx []int
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.IsExported() && f.Type.Kind() == reflect.String && f.Tag.Get("shred") == "personal" {
				idx = append(idx, i)
			}
		}
	}
	c.fields.Store(t, idx)
	return idx
}

// Marshal encodes v when it has no personal fields (ErrNoStream otherwise).
func (c *Codec) Marshal(v any) ([]byte, error) {
	if t := indirect(reflect.TypeOf(v)); t != nil && len(c.personal(t)) > 0 {
		return nil, ErrNoStream
	}
	return c.inner.Marshal(v)
}

// Unmarshal decodes data; personal fields are left empty (no stream, no key).
func (c *Codec) Unmarshal(data []byte, v any) error {
	if err := c.inner.Unmarshal(data, v); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil
	}
	for _, i := range c.personal(rv.Elem().Type()) {
		if f := rv.Elem().Field(i); strings.HasPrefix(f.String(), prefix) {
			f.SetString("")
		}
	}
	return nil
}

// MarshalStream encrypts v's personal fields with stream's key and encodes it.
func (c *Codec) MarshalStream(ctx context.Context, stream eventstore.StreamID, v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	idx := c.personal(rv.Type())
	if len(idx) == 0 {
		return c.inner.Marshal(v)
	}
	cp := reflect.New(rv.Type()).Elem()
	cp.Set(rv)
	var aead cipher.AEAD
	var keyID string
	for _, i := range idx {
		f := cp.Field(i)
		if f.String() == "" {
			continue
		}
		if aead == nil {
			key, _, err := c.keys.get(ctx, stream, true)
			if err != nil {
				return nil, err
			}
			if aead, err = newAEAD(key[4:]); err != nil {
				return nil, err
			}
			keyID = hex.EncodeToString(key[:4])
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		// The stream is the additional data: a value moved to another
		// entity does not decrypt.
		sealed := aead.Seal(nonce, nonce, []byte(f.String()), []byte(stream.String()))
		f.SetString(prefix + keyID + ":" + base64.RawStdEncoding.EncodeToString(sealed))
	}
	return c.inner.Marshal(cp.Interface())
}

// UnmarshalStream decodes data into v and decrypts its personal fields; a
// forgotten entity's personal fields are left empty.
func (c *Codec) UnmarshalStream(ctx context.Context, stream eventstore.StreamID, data []byte, v any) error {
	if err := c.inner.Unmarshal(data, v); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil
	}
	rv = rv.Elem()
	var aead cipher.AEAD
	var keyID string
	loaded := false
	for _, i := range c.personal(rv.Type()) {
		f := rv.Field(i)
		rest, ok := strings.CutPrefix(f.String(), prefix)
		if !ok {
			continue
		}
		id, enc, ok := strings.Cut(rest, ":")
		if !ok {
			return fmt.Errorf("%w: field %s of %s", ErrTampered, rv.Type().Field(i).Name, stream)
		}
		if !loaded {
			key, found, err := c.keys.get(ctx, stream, false)
			if err != nil {
				return err
			}
			if found {
				if aead, err = newAEAD(key[4:]); err != nil {
					return err
				}
				keyID = hex.EncodeToString(key[:4])
			}
			loaded = true
		}
		if aead == nil || id != keyID {
			// Sealed with a key that has been forgotten: gone for good.
			f.SetString("")
			continue
		}
		sealed, err := base64.RawStdEncoding.DecodeString(enc)
		if err != nil || len(sealed) < aead.NonceSize() {
			return fmt.Errorf("%w: field %s of %s", ErrTampered, rv.Type().Field(i).Name, stream)
		}
		plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(stream.String()))
		if err != nil {
			return fmt.Errorf("%w: field %s of %s", ErrTampered, rv.Type().Field(i).Name, stream)
		}
		f.SetString(string(plain))
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func indirect(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
