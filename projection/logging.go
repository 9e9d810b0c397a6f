package projection

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// warnEvery is how often one kind of transient failure (a failed read, a
// failed renewal...) is logged at WARN: with Redis unreachable, each of a
// runner's partitions fails every second or two, and one line per kind and
// interval says as much as dozens. The others go to DEBUG and are counted
// into the next WARN ("suppressed").
const warnEvery = 30 * time.Second

// warnLimiter passes one WARN per kind per warnEvery.
type warnLimiter struct {
	mu      sync.Mutex
	last    map[string]time.Time
	dropped map[string]int
}

// warn logs msg at WARN on l unless a WARN of the same kind was logged
// within warnEvery; then at DEBUG.
func (w *warnLimiter) warn(l logger, kind, msg string, args ...any) {
	w.mu.Lock()
	if w.last == nil {
		w.last, w.dropped = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	pass := now.Sub(w.last[kind]) >= warnEvery
	n := w.dropped[kind]
	if pass {
		w.last[kind], w.dropped[kind] = now, 0
	} else {
		w.dropped[kind]++
	}
	w.mu.Unlock()
	if !pass {
		l.Debug(msg, args...)
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n, "suppressed_within", warnEvery)
	}
	l.Warn(msg, args...)
}

// logHeld logs one INFO line when the set of partitions the runner holds
// changed since the last call (at start, on a rebalance, a loss, a
// takeover); the per-partition lines are at DEBUG.
func (r *Runner) logHeld(live int64) {
	r.mu.Lock()
	var now []unit
	for u, p := range r.parts {
		if !p.stopping() {
			now = append(now, u)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(now, func(a, b unit) int {
		if c := strings.Compare(a.cat, b.cat); c != 0 {
			return c
		}
		return a.p - b.p
	})
	if slices.Equal(now, r.lastHeld) {
		return
	}
	added, removed := diffUnits(now, r.lastHeld), diffUnits(r.lastHeld, now)
	r.lastHeld = now
	r.log.Info("projection: partitions held", "held", len(now), "of", len(r.units), "live_instances", live,
		"partitions", unitList(now), "taken", unitList(added), "given_up", unitList(removed))
}

func diffUnits(a, b []unit) []unit {
	var out []unit
	for _, u := range a {
		if !slices.Contains(b, u) {
			out = append(out, u)
		}
	}
	return out
}

// unitList is "acct:0-3,7 order:1" for sorted units.
func unitList(us []unit) string {
	var b strings.Builder
	for i := 0; i < len(us); {
		if i > 0 {
			b.WriteByte(' ')
		}
		cat := us[i].cat
		fmt.Fprintf(&b, "%s:", cat)
		first := true
		for i < len(us) && us[i].cat == cat {
			j := i
			for j+1 < len(us) && us[j+1].cat == cat && us[j+1].p == us[j].p+1 {
				j++
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			if j > i {
				fmt.Fprintf(&b, "%d-%d", us[i].p, us[j].p)
			} else {
				fmt.Fprintf(&b, "%d", us[i].p)
			}
			i = j + 1
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}
