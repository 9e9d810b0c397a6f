package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/examples/internal/demo"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
)

// blockWorkaround shortens the runners' idle XREAD block (default 2s): the
// runner can hold a finished event's ack until its block times out, when the
// handler finishes between the reader's last ack-carrying read and its check
// for work in flight, and WaitFor then waits that long.
const blockWorkaround = 100 * time.Millisecond

// cacheTTL is the profiles' TTL: short, so that the demo sees an entry expire.
const cacheTTL = time.Second

// story is one run: the store, the profiles read model in its schema versions, and the consumers.
type story struct {
	w      io.Writer
	log    *slog.Logger
	client rueidis.Client
	store  *eventstore.Store
	// models are the schema versions of the profiles read model, each with its
	// own loader; versions holds which one is served.
	models   map[int]*readmodel.Model
	versions *readmodel.Versions
	// verify reads schema 1 for the demo's own checks, with counters of its
	// own so that the figures shown count only the narrated reads.
	verify  *readmodel.Model
	runners map[int]*demo.Runner
}

// run tells the user-cache story on client, in namespace, narrating on w.
func run(ctx context.Context, w io.Writer, client rueidis.Client, namespace string) (err error) {
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := eventstore.NewRegistry()
	registerEvents(reg)
	store, err := eventstore.New(client, eventstore.WithNamespace(namespace), eventstore.WithRegistry(reg),
		eventstore.WithPartitions(4), eventstore.WithLogger(log))
	if err != nil {
		return err
	}
	d := &story{w: w, log: log, client: client, store: store, models: map[int]*readmodel.Model{}, runners: map[int]*demo.Runner{}}
	defer func() { err = errors.Join(err, d.stopAll()) }()
	for v, fields := range map[int]func(Profile) map[string]string{1: fieldsV1, 2: fieldsV2} {
		d.models[v], err = readmodel.New(client, namespace, "profiles", readmodel.WithSchemaVersion(v),
			readmodel.WithTTL(cacheTTL), readmodel.WithLoader(loader(store, fields)))
		if err != nil {
			return err
		}
	}
	d.verify, err = readmodel.New(client, namespace, "profiles", readmodel.WithSchemaVersion(1),
		readmodel.WithTTL(cacheTTL), readmodel.WithLoader(loader(store, fieldsV1)))
	if err != nil {
		return err
	}
	// Versions only keeps the pointer to the active schema here: its own
	// models would share one loader, and each schema needs its own.
	if d.versions, err = readmodel.NewVersions(client, namespace, "profiles", 1); err != nil {
		return err
	}
	d.say("namespace %s; read model \"profiles\": cache-aside with a loader folding the user's events, TTL %v", namespace, cacheTTL)

	return demo.Tell(ctx, d.w, []demo.Step{
		{Title: "1. Users register; the cache consumer starts afterwards (FromNow), so the cache is cold", Run: d.register},
		{Title: "2. Cache-aside: a miss loads the profile from the events, then reads are hits", Run: d.cacheAside},
		{Title: "3. An update: the consumer rewrites the entry, Redis invalidates the cached copies", Run: d.update},
		{Title: "4. TTL: an entry nobody reads expires; the next read loads it again", Run: d.ttl},
		{Title: "5. Event-driven invalidation: a deleted user ($deleted marker) leaves the cache", Run: d.delete},
		{Title: "6. Versioned keys: schema v2 built beside v1 (projection.Rebuild), then switched to", Run: d.schemaV2},
		{Title: "7. Hit and miss figures (Model.Stats)", Run: d.figures},
	})
}

func (d *story) say(format string, args ...any) { fmt.Fprintf(d.w, format+"\n", args...) }

func (d *story) startConsumer(ctx context.Context, schema int, start projection.StartPosition) error {
	name := fmt.Sprintf("profiles-v%d", schema)
	fields := fieldsV1
	if schema == 2 {
		fields = fieldsV2
	}
	p := projection.Projection{Name: name, Categories: []string{"user"}, Handler: projection.HandlerFunc(consumer(d.models[schema], fields))}
	if schema == 2 {
		// History first, into the v2 keys, from the entity streams; the runner
		// then applies what was appended after the rebuild's cut.
		st, err := projection.Rebuild(ctx, d.store, p, 0)
		if err != nil {
			return err
		}
		d.say("   rebuilt %s: %d users, %d events folded into the v2 keys", name, st.Entities, st.Events)
	}
	r, err := projection.NewRunner(d.store, p, projection.WithStart(start), projection.WithLogger(d.log), projection.WithWorkers(4),
		// Bounds how long an ack can wait in an idle partition (see
		// blockWorkaround).
		projection.WithBlock(blockWorkaround))
	if err != nil {
		return err
	}
	d.runners[schema] = demo.Start(ctx, r)
	d.say("   consumer %s started (consumer group on every partition log of user)", name)
	return nil
}

