package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/groupinfo"
	"github.com/streamfold/streamfold/internal/rediserr"
	"github.com/streamfold/streamfold/projection"
)

// A projection is a consumer group of the same name on every partition log
// of the categories it follows, so the projections of a namespace are found
// with XINFO GROUPS on the logs.

// groupRow is one consumer group on one partition log.
type groupRow struct {
	Projection    string `json:"projection"`
	Category      string `json:"category"`
	Partition     int    `json:"partition"`
	Lag           int64  `json:"lag"` // entries not delivered yet; -1: unknown (see projection.PartitionStatus)
	Pending       int64  `json:"pending"`
	LastDelivered string `json:"last_delivered"`
	Checkpoint    string `json:"checkpoint"` // every entry up to it applied or dead-lettered
	Consumers     int64  `json:"consumers"`
	LeaseHolder   string `json:"lease_holder"`
	LeaseToken    int64  `json:"lease_token"`
	DeadLetters   int64  `json:"dead_letters"`
	Parked        int64  `json:"parked"`

	log string
}

// projections maps each projection found to the categories it follows.
type projections map[string][]string

// add records that projection name follows category (logs come category
// by category, so a repeat is the last one added).
func (p projections) add(name, category string) {
	cs := p[name]
	if len(cs) == 0 || cs[len(cs)-1] != category {
		p[name] = append(cs, category)
	}
}

