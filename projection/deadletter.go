package projection

import (
	"context"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/versionid"
)

// Kinds of dead letters.
const (
	// KindFailed: the handler failed on the event (after its retries).
	KindFailed = "failed"
	// KindParked: the event waits behind an earlier dead letter of its entity.
	KindParked = "parked"
	// KindCorrupt: the log entry could not be decoded; its entity (if it
	// names one) is parked behind it.
	KindCorrupt = "corrupt"
	// KindForeign: a log entry that is not the event the store wrote into
	// the entity stream it names (that stream holds another event at the
	// version it claims, none, or is at a lower version): written to the
	// log by another program. It is never applied, not even by a retry;
	// its entity goes on. Skip it once understood.
	KindForeign = "foreign"
	// KindTrimmed: the log entry was trimmed while pending; only its
	// position is known. Rebuild the affected read models, then skip it.
	KindTrimmed = "trimmed"
	// KindUnknownType: the event's type is not registered in the process
	// that read it (Projection.UnknownTypes is UnknownDeadLetter, the
	// default); its entity is parked behind it. Register the type, then
	// retry the entity.
	KindUnknownType = "unknown-type"
)

// DeadLetter is an event the projection did not apply.
type DeadLetter struct {
	ID        string // the letter's id in its partition's dead-letter stream
	Category  string
	Partition int
	Kind      string
	Stream    eventstore.StreamID // zero for KindTrimmed
	Version   uint64
	Position  eventstore.Position // the event's log entry
	Err       string
	Attempts  int
	Time      time.Time                // when it was dead-lettered
	Event     eventstore.RecordedEvent // decoded event (not for KindTrimmed)

	decodeErr error
	unknown   bool // Event's type is not registered here (Data nil)
}

// DeadLetters lists, retries and skips a projection's dead letters. Retries
// and skips are requests carried out by the runner that holds the
// partition (so they are ordered with the entity's live events and fenced
// like every other write); with no runner running, they wait for one.
type DeadLetters struct {
	store *eventstore.Store
	name  string
	keys  keys
}

// NewDeadLetters returns the dead-letter queue of projection name.
func NewDeadLetters(store *eventstore.Store, name string) *DeadLetters {
	return &DeadLetters{store: store, name: name, keys: keys{ks: store.Keys(), name: name}}
}

// DeadLetters returns the runner's dead-letter queue.
func (r *Runner) DeadLetters() *DeadLetters { return NewDeadLetters(r.store, r.proj.Name) }

// List yields the dead letters of the given categories, partition by
// partition, oldest first.
func (d *DeadLetters) List(ctx context.Context, categories ...string) iter.Seq2[DeadLetter, error] {
	return func(yield func(DeadLetter, error) bool) {
		for _, cat := range categories {
			n, err := d.store.Partitions(ctx, cat)
			if err != nil {
				yield(DeadLetter{}, err)
				return
			}
			for p := range n {
				ls, err := readLetters(ctx, d.store.Client(), d.store, d.name, cat, p, d.keys.part(cat, p).dlq)
				if err != nil {
					yield(DeadLetter{}, err)
					return
				}
				for _, l := range ls {
					if !yield(l, nil) {
						return
					}
				}
			}
		}
	}
}

// Retry asks the runner to apply the entity's dead letters again, in
// version order; the entity resumes when all succeed. Fix the cause first.
// It returns when the request is queued; WaitFor on the entity's last append
// tells when it has been applied.
func (d *DeadLetters) Retry(ctx context.Context, stream eventstore.StreamID) error {
	if err := stream.Validate(); err != nil {
		return err
	}
	return d.request(ctx, stream.Category, stream.ID, ctlRetry, "")
}

// Skip asks the runner to drop one dead letter without applying it. The
// entity stays parked while it has other letters; Retry resumes it.
func (d *DeadLetters) Skip(ctx context.Context, l DeadLetter) error {
	if l.ID == "" || l.Category == "" {
		return invalid("dead letter without id or category")
	}
	return d.request(ctx, l.Category, l.Stream.ID, ctlSkip, l.ID)
}

func (d *DeadLetters) request(ctx context.Context, cat, entity, op, letter string) error {
	n, err := d.store.Partitions(ctx, cat)
	if err != nil {
		return err
	}
	p := 0
	if entity != "" {
		p = eventstore.PartitionOf(entity, n)
	} else if letter == "" {
		return invalid("%s without entity", op)
	}
	c := d.store.Client()
	cmd := c.B().Xadd().Key(d.keys.part(cat, p).ctl).Id("*").FieldValue().FieldValue("op", op).FieldValue("s", entity)
	if letter != "" {
		cmd = cmd.FieldValue("id", letter)
	}
	if err := c.Do(ctx, cmd.Build()).Error(); err != nil {
		return fmt.Errorf("projection %s: %s %s/%s: %w", d.name, op, cat, entity, err)
	}
	return nil
}

// SkipPartition is Skip for a letter known only by category, partition and
// id (for example a KindTrimmed letter, which has no entity).
func (d *DeadLetters) SkipPartition(ctx context.Context, category string, partition int, letterID string) error {
	c := d.store.Client()
	cmd := c.B().Xadd().Key(d.keys.part(category, partition).ctl).Id("*").FieldValue().
		FieldValue("op", ctlSkip).FieldValue("s", "").FieldValue("id", letterID).Build()
	return c.Do(ctx, cmd).Error()
}

// readLetters reads a partition's dead-letter stream.
func readLetters(ctx context.Context, c rueidis.Client, store *eventstore.Store, name, cat string, p int, key string) ([]DeadLetter, error) {
	var out []DeadLetter
	start := "-"
	for {
		es, err := c.Do(ctx, c.B().Xrange().Key(key).Start(start).End("+").Count(500).Build()).AsXRangeSlices()
		if err != nil {
			return nil, fmt.Errorf("projection %s: dead letters of %s/%d: %w", name, cat, p, err)
		}
		for _, e := range es {
			out = append(out, decodeLetter(ctx, store, cat, p, e))
		}
		if len(es) < 500 {
			return out, nil
		}
		start = "(" + es[len(es)-1].ID
	}
}

func decodeLetter(ctx context.Context, store *eventstore.Store, cat string, p int, e rueidis.XRangeSlice) DeadLetter {
	f := fieldMap(e.FieldValues)
	l := DeadLetter{ID: e.ID, Category: cat, Partition: p, Kind: f["k"], Err: f["err"]}
	l.Attempts, _ = strconv.Atoi(f["n"])
	if ms, _, ok := strings.Cut(e.ID, "-"); ok {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			l.Time = time.UnixMilli(n).UTC()
		}
	}
	l.Position, _ = eventstore.ParsePosition(f["pos"])
	if l.Kind == KindTrimmed {
		return l
	}
	l.Stream = eventstore.StreamID{Category: cat, ID: f["s"]}
	l.Version, _ = versionid.Parse(f["v"]) // 0 when not a version id (a foreign letter's)
	entry := rueidis.XRangeSlice{ID: f["pos"], FieldValues: []rueidis.XRangeFieldValue{
		{Field: "s", Value: f["s"]}, {Field: "v", Value: f["v"]}, {Field: "e", Value: f["e"]}}}
	ev, err := store.Decode(ctx, store.Keys().Log(cat, p), entry)
	var unknown *eventstore.UnknownEventTypeError
	if err != nil && !asUnknown(err, &unknown) {
		l.decodeErr = err
	}
	l.unknown = unknown != nil
	l.Event = ev
	return l
}
