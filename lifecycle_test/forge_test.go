package lifecycle_test

import (
	"fmt"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"pgregory.net/rapid"
)

// forgeries the checker writes into partition logs by hand. The one the
// runner only catches when the real event arrives (an entry at exactly the
// next version of an entity it has seen: dead-lettered and parked, loud) is
// not drawn: the model would have to predict the parking.
var forgeries = []string{"never-written", "far-version", "other-partition", "copy"}

// actForge adds a well-formed entry (a real envelope, copied) to a
// partition log, as another program could. None may change a read model
// (checkReadModel, for every entity) nor park an entity (WaitFor there);
// the log check skips it.
func (h *harness) actForge(rt *rapid.T) {
	ctx, cancel := ctxT()
	defer cancel()
	c := h.tg.Client
	var src rueidis.XRangeSlice
	q := -1
	for p := range partitions {
		es, err := c.Do(ctx, c.B().Xrevrange().Key(h.es.Keys().Log(category, p)).End("+").Start("-").Count(1).Build()).AsXRangeSlices()
		if err != nil {
			rt.Fatalf("XREVRANGE log %d: %v", p, err)
		}
		if len(es) == 1 {
			src, q = es[0], p
			break
		}
	}
	if q < 0 {
		rt.Skip("no log entry to copy")
	}
	f := map[string]string{}
	for _, fv := range src.FieldValues {
		f[fv.Field] = fv.Value
	}
	kind := rapid.SampledFrom(forgeries).Draw(rt, "forgery")
	p := q
	s, v := f["s"], f["v"]
	switch kind {
	case "never-written":
		s, v = fmt.Sprintf("ghost%d", h.steps), "1-0"
	case "far-version", "other-partition":
		var cands []*entity
		for _, e := range h.ents {
			if (e.partition == p) == (kind == "far-version") {
				cands = append(cands, e)
			}
		}
		if len(cands) == 0 {
			rt.Skip("no entity for " + kind)
		}
		e := cands[rapid.IntRange(0, len(cands)-1).Draw(rt, "forged entity")]
		s, v = e.id, fmt.Sprintf("%d-0", max(e.version, 1))
		if kind == "far-version" {
			v = fmt.Sprintf("%d-0", e.version+1000)
		}
	}
	key := h.es.Keys().Log(category, p)
	id, err := c.Do(ctx, c.B().Xadd().Key(key).Id("*").FieldValue().FieldValue("s", s).FieldValue("v", v).FieldValue("e", f["e"]).Build()).ToString()
	if err != nil {
		rt.Fatalf("XADD %s: %v", key, err)
	}
	pos, err := eventstore.ParsePosition(id)
	if err != nil {
		rt.Fatal(err)
	}
	rt.Logf("forged %s entry %s in log %d: s=%s v=%s", kind, id, p, s, v)
	h.forged[pos] = true
	for x := range h.ents {
		h.rmDirty[x] = true
	}
}