func (d *story) stopAll() error { return demo.StopAll(d.runners) }

// waitFor waits until every running consumer has applied res.
func (d *story) waitFor(ctx context.Context, res eventstore.AppendResult) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, r := range d.runners {
		if err := r.WaitFor(ctx, res); err != nil {
			return err
		}
	}
	return nil
}

// get reads a profile from the active schema and says whether it was a hit,
// a miss, and whether the loader ran.
func (d *story) get(ctx context.Context, id string) (readmodel.Entry, error) {
	v, err := d.versions.Active(ctx)
	if err != nil {
		return readmodel.Entry{}, err
	}
	m := d.models[v]
	before := m.Stats()
	e, err := m.Get(ctx, id)
	after := m.Stats()
	var how []string
	if after.Hits > before.Hits {
		how = append(how, "hit")
	}
	if after.Misses > before.Misses {
		how = append(how, "miss")
	}
	if after.Loads > before.Loads {
		how = append(how, "loaded from the events")
	}
	switch {
	case errors.Is(err, readmodel.ErrNotFound):
		d.say("   get %-5s (v%d) %-33s -> not found", id, v, strings.Join(how, ", "))
	case err != nil:
		return e, err
	default:
		d.say("   get %-5s (v%d) %-33s -> %s (version %d)", id, v, strings.Join(how, ", "), show(e.Fields), e.Version)
	}
	return e, err
}

func show(f map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(f)) {
		fmt.Fprintf(&b, "%s=%s ", k, f[k])
	}
	return strings.TrimSpace(b.String())
}

func (d *story) register(ctx context.Context) error {
	for _, u := range []UserRegistered{
		{"Alice Liddell", "alice@example.com", "free"},
		{"Bob Builder", "bob@example.com", "pro"},
		{"Carol Danvers", "carol@example.com", "free"},
	} {
		id := strings.ToLower(strings.Fields(u.Name)[0])
		res, err := d.store.Append(ctx, user(id), eventstore.NoStream, eventstore.NewEvent(u))
		if err != nil {
			return err
		}
		d.say("   %s registered (version %d)", res.Stream, res.Version)
	}
	return d.startConsumer(ctx, 1, projection.FromNow)
}

func (d *story) cacheAside(ctx context.Context) error {
	for i := range 4 {
		if i == 1 {
			d.say("   (the loader's write is read back past the cache; the next read brings the entry into process memory)")
		}
		if _, err := d.get(ctx, "alice"); err != nil {
			return err
		}
	}
	d.say("   key %s, TTL %v (PTTL %d ms)", d.models[1].Key("alice"), cacheTTL, d.pttl(ctx, d.models[1].Key("alice")))
	return nil
}

func (d *story) pttl(ctx context.Context, key string) int64 {
	n, _ := d.client.Do(ctx, d.client.B().Pttl().Key(key).Build()).AsInt64()
	return n
}

func (d *story) update(ctx context.Context) error {
	if _, err := d.get(ctx, "bob"); err != nil {
		return err
	}
	if _, err := d.get(ctx, "bob"); err != nil {
		return err
	}
	res, err := d.store.Append(ctx, user("bob"), eventstore.Exact(1),
		eventstore.NewEvent(ProfileUpdated{Name: "Bob Builder", Email: "bob@builder.example", Plan: "pro"}))
	if err != nil {
		return err
	}
	d.say("   %s: ProfileUpdated (new e-mail) at version %d", res.Stream, res.Version)
	if err := d.waitFor(ctx, res); err != nil {
		return err
	}
	d.say("   the consumer applied it (WaitFor); the cached copy was invalidated by Redis:")
	for range 2 {
		if _, err := d.get(ctx, "bob"); err != nil {
			return err
		}
	}
	// The check reads past the client-side cache: an invalidation is pushed
	// by Redis, and a read can in principle overtake it.
	e, err := d.verify.GetFresh(ctx, "bob")
	if err != nil {
		return err
	}
	if e.Fields["email"] != "bob@builder.example" {
		return fmt.Errorf("bob's e-mail %q after the update", e.Fields["email"])
	}
	return nil
}

