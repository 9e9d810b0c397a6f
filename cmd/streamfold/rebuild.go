package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Why rebuild does not rebuild: a rebuild applies the projection's handler
// (the user's Go code) to every stored event, and a generic binary cannot
// have it. Running a handler-less "rebuild" would either do nothing useful
// or, worse, move the consumer groups' cut without filling the read model.
// So the command reports what projection.Rebuild would replay (entities and
// events per category, read from the entity streams, which are the truth)
// with a progress bar over the entities, and prints how to run the rebuild
// from the application's code, where the handler lives.

type rebuildPlan struct {
	Projection string            `json:"projection"`
	Known      bool              `json:"known"` // the projection's consumer groups exist
	Categories []rebuildCategory `json:"categories"`
	Entities   int64             `json:"entities"`
	Events     int64             `json:"events"`
	Howto      string            `json:"howto"`
}

type rebuildCategory struct {
	Category string `json:"category"`
	Entities int64  `json:"entities"`
	Events   int64  `json:"events"`
}

// rebuildCmd is `streamfold rebuild <projection>`.
type rebuildCmd struct {
	categories listFlag
	progress   bool
}

func (c *rebuildCmd) register(fs *flag.FlagSet) {
	fs.Var(&c.categories, "category", "categories the projection follows (needed for a projection that has not run yet)")
	fs.BoolVar(&c.progress, "progress", true, "show a progress bar on stderr")
}

func (c *rebuildCmd) run(a *app, args []string) error {
	if len(args) != 1 {
		return usagef("rebuild takes one projection name")
	}
	name := args[0]
	follow, known, err := c.follows(a, name)
	if err != nil {
		return err
	}
	var bar io.Writer
	if c.progress {
		bar = a.stderr
	}
	counts, err := a.countEntities(follow, bar)
	if err != nil {
		return err
	}
	plan := rebuildPlan{Projection: name, Known: known, Categories: counts, Howto: rebuildHowto(name, follow, known)}
	t := &table{header: []string{"CATEGORY", "ENTITIES", "EVENTS"}}
	for _, rc := range plan.Categories {
		plan.Entities += rc.Entities
		plan.Events += rc.Events
		t.add(rc.Category, rc.Entities, rc.Events)
	}
	t.add("total", plan.Entities, plan.Events)
	state := "its consumer groups exist: a rebuild keeps them and the runner goes on from its checkpoint"
	if !known {
		state = "it has no consumer groups yet: a rebuild creates them at the end of each partition log (the cut)"
	}
	return a.emit(plan, t,
		fmt.Sprintf("\nA rebuild of projection %s would replay the events above from the entity streams (%s).", name, state),
		"The CLI cannot run it: the handler is your code. "+plan.Howto)
}

// follows returns the categories a rebuild of projection name would replay
// (--category, else those its consumer groups are on) and whether the
// projection's consumer groups exist.
func (c *rebuildCmd) follows(a *app, name string) ([]string, bool, error) {
	all, err := a.categories(c.categories)
	if err != nil {
		return nil, false, err
	}
	found, _, err := a.discover(all)
	if err != nil {
		return nil, false, err
	}
	follow, known := found[name]
	switch {
	case len(c.categories) > 0:
		follow = c.categories
	case !known:
		return nil, false, fmt.Errorf("%w; for a new projection (a new read-model version) name its categories with --category", unknownProjection(a.g.namespace, name, found))
	}
	return follow, known, nil
}

// countEntities counts the entity streams and their events in each of
// cats, drawing a progress bar over the entities on bar (nil: none).
func (a *app) countEntities(cats []string, bar io.Writer) ([]rebuildCategory, error) {
	byCat := map[string]*rebuildCategory{}
	for _, c := range cats {
		byCat[c] = &rebuildCategory{Category: c}
	}
	kc, err := a.classifier(cats)
	if err != nil {
		return nil, err
	}
	keys, err := scanNamespace(a.ctx, a.client, kc, scanOptions{typ: "stream",
		keep: func(k keyInfo) bool { return k.Kind == kindStream && byCat[k.Category] != nil }})
	if err != nil {
		return nil, err
	}
	const batch = 256
	for i := 0; i < len(keys); i += batch {
		page := keys[i:min(i+batch, len(keys))]
		lens, err := a.streamLengths(page)
		if err != nil {
			return nil, err
		}
		for j, n := range lens {
			rc := byCat[page[j].Category]
			rc.Entities++
			rc.Events += n
		}
		drawBar(bar, i+len(page), len(keys), "entities")
	}
	if bar != nil && len(keys) > 0 {
		fmt.Fprintln(bar)
	}
	out := make([]rebuildCategory, len(cats))
	for i, c := range cats {
		out[i] = *byCat[c]
	}
	return out, nil
}

func rebuildHowto(name string, cats []string, known bool) string {
	q := make([]string, len(cats))
	for i, c := range cats {
		q[i] = fmt.Sprintf("%q", c)
	}
	s := fmt.Sprintf("Run it from your application:\n\n"+
		"    stats, err := projection.Rebuild(ctx, store, projection.Projection{\n"+
		"        Name: %q, Categories: []string{%s}, Handler: yourHandler}, 16)\n\n"+
		"then start that projection's Runner (it applies the events after the cut) and, once "+
		"`streamfold groups --projection %s` shows lag 0, switch readers with readmodel.Versions.Switch.",
		name, strings.Join(q, ", "), name)
	if known {
		s += " To rebuild into a fresh read-model version, use a new projection name (and read-model schema version) instead of the live one."
	}
	return s
}

// drawBar redraws a one-line progress bar on w (nil: none).
func drawBar(w io.Writer, done, total int, what string) {
	if w == nil || total == 0 {
		return
	}
	const width = 30
	filled := done * width / total
	fmt.Fprintf(w, "\r[%s%s] %d/%d %s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, total, what)
}
