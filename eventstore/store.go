package eventstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/luascript"
)

var (
	//go:embed lua/version.lua
	versionLua string
	//go:embed lua/append.lua
	appendBodyLua string
	//go:embed lua/delete.lua
	deleteBodyLua string
	//go:embed lua/info.lua
	infoBodyLua string

	// The sources sent: the codes of the Go counterpart (scripts.go), the
	// shared version functions, the script. append.lua takes them after its
	// lone path (see its header), which needs none of them.
	appendLua = luascript.Prelude(appendCodes()...) + insertAt(appendBodyLua, appendVersionMarker, versionLua)
	deleteLua = luascript.Prelude(deleteCodes()...) + versionLua + deleteBodyLua
	infoLua   = versionLua + infoBodyLua
)

// appendVersionMarker begins the line of append.lua that version.lua is
// inserted before.
const appendVersionMarker = "-- version.lua goes here"

// insertAt returns src with part inserted before the line that begins with
// marker. The sources are embedded: a missing marker is a build mistake,
// caught by every test that appends.
func insertAt(src, marker, part string) string {
	i := strings.Index(src, "\n"+marker)
	if i < 0 {
		panic("eventstore: script marker " + marker + " missing")
	}
	return src[:i+1] + part + src[i+1:]
}

// Store is the event store. It is safe for concurrent use; create one per
// namespace and share it.
type Store struct {
	client rueidis.Client
	opts   options
	keys   Keyspace
	dec    entryDecoder

	appendScript *rueidis.Lua
	deleteScript *rueidis.Lua
	infoScript   *rueidis.Lua
	inst         instruments
	server       ServerInfo // learnt at New (server.go)

	cats       sync.Map // category name -> *catCount
	queues     sync.Map // hash tag ("" for all, see shareQueue) -> *commitQueue
	shareQueue bool     // one group-commit queue for every partition (see queueOf)

	lastDecoded atomic.Pointer[decodedKey] // Decode's last key (see decodeKey)
}

// New returns a Store over client, which may be a standalone or a cluster
// client. The store does not own the client: close it yourself after use.
// New checks every option and returns all their problems at once (joined,
// each naming its option). It then asks the server for its version (see
// ServerInfo) and refuses one older than MinServerVersion
// (ErrUnsupportedServer).
func New(client rueidis.Client, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	srv, err := probeServer(client, o.logger)
	if err != nil {
		return nil, err
	}
	// One group-commit queue for every partition only where the client and
	// the server agree that keys of several slots may share a script.
	share := srv.Known() && !srv.Cluster && client.Mode() != rueidis.ClientModeCluster
	if o.inflight == 0 {
		o.inflight = 1
		if share {
			o.inflight = 4
		}
	}
	return &Store{
		server:       srv,
		client:       client,
		opts:         o,
		keys:         NewKeyspace(o.namespace),
		dec:          entryDecoder{reg: o.registry, codec: o.codec},
		appendScript: rueidis.NewLuaScript(appendLua),
		deleteScript: rueidis.NewLuaScript(deleteLua),
		infoScript:   srv.newScript(infoLua, true),
		inst:         newInstruments(&o),
		shareQueue:   share,
	}, nil
}

// Registry returns the store's event type registry.
func (s *Store) Registry() *Registry { return s.opts.registry }

// Keys returns the store's key layout, for reading or repairing its keys by
// hand (a consumer group of one's own on a partition log, see Decode; an
// operator's redis-cli session).
func (s *Store) Keys() Keyspace { return s.keys }

// Client returns the Redis client the store uses, for the packages built on
// the store (they share its connections) and for reading its keys by hand.
func (s *Store) Client() rueidis.Client { return s.client }

// Codec returns the payload codec.
func (s *Store) Codec() Codec { return s.opts.codec }

// categoryRecheck is how often a cached partition count is compared with
// Redis (by one caller; the others use the cache meanwhile). The count never
// changes while Redis keeps it, but Redis may lose it (FLUSHALL, a restart
// without persistence): appends then write it again, and a count that
// another process wrote meanwhile is adopted (the stored count wins).
const categoryRecheck = time.Second

// catCount is the cached partition count of one category.
type catCount struct {
	n       atomic.Int64
	checked atomic.Int64 // unix nanos of the last look at Redis
}

// Partitions returns the partition count of category, as stored in Redis by
// the append that created it (or CreateCategory). It never creates a
// category: one that does not exist yields an *UnknownCategoryError
// (errors.Is ErrUnknownCategory) listing the namespace's categories. The
// answer is cached for the life of the Store.
func (s *Store) Partitions(ctx context.Context, category string) (int, error) {
	if err := ValidateCategory(category); err != nil {
		return 0, err
	}
	return s.partitions(ctx, category, false)
}

// CreateCategory fixes category's partition count in Redis if the category
// is new (the store's configured count: WithPartitions,
// WithCategoryPartitions) and returns the stored count, as the first append
// to the category would. Use it to create a category before anything is
// appended to it, for example before a projection that follows it starts.
func (s *Store) CreateCategory(ctx context.Context, category string) (int, error) {
	if err := ValidateCategory(category); err != nil {
		return 0, err
	}
	return s.partitions(ctx, category, true)
}

