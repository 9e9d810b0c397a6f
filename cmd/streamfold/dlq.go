package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
)

// letterJSON is a dead letter as the CLI prints it.
type letterJSON struct {
	Ref       string     `json:"ref"` // category/partition/id: what `dlq skip` takes
	ID        string     `json:"id"`
	Category  string     `json:"category"`
	Partition int        `json:"partition"`
	Kind      string     `json:"kind"`
	Stream    string     `json:"stream,omitempty"`
	Version   uint64     `json:"version,omitempty"`
	Position  string     `json:"position"`
	Error     string     `json:"error,omitempty"`
	Attempts  int        `json:"attempts"`
	Time      time.Time  `json:"time"`
	Event     *eventJSON `json:"event,omitempty"`
}

func letterRef(l projection.DeadLetter) string {
	return fmt.Sprintf("%s/%d/%s", l.Category, l.Partition, l.ID)
}

// dlqCmd is `streamfold dlq list|retry|skip <projection> ...`.
type dlqCmd struct{}

func (c *dlqCmd) register(fs *flag.FlagSet) {}

func (c *dlqCmd) run(a *app, args []string) error {
	if len(args) < 2 {
		return usagef("want `dlq list <projection>`, `dlq retry <projection> <category-id>` or `dlq skip <projection> <letter-ref>`")
	}
	op, name := args[0], args[1]
	switch op {
	case "list":
		if len(args) != 2 {
			return usagef("dlq list takes one projection")
		}
		return a.dlqList(name)
	case "retry":
		if len(args) != 3 {
			return usagef("dlq retry takes a projection and an entity (category-id)")
		}
		sid, err := eventstore.ParseStreamID(args[2])
		if err != nil {
			return usagef("%v", err)
		}
		return a.dlqRetry(name, sid)
	case "skip":
		if len(args) != 3 {
			return usagef("dlq skip takes a projection and a letter reference (category/partition/id, as `dlq list` prints it)")
		}
		return a.dlqSkip(name, args[2])
	default:
		return usagef("unknown dlq operation %q: want list, retry or skip", op)
	}
}

func (a *app) letters(name string) ([]projection.DeadLetter, []string, error) {
	cats, err := a.projection(name)
	if err != nil {
		return nil, nil, err
	}
	var out []projection.DeadLetter
	for l, err := range projection.NewDeadLetters(a.store, name).List(a.ctx, cats...) {
		if err != nil {
			return nil, nil, err
		}
		out = append(out, l)
	}
	return out, cats, nil
}

func (a *app) dlqList(name string) error {
	ls, _, err := a.letters(name)
	if err != nil {
		return err
	}
	out := []letterJSON{}
	t := &table{header: []string{"REF", "KIND", "ENTITY", "VERSION", "TYPE", "ATTEMPTS", "TIME", "ERROR"}}
	for _, l := range ls {
		j := letterJSON{Ref: letterRef(l), ID: l.ID, Category: l.Category, Partition: l.Partition, Kind: l.Kind,
			Version: l.Version, Position: l.Position.String(), Error: l.Err, Attempts: l.Attempts, Time: l.Time}
		if l.Kind != projection.KindTrimmed {
			j.Stream = l.Stream.String()
			ev := toEventJSON(l.Event)
			j.Event = &ev
		}
		out = append(out, j)
		t.add(j.Ref, j.Kind, orDash(j.Stream), j.Version, orDash(l.Event.Type), j.Attempts, j.Time.Format(time.RFC3339), orDash(oneLine(j.Error)))
	}
	var notes []string
	if len(out) == 0 {
		notes = append(notes, fmt.Sprintf("projection %s has no dead letters", name))
	} else {
		notes = append(notes, fmt.Sprintf("Fix the cause, then `streamfold dlq retry %s <category-id>` re-applies an entity's letters in order, "+
			"or `streamfold dlq skip %s <ref>` drops one. A running runner of the projection carries the request out.", name, name))
	}
	return a.emit(out, t, notes...)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// requestNote says whether a runner will act on a queued request now.
func (a *app) requestNote(name, category string, partition int) (string, error) {
	sts, err := projection.Status(a.ctx, a.store, name, category)
	if err != nil {
		return "", err
	}
	for _, st := range sts {
		if st.Partition == partition && st.Owner != "" {
			return fmt.Sprintf("runner %s holds %s/%d and will carry it out; watch with `streamfold dlq list %s`", st.Owner, category, partition, name), nil
		}
	}
	return fmt.Sprintf("no runner holds %s/%d now: the request waits until a runner of %s starts", category, partition, name), nil
}

type requestJSON struct {
	Projection string `json:"projection"`
	Op         string `json:"op"`
	Stream     string `json:"stream,omitempty"`
	Letter     string `json:"letter,omitempty"`
	Letters    int    `json:"letters,omitempty"`
	Note       string `json:"note"`
}

func (a *app) dlqRetry(name string, sid eventstore.StreamID) error {
	ls, _, err := a.letters(name)
	if err != nil {
		return err
	}
	n, part := 0, 0
	for _, l := range ls {
		if l.Stream == sid {
			n, part = n+1, l.Partition
		}
	}
	if n == 0 {
		return fmt.Errorf("projection %s has no dead letters of %s; see `streamfold dlq list %s`", name, sid, name)
	}
	if err := projection.NewDeadLetters(a.store, name).Retry(a.ctx, sid); err != nil {
		return err
	}
	note, err := a.requestNote(name, sid.Category, part)
	if err != nil {
		return err
	}
	res := requestJSON{Projection: name, Op: "retry", Stream: sid.String(), Letters: n, Note: note}
	if a.g.json {
		return a.emit(res, nil)
	}
	return a.emit(res, nil, fmt.Sprintf("retry of %s (%d dead letters) queued for projection %s; %s", sid, n, name, note))
}

func (a *app) dlqSkip(name, ref string) error {
	ls, _, err := a.letters(name)
	if err != nil {
		return err
	}
	var match []projection.DeadLetter
	for _, l := range ls {
		if letterRef(l) == ref || l.ID == ref {
			match = append(match, l)
		}
	}
	switch len(match) {
	case 0:
		return fmt.Errorf("projection %s has no dead letter %q; refs are category/partition/id, as `streamfold dlq list %s` prints them", name, ref, name)
	case 1:
	default:
		return fmt.Errorf("letter id %q is in several partitions; give the full ref (category/partition/id)", ref)
	}
	l := match[0]
	d := projection.NewDeadLetters(a.store, name)
	if l.Kind == projection.KindTrimmed {
		err = d.SkipPartition(a.ctx, l.Category, l.Partition, l.ID)
	} else {
		err = d.Skip(a.ctx, l)
	}
	if err != nil {
		return err
	}
	note, err := a.requestNote(name, l.Category, l.Partition)
	if err != nil {
		return err
	}
	res := requestJSON{Projection: name, Op: "skip", Stream: l.Stream.String(), Letter: letterRef(l), Note: note}
	if l.Kind == projection.KindTrimmed {
		res.Stream = ""
	}
	if a.g.json {
		return a.emit(res, nil)
	}
	return a.emit(res, nil, fmt.Sprintf("skip of letter %s queued for projection %s; %s", letterRef(l), name, note))
}