func (d *story) ttl(ctx context.Context) error {
	if _, err := d.get(ctx, "carol"); err != nil {
		return err
	}
	key := d.models[1].Key("carol")
	start := time.Now()
	// Wait for Redis to expire the entry (EXISTS also expires it if due).
	for {
		n, err := d.client.Do(ctx, d.client.B().Exists().Key(key).Build()).AsInt64()
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			return fmt.Errorf("%s did not expire", key)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	d.say("   %s expired after ~%v", key, time.Since(start).Round(100*time.Millisecond))
	_, err := d.get(ctx, "carol")
	return err
}

func (d *story) delete(ctx context.Context) error {
	if _, err := d.get(ctx, "alice"); err != nil {
		return err
	}
	res, err := d.store.Delete(ctx, user("alice"), eventstore.Any)
	if err != nil {
		return err
	}
	d.say("   Store.Delete(%s): stream gone, marker %s at version %d in the partition log", res.Stream, eventstore.DeletedType, res.Version)
	if err := d.waitFor(ctx, res); err != nil {
		return err
	}
	v, err := d.models[1].Version(ctx, "alice")
	if err != nil {
		return err
	}
	d.say("   the consumer deleted the entry, leaving a tombstone at version %d (an older redelivery cannot bring it back)", v)
	if _, err = d.get(ctx, "alice"); err != nil && !errors.Is(err, readmodel.ErrNotFound) {
		return err
	}
	if _, err = d.verify.GetFresh(ctx, "alice"); !errors.Is(err, readmodel.ErrNotFound) {
		return fmt.Errorf("alice after her deletion: want ErrNotFound, got %v", err)
	}
	return nil
}

func (d *story) schemaV2(ctx context.Context) error {
	if err := d.startConsumer(ctx, 2, projection.FromBeginning); err != nil {
		return err
	}
	res, err := d.store.Append(ctx, user("carol"), eventstore.Exact(1),
		eventstore.NewEvent(ProfileUpdated{Name: "Carol Danvers", Email: "carol@example.com", Plan: "pro"}))
	if err != nil {
		return err
	}
	d.say("   %s: ProfileUpdated (plan pro) at version %d, applied by both consumers", res.Stream, res.Version)
	if err := d.waitFor(ctx, res); err != nil {
		return err
	}
	d.say("   still serving v1:")
	if _, err := d.get(ctx, "carol"); err != nil {
		return err
	}
	if err := d.versions.Switch(ctx, 2); err != nil {
		return err
	}
	d.say("   Versions.Switch(2): every reader follows the pointer %s:rm:profiles:active", d.store.Keys().Namespace())
	for _, id := range []string{"bob", "carol", "bob"} {
		e, err := d.get(ctx, id)
		if err != nil {
			return err
		}
		if e.Fields["first"] == "" {
			return fmt.Errorf("%s under v2: %v", id, e.Fields)
		}
	}
	return nil
}

func (d *story) figures(ctx context.Context) error {
	m := d.models[2]
	before := m.Stats()
	for range 100 {
		if _, err := m.Get(ctx, "bob"); err != nil {
			return err
		}
	}
	after := m.Stats()
	d.say("   a hot profile: bob read 100 times: %d hits, %d misses", after.Hits-before.Hits, after.Misses-before.Misses)
	var total readmodel.Stats
	for _, v := range []int{1, 2} {
		s := d.models[v].Stats()
		d.say("   profiles v%d: %2d hits, %2d misses, %2d loads, %2d writes applied, %d skipped (already applied)",
			v, s.Hits, s.Misses, s.Loads, s.Applied, s.Skipped)
		total.Hits += s.Hits
		total.Misses += s.Misses
	}
	d.say("   (a miss is a round trip to Redis; a load counts two: the read that found nothing and the read-back)")
	d.say("   hit ratio %.0f%% (%d of %d reads served from process memory)",
		100*float64(total.Hits)/float64(max(total.Hits+total.Misses, 1)), total.Hits, total.Hits+total.Misses)
	return d.stopAll()
}