// partitions is Partitions (CreateCategory when create is set) for a
// category the caller has validated.
func (s *Store) partitions(ctx context.Context, category string, create bool) (int, error) {
	if v, ok := s.cats.Load(category); ok {
		c := v.(*catCount)
		if last := c.checked.Load(); time.Since(time.Unix(0, last)) > categoryRecheck &&
			c.checked.CompareAndSwap(last, time.Now().UnixNano()) {
			s.recheckPartitions(ctx, category, c, create)
		}
		return int(c.n.Load()), nil
	}
	// Concurrent first uses may all ask Redis: HSETNX makes that harmless,
	// and a failure (a cancelled context) is never cached or shared.
	n, err := s.resolvePartitions(ctx, category, create, 0)
	if err != nil {
		return 0, err
	}
	c := &catCount{}
	c.n.Store(int64(n))
	c.checked.Store(time.Now().UnixNano())
	if v, loaded := s.cats.LoadOrStore(category, c); loaded {
		return int(v.(*catCount).n.Load()), nil
	}
	return n, nil
}

// recheckPartitions compares a cached count with Redis. A count lost from
// Redis is written again by appends (create), with the count the store has
// been using, so other processes keep routing entities as this one does; a
// read leaves it missing. A different stored count (written by another
// process after Redis lost the category) wins. Errors keep the cache: the
// next recheck tries again.
func (s *Store) recheckPartitions(ctx context.Context, category string, c *catCount, create bool) {
	cur := int(c.n.Load())
	n, err := s.resolvePartitions(ctx, category, create, cur)
	if err != nil {
		return
	}
	if n != cur && c.n.CompareAndSwap(int64(cur), int64(n)) {
		s.opts.logger.Warn("eventstore: the category's stored partition count changed (Redis lost it and another process wrote another count); using the stored one",
			"category", category, "stored", n, "was", cur)
	}
}

// resolvePartitions reads category's stored partition count. A category
// that does not exist is created when create is set, with count want (0:
// the configured count), else reported as an *UnknownCategoryError.
func (s *Store) resolvePartitions(ctx context.Context, category string, create bool, want int) (int, error) {
	configured := want == 0
	chosen := false // the caller chose the count: a difference is worth a WARN
	if configured {
		want, chosen = s.opts.partitions, s.opts.partitionsSet
		if n, ok := s.opts.catPartitions[category]; ok {
			want, chosen = n, true
		}
	}
	key := s.keys.Category(category)
	c := s.client
	// Read first: a known category needs no write, so a store on a replica,
	// a read-only user or a Redis out of memory can still read.
	got, err := c.Do(ctx, c.B().Hget().Key(key).Field("partitions").Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		if !create {
			return 0, s.unknownCategory(ctx, category)
		}
		// New category: list it, then fix its partition count (HSETNX: the
		// first writer wins, and everyone reads what it wrote).
		res := c.DoMulti(ctx,
			c.B().Hsetnx().Key(key).Field("partitions").Value(strconv.Itoa(want)).Build(),
			c.B().Hget().Key(key).Field("partitions").Build())
		if err := c.Do(ctx, c.B().Sadd().Key(s.keys.Categories()).Member(category).Build()).Error(); err != nil {
			return 0, fmt.Errorf("eventstore: category %s: %w", category, classify(err))
		}
		if err := res[0].Error(); err != nil {
			return 0, fmt.Errorf("eventstore: category %s: %w", category, classify(err))
		}
		got, err = res[1].AsInt64()
	}
	if err != nil {
		return 0, fmt.Errorf("eventstore: category %s: partitions: %w", category, classify(err))
	}
	if got < 1 || got > MaxPartitions {
		return 0, &CorruptEntryError{Key: key, Reason: fmt.Sprintf("partitions %d out of range", got)}
	}
	if configured && int(got) != want {
		level := slog.LevelDebug // the default count: nothing was asked for
		if chosen {
			level = slog.LevelWarn
		}
		s.opts.logger.Log(ctx, level, "eventstore: category was created with another partition count; using the stored one",
			"category", category, "stored", got, "configured", want)
	}
	return int(got), nil
}

// unknownCategory returns the error of a read naming category, which does
// not exist, with the namespace's categories (none if they cannot be read).
func (s *Store) unknownCategory(ctx context.Context, category string) error {
	known, _ := s.Categories(ctx)
	slices.Sort(known)
	return &UnknownCategoryError{Category: category, Known: known}
}

// Categories lists the categories this namespace has used.
func (s *Store) Categories(ctx context.Context) ([]string, error) {
	return s.client.Do(ctx, s.client.B().Smembers().Key(s.keys.Categories()).Build()).AsStrSlice()
}

// locate returns the partition and key of a stream, creating its category
// if it is new (as appends do).
func (s *Store) locate(ctx context.Context, stream StreamID) (int, string, error) {
	if err := stream.Validate(); err != nil {
		return 0, "", err
	}
	n, err := s.partitions(ctx, stream.Category, true)
	if err != nil {
		return 0, "", err
	}
	p := PartitionOf(stream.ID, n)
	return p, s.keys.Stream(stream, p), nil
}

// locateKnown is locate for reads: known is false, with no error, when the
// stream's category does not exist (so neither does the stream).
func (s *Store) locateKnown(ctx context.Context, stream StreamID) (p int, key string, known bool, err error) {
	if err := stream.Validate(); err != nil {
		return 0, "", false, err
	}
	n, err := s.partitions(ctx, stream.Category, false)
	if errors.Is(err, ErrUnknownCategory) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, err
	}
	p = PartitionOf(stream.ID, n)
	return p, s.keys.Stream(stream, p), true, nil
}
