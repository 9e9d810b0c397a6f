package main

import (
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Read-model hit and miss counts (readmodel.Model.Stats) live in the
// processes that serve reads, not in Redis: a separate CLI process cannot
// see them. stats shows what Redis can tell instead: the servers'
// keyspace_hits/keyspace_misses (server-wide, every namespace and every
// command) and the read models' keys and memory. Export Model.Stats from
// the application (metrics) for the real cache-aside hit ratio.

type statsJSON struct {
	Namespace  string           `json:"namespace"`
	Categories []categoryMemory `json:"categories"`
	ReadModels []readModelStats `json:"read_models"`
	Other      map[string]int64 `json:"other_memory_bytes"` // keys outside categories and read models, by kind
	Server     serverStats      `json:"server"`
	Note       string           `json:"note"`
}

type categoryMemory struct {
	Category string           `json:"category"`
	Total    int64            `json:"memory_bytes"`
	ByKind   map[string]int64 `json:"memory_by_kind"`
}

type readModelStats struct {
	Model  string `json:"model"`
	Schema int    `json:"schema_version"` // 0: the blue/green "active" pointer
	Keys   int64  `json:"keys"`
	Bytes  int64  `json:"memory_bytes"`
}

type serverStats struct {
	Nodes          int     `json:"nodes"`
	UsedMemory     int64   `json:"used_memory"`
	KeyspaceHits   int64   `json:"keyspace_hits"`
	KeyspaceMisses int64   `json:"keyspace_misses"`
	HitRatio       float64 `json:"hit_ratio"` // -1: no lookups yet
}

const statsNote = "Read-model hit/miss counts live in the serving processes (readmodel.Model.Stats), not in Redis; " +
	"the server's keyspace hits/misses count every lookup of every client and namespace."

// statsCmd is `streamfold stats`.
type statsCmd struct{}

func (c *statsCmd) register(fs *flag.FlagSet) {}

func (c *statsCmd) run(a *app, args []string) error {
	if len(args) > 0 {
		return usagef("stats takes no arguments")
	}
	cats, err := a.categories(nil)
	if err != nil {
		return err
	}
	kc, err := a.classifier(cats)
	if err != nil {
		return err
	}
	keys, err := scanNamespace(a.ctx, a.client, kc, scanOptions{memory: true})
	if err != nil {
		return err
	}
	st := summarizeMemory(a.g.namespace, keys)
	if st.Server, err = a.serverStats(); err != nil {
		return err
	}
	ratio := "n/a"
	if st.Server.HitRatio >= 0 {
		ratio = fmt.Sprintf("%.1f%%", 100*st.Server.HitRatio)
	}
	return a.emit(st, statsTable(st),
		fmt.Sprintf("\nserver (%d nodes): used_memory %s, keyspace hits %d, misses %d, hit ratio %s",
			st.Server.Nodes, bytesHuman(st.Server.UsedMemory), st.Server.KeyspaceHits, st.Server.KeyspaceMisses, ratio),
		statsNote)
}

// readModelSchema names one schema version of a read model.
type readModelSchema struct {
	name   string
	schema int
}

// summarizeMemory sums the memory of the namespace's keys per category (by
// kind), per read-model schema (and counts its keys), and per kind for the
// rest; the lists come sorted.
func summarizeMemory(namespace string, keys []keyInfo) statsJSON {
	st := statsJSON{Namespace: namespace, Other: map[string]int64{}, Note: statsNote,
		Categories: []categoryMemory{}, ReadModels: []readModelStats{}}
	cats := map[string]*categoryMemory{}
	rms := map[readModelSchema]*readModelStats{}
	for _, k := range keys {
		b := max(k.Bytes, 0)
		switch {
		case k.Category != "":
			cm := cats[k.Category]
			if cm == nil {
				cm = &categoryMemory{Category: k.Category, ByKind: map[string]int64{}}
				cats[k.Category] = cm
			}
			cm.Total += b
			cm.ByKind[k.Kind] += b
		case k.Kind == kindReadModel:
			rk := readModelSchema{k.Model, k.Schema}
			rs := rms[rk]
			if rs == nil {
				rs = &readModelStats{Model: k.Model, Schema: k.Schema}
				rms[rk] = rs
			}
			rs.Keys++
			rs.Bytes += b
		default:
			st.Other[k.Kind] += b
		}
	}
	for _, cm := range cats {
		st.Categories = append(st.Categories, *cm)
	}
	sort.Slice(st.Categories, func(i, j int) bool { return st.Categories[i].Category < st.Categories[j].Category })
	for _, rs := range rms {
		st.ReadModels = append(st.ReadModels, *rs)
	}
	sort.Slice(st.ReadModels, func(i, j int) bool {
		x, y := st.ReadModels[i], st.ReadModels[j]
		return x.Model < y.Model || x.Model == y.Model && x.Schema < y.Schema
	})
	return st
}

func statsTable(st statsJSON) *table {
	t := &table{header: []string{"WHAT", "KEYS/KIND", "MEMORY"}}
	for _, cm := range st.Categories {
		var kinds []string
		for k, v := range cm.ByKind {
			kinds = append(kinds, fmt.Sprintf("%s %s", k, bytesHuman(v)))
		}
		sort.Strings(kinds)
		t.add("category "+cm.Category, strings.Join(kinds, ", "), bytesHuman(cm.Total))
	}
	for _, rs := range st.ReadModels {
		what := fmt.Sprintf("read model %s v%d", rs.Model, rs.Schema)
		if rs.Schema == 0 {
			what = fmt.Sprintf("read model %s (active pointer)", rs.Model)
		}
		t.add(what, fmt.Sprintf("%d keys", rs.Keys), bytesHuman(rs.Bytes))
	}
	for k, v := range st.Other {
		t.add("namespace "+k, "-", bytesHuman(v))
	}
	return t
}

// serverStats sums INFO memory and stats over every node.
func (a *app) serverStats() (serverStats, error) {
	var s serverStats
	for addr, node := range a.client.Nodes() {
		info, err := node.Do(a.ctx, node.B().Info().Section("memory", "stats").Build()).ToString()
		if err != nil {
			return s, fmt.Errorf("info %s: %w", addr, err)
		}
		s.Nodes++
		for _, line := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "used_memory":
				s.UsedMemory += n
			case "keyspace_hits":
				s.KeyspaceHits += n
			case "keyspace_misses":
				s.KeyspaceMisses += n
			}
		}
	}
	s.HitRatio = -1
	if t := s.KeyspaceHits + s.KeyspaceMisses; t > 0 {
		s.HitRatio = float64(s.KeyspaceHits) / float64(t)
	}
	return s, nil
}