func (p projections) names() []string {
	var out []string
	for n := range p {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// logRef is one partition log.
type logRef struct {
	partitionRef
	key string
}

// partitionLogs lists the partition logs of cats.
func (a *app) partitionLogs(cats []string) ([]logRef, error) {
	var logs []logRef
	for _, cat := range cats {
		n, err := a.store.Partitions(a.ctx, cat)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", cat, err)
		}
		for p := range n {
			logs = append(logs, logRef{partitionRef{cat, p}, a.store.Keys().Log(cat, p)})
		}
	}
	return logs, nil
}

// discover finds the projections (consumer groups) of the namespace's
// categories, with XINFO GROUPS on every partition log (pipelined).
func (a *app) discover(cats []string) (projections, []groupRow, error) {
	logs, err := a.partitionLogs(cats)
	if err != nil {
		return nil, nil, err
	}
	found := projections{}
	var rows []groupRow
	if len(logs) == 0 {
		return found, nil, nil
	}
	c := a.client
	cmds := make(rueidis.Commands, len(logs))
	for i, l := range logs {
		cmds[i] = c.B().XinfoGroups().Key(l.key).Build()
	}
	for i, r := range c.DoMulti(a.ctx, cmds...) {
		groups, err := groupinfo.Parse(r)
		if err != nil {
			if rediserr.IsNoSuchKey(err) {
				continue // nothing appended to this partition yet
			}
			return nil, nil, fmt.Errorf("xinfo groups %s: %w", logs[i].key, err)
		}
		for _, g := range groups {
			row := groupRow{Projection: g.Name, Category: logs[i].category, Partition: logs[i].partition, Lag: -1,
				Pending: g.Pending, LastDelivered: g.LastDelivered, Consumers: g.Consumers, log: logs[i].key}
			rows = append(rows, row)
			found.add(row.Projection, row.Category)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Projection < rows[j].Projection })
	return found, rows, nil
}

// projection resolves a projection name to the categories it follows, or
// explains which projections exist.
func (a *app) projection(name string) ([]string, error) {
	found, _, err := a.selectProjections([]string{name})
	if err != nil {
		return nil, err
	}
	return found[name], nil
}

func unknownProjection(ns, name string, found projections) error {
	if len(found) == 0 {
		return fmt.Errorf("unknown projection %q: namespace %q has no projections (no consumer group on any partition log; wrong --namespace?)", name, ns)
	}
	return fmt.Errorf("unknown projection %q in namespace %q; known: %s", name, ns, strings.Join(found.names(), ", "))
}

// selectProjections finds the namespace's projections and the consumer
// groups on its partition logs, and checks that each of only (none: all)
// is one of them.
func (a *app) selectProjections(only []string) (projections, []groupRow, error) {
	cats, err := a.categories(nil)
	if err != nil {
		return nil, nil, err
	}
	found, rows, err := a.discover(cats)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range only {
		if _, ok := found[n]; !ok {
			return nil, nil, unknownProjection(a.g.namespace, n, found)
		}
	}
	return found, rows, nil
}

// selected reports whether projection name passes the filter only (none:
// every projection).
func selected(only []string, name string) bool {
	return len(only) == 0 || slices.Contains(only, name)
}

// groupsCmd is `streamfold groups`.
type groupsCmd struct {
	only           listFlag
	behind, active bool
}

func (c *groupsCmd) register(fs *flag.FlagSet) {
	fs.Var(&c.only, "projection", "only these projections (repeatable, comma-separated)")
	fs.BoolVar(&c.behind, "behind", false, "only partitions with lag, pending entries or dead letters (work not done)")
	fs.BoolVar(&c.active, "active", false, "old name of --behind")
}

func (c *groupsCmd) run(a *app, args []string) error {
	if len(args) > 0 {
		return usagef("groups takes no arguments (filter with --projection)")
	}
	found, rows, err := a.selectProjections(c.only)
	if err != nil {
		return err
	}
	status, err := a.partitionStatus(found, c.only)
	if err != nil {
		return err
	}
	out := []groupRow{}
	for _, r := range rows {
		st, ok := status[groupKey{r.Projection, r.Category, r.Partition}]
		if !ok {
			continue // filtered out
		}
		r.fill(st)
		if (c.behind || c.active) && r.Lag == 0 && r.Pending == 0 && r.DeadLetters == 0 {
			continue
		}
		out = append(out, r)
	}
	var notes []string
	if len(found) == 0 {
		notes = append(notes, fmt.Sprintf("no projections in namespace %q (no consumer group on any partition log)", a.g.namespace))
	}
	return a.emit(out, groupsTable(out), notes...)
}

// groupKey names one consumer group on one partition log.
type groupKey struct {
	proj, cat string
	p         int
}

// partitionStatus returns the status of every partition of the projections
// found that pass the filter only. Progress, lease holders and dead letters
// come from projection.Status, which owns that bookkeeping (Redis' own
// group lag is absent on 6.2 and wrong after a crash on 7.0).
func (a *app) partitionStatus(found projections, only []string) (map[groupKey]projection.PartitionStatus, error) {
	status := map[groupKey]projection.PartitionStatus{}
	for _, name := range found.names() {
		if !selected(only, name) {
			continue
		}
		sts, err := projection.Status(a.ctx, a.store, name, found[name]...)
		if err != nil {
			return nil, err
		}
		for _, st := range sts {
			status[groupKey{name, st.Category, st.Partition}] = st
		}
	}
	return status, nil
}

// fill takes the row's figures from the projection's own status.
func (r *groupRow) fill(st projection.PartitionStatus) {
	r.LeaseHolder, r.LeaseToken, r.DeadLetters, r.Parked = st.Owner, st.Token, st.DeadLetters, st.Parked
	r.Lag, r.Pending, r.LastDelivered, r.Checkpoint = st.Lag, st.Pending, st.Delivered.String(), st.Checkpoint.String()
}

func groupsTable(rows []groupRow) *table {
	t := &table{header: []string{"PROJECTION", "CATEGORY", "PARTITION", "LAG", "PENDING", "LAST DELIVERED", "CHECKPOINT", "CONSUMERS", "LEASE HOLDER", "DLQ", "PARKED"}}
	for _, r := range rows {
		lag := fmt.Sprint(r.Lag)
		if r.Lag < 0 {
			lag = "?"
		}
		holder := "-"
		if r.LeaseHolder != "" {
			holder = fmt.Sprintf("%s (token %d)", r.LeaseHolder, r.LeaseToken)
		}
		t.add(r.Projection, r.Category, r.Partition, lag, r.Pending, r.LastDelivered, r.Checkpoint, r.Consumers, holder, r.DeadLetters, r.Parked)
	}
	return t
}

// pendingEntry is one entry delivered to a consumer and not acknowledged.
type pendingEntry struct {
	Projection string        `json:"projection"`
	Category   string        `json:"category"`
	Partition  int           `json:"partition"`
	Position   string        `json:"position"`
	Consumer   string        `json:"consumer"`
	Idle       time.Duration `json:"idle_ns"`
	IdleHuman  string        `json:"idle"`
	Deliveries int64         `json:"deliveries"`
	Stream     string        `json:"stream,omitempty"` // "" when the entry was trimmed from the log
	Version    uint64        `json:"version,omitempty"`
	Type       string        `json:"type,omitempty"`
}

// pendingCmd is `streamfold pending`.
type pendingCmd struct {
	only    listFlag
	minIdle time.Duration
	limit   int64
}

func (c *pendingCmd) register(fs *flag.FlagSet) {
	fs.Var(&c.only, "projection", "only these projections (repeatable, comma-separated)")
	fs.DurationVar(&c.minIdle, "min-idle", 0, "only entries idle at least this long (stuck ones)")
	fs.Int64Var(&c.limit, "limit", 100, "at most this many entries per projection and partition")
}

func (c *pendingCmd) run(a *app, args []string) error {
	if len(args) > 0 {
		return usagef("pending takes no arguments (filter with --projection, --min-idle)")
	}
	if c.limit <= 0 {
		return usagef("--limit must be > 0")
	}
	_, rows, err := a.selectProjections(c.only)
	if err != nil {
		return err
	}
	out := []pendingEntry{}
	for _, r := range rows {
		if r.Pending == 0 || !selected(c.only, r.Projection) {
			continue
		}
		entries, err := c.pending(a, r)
		if err != nil {
			return err
		}
		out = append(out, entries...)
	}
	notes := []string{"no pending entries"}
	if len(out) > 0 {
		notes = []string{"A runner that takes a partition's lease claims its pending entries (XAUTOCLAIM) and handles them first; " +
			"entries stuck with many deliveries point at a crashing handler (see `streamfold dlq list`)."}
	}
	return a.emit(out, pendingTable(out), notes...)
}

// pending returns the entries of group r that the flags ask for (XPENDING),
// described from their log entries.
func (c *pendingCmd) pending(a *app, r groupRow) ([]pendingEntry, error) {
	cl := a.client
	cmd := cl.B().Xpending().Key(r.log).Group(r.Projection)
	var res rueidis.RedisResult
	if c.minIdle > 0 {
		res = cl.Do(a.ctx, cmd.Idle(c.minIdle.Milliseconds()).Start("-").End("+").Count(c.limit).Build())
	} else {
		res = cl.Do(a.ctx, cmd.Start("-").End("+").Count(c.limit).Build())
	}
	arr, err := res.ToArray()
	if err != nil {
		return nil, fmt.Errorf("xpending %s %s: %w", r.log, r.Projection, err)
	}
	entries := make([]pendingEntry, 0, len(arr))
	for _, m := range arr {
		e, ok := parsePending(m)
		if !ok {
			return nil, fmt.Errorf("xpending %s: unexpected reply", r.log)
		}
		e.Projection, e.Category, e.Partition = r.Projection, r.Category, r.Partition
		entries = append(entries, e)
	}
	if err := a.describeEntries(r.log, r.Category, entries); err != nil {
		return nil, err
	}
	return entries, nil
}

// parsePending reads one entry of the extended form of XPENDING: id,
// consumer, idle milliseconds, deliveries.
func parsePending(m rueidis.RedisMessage) (pendingEntry, bool) {
	f, err := m.ToArray()
	if err != nil || len(f) < 4 {
		return pendingEntry{}, false
	}
	var e pendingEntry
	e.Position, _ = f[0].ToString()
	e.Consumer, _ = f[1].ToString()
	idle, _ := f[2].AsInt64()
	e.Idle = time.Duration(idle) * time.Millisecond
	e.IdleHuman = durHuman(e.Idle)
	e.Deliveries, _ = f[3].AsInt64()
	return e, true
}

func pendingTable(entries []pendingEntry) *table {
	t := &table{header: []string{"PROJECTION", "CATEGORY", "PARTITION", "POSITION", "ENTITY", "VERSION", "TYPE", "CONSUMER", "IDLE", "DELIVERIES"}}
	for _, e := range entries {
		ent, ver := "(trimmed)", "-"
		if e.Stream != "" {
			ent, ver = e.Stream, fmt.Sprint(e.Version)
		}
		t.add(e.Projection, e.Category, e.Partition, e.Position, ent, ver, orDash(e.Type), e.Consumer, e.IdleHuman, e.Deliveries)
	}
	return t
}

// describeEntries fills in the entity, version and type of pending
// entries from their log entries (one pipelined XRANGE each).
func (a *app) describeEntries(log, category string, entries []pendingEntry) error {
	if len(entries) == 0 {
		return nil
	}
	c := a.client
	cmds := make(rueidis.Commands, len(entries))
	for i, e := range entries {
		cmds[i] = c.B().Xrange().Key(log).Start(e.Position).End(e.Position).Build()
	}
	for i, r := range c.DoMulti(a.ctx, cmds...) {
		es, err := r.AsXRangeSlices()
		if err != nil {
			return fmt.Errorf("xrange %s %s: %w", log, entries[i].Position, err)
		}
		if len(es) == 0 {
			continue // trimmed while pending: the runner dead-letters it as "trimmed"
		}
		ev, err := a.store.Decode(a.ctx, log, es[0])
		var unknown *eventstore.UnknownEventTypeError
		if err != nil && !errors.As(err, &unknown) {
			continue
		}
		entries[i].Stream, entries[i].Version, entries[i].Type = ev.Stream.String(), ev.Version, ev.Type
	}
	return nil
}
