package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/redis/rueidis"
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

func rebuildCmd(fs *flag.FlagSet) func(*app, []string) error {
	var cats listFlag
	fs.Var(&cats, "category", "categories the projection follows (needed for a projection that has not run yet)")
	progress := fs.Bool("progress", true, "show a progress bar on stderr")
	return func(a *app, args []string) error {
		if len(args) != 1 {
			return usagef("rebuild takes one projection name")
		}
		name := args[0]
		all, err := a.categories(cats)
		if err != nil {
			return err
		}
		found, _, err := a.discover(all)
		if err != nil {
			return err
		}
		plan := rebuildPlan{Projection: name}
		follow, known := found[name]
		plan.Known = known
		switch {
		case len(cats) > 0:
			follow = cats
		case !known:
			return fmt.Errorf("%w; for a new projection (a new read-model version) name its categories with --category", unknownProjection(a.g.namespace, name, found))
		}
		byCat := map[string]*rebuildCategory{}
		for _, c := range follow {
			byCat[c] = &rebuildCategory{Category: c}
		}
		keys, err := scanNamespace(a.ctx, a.client, a.store.Keys(), scanOptions{typ: "stream",
			keep: func(k keyInfo) bool { return k.Kind == kindStream && byCat[k.Category] != nil }})
		if err != nil {
			return err
		}
		var bar io.Writer
		if *progress {
			bar = a.stderr
		}
		const batch = 256
		c := a.client
		for i := 0; i < len(keys); i += batch {
			page := keys[i:min(i+batch, len(keys))]
			cmds := make(rueidis.Commands, len(page))
			for j, k := range page {
				cmds[j] = c.B().Xlen().Key(k.Key).Build()
			}
			for j, r := range c.DoMulti(a.ctx, cmds...) {
				n, err := r.AsInt64()
				if err != nil {
					return fmt.Errorf("xlen %s: %w", page[j].Key, err)
				}
				rc := byCat[page[j].Category]
				rc.Entities++
				rc.Events += n
			}
			drawBar(bar, i+len(page), len(keys), "entities")
		}
		if bar != nil && len(keys) > 0 {
			fmt.Fprintln(bar)
		}
		for _, c := range follow {
			rc := byCat[c]
			plan.Categories = append(plan.Categories, *rc)
			plan.Entities += rc.Entities
			plan.Events += rc.Events
		}
		plan.Howto = rebuildHowto(name, follow, known)
		t := &table{header: []string{"CATEGORY", "ENTITIES", "EVENTS"}}
		for _, rc := range plan.Categories {
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
