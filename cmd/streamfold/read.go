package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/vmihailenco/msgpack/v5"
)

// eventJSON is an event as the CLI prints it.
type eventJSON struct {
	Stream        string            `json:"stream"`
	Version       uint64            `json:"version"`
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	SchemaVersion int               `json:"schema_version"`
	Time          time.Time         `json:"time"`
	Position      string            `json:"position,omitempty"`
	CorrelationID string            `json:"correlation_id,omitempty"`
	CausationID   string            `json:"causation_id,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Data          any               `json:"data"`
	// DataError says why Data is the raw bytes (base64) instead of a
	// decoded value: the payload is not msgpack (another codec, or
	// encrypted per entity).
	DataError string `json:"data_error,omitempty"`
}

// readCmd is `streamfold read <category-id>`.
type readCmd struct {
	from     uint64
	limit    int
	backward bool
}

func (c *readCmd) register(fs *flag.FlagSet) {
	fs.Uint64Var(&c.from, "from", 0, "first version to show (backward: the last; 0 = from the start, or from the end with --backward)")
	fs.IntVar(&c.limit, "limit", 0, "show at most this many events (0: all)")
	fs.BoolVar(&c.backward, "backward", false, "newest first")
}

func (c *readCmd) run(a *app, args []string) error {
	if len(args) != 1 {
		return usagef("read takes one stream, as category-id (for example account-42)")
	}
	sid, err := eventstore.ParseStreamID(args[0])
	if err != nil {
		return usagef("%v", err)
	}
	if c.limit < 0 {
		return usagef("--limit must be ≥ 0")
	}
	if _, err := a.categories([]string{sid.Category}); err != nil {
		return err
	}
	events, err := c.read(a, sid)
	if err != nil {
		return err
	}
	t := &table{header: []string{"VERSION", "TIME", "TYPE", "ID", "METADATA", "DATA"}}
	for _, e := range events {
		data, _ := json.Marshal(e.Data)
		if e.DataError != "" {
			data = []byte("(undecodable: " + e.DataError + ")")
		}
		t.add(e.Version, e.Time.Format(time.RFC3339Nano), e.Type, e.ID, metaString(e), string(data))
	}
	var notes []string
	if len(events) == 0 {
		notes = append(notes, fmt.Sprintf("no events of %s in that range", sid))
	}
	return a.emit(events, t, notes...)
}

// read returns the events of sid the flags ask for.
func (c *readCmd) read(a *app, sid eventstore.StreamID) ([]eventJSON, error) {
	store := a.store
	var opts []eventstore.ReadOption
	if c.limit > 0 {
		opts = append(opts, eventstore.Limit(c.limit))
	}
	seq := store.Read(a.ctx, sid, c.from, opts...)
	if c.backward {
		seq = store.ReadBackward(a.ctx, sid, c.from, opts...)
	}
	events := []eventJSON{}
	for ev, err := range seq {
		var unknown *eventstore.UnknownEventTypeError
		var upcast *eventstore.UpcastError
		switch {
		case err == nil, errors.As(err, &unknown), errors.As(err, &upcast):
			// The CLI registers no types: every event comes back raw.
		case errors.Is(err, eventstore.ErrStreamNotFound):
			return nil, a.notFound(sid)
		default:
			return nil, fmt.Errorf("read %s: %w", sid, err)
		}
		events = append(events, toEventJSON(ev))
	}
	return events, nil
}

func toEventJSON(ev eventstore.RecordedEvent) eventJSON {
	e := eventJSON{Stream: ev.Stream.String(), Version: ev.Version, ID: ev.ID.String(), Type: ev.Type,
		SchemaVersion: ev.SchemaVersion, Time: ev.Time, CorrelationID: ev.CorrelationID,
		CausationID: ev.CausationID, Headers: ev.Headers}
	if !ev.Position.IsZero() {
		e.Position = ev.Position.String()
	}
	e.Data, e.DataError = decodePayload(ev.Raw)
	return e
}

// decodePayload decodes a msgpack payload into JSON-able values; when it is
// not msgpack the raw bytes are returned (base64 in JSON) with the reason.
func decodePayload(raw []byte) (any, string) {
	if len(raw) == 0 {
		return nil, ""
	}
	var v any
	if err := msgpack.Unmarshal(raw, &v); err != nil {
		return raw, "not msgpack: " + err.Error()
	}
	return jsonable(v), ""
}

// jsonable turns msgpack's generic values into ones encoding/json accepts
// (maps with non-string keys).
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	default:
		return v
	}
}

func metaString(e eventJSON) string {
	var parts []string
	if e.CorrelationID != "" {
		parts = append(parts, "correlation="+e.CorrelationID)
	}
	if e.CausationID != "" {
		parts = append(parts, "causation="+e.CausationID)
	}
	var hs []string
	for k, v := range e.Headers {
		hs = append(hs, k+"="+v)
	}
	sort.Strings(hs)
	parts = append(parts, hs...)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// notFound explains a stream with no events: deleted (and when), or never
// written, with the entity ids of its category closest to the one asked for.
func (a *app) notFound(sid eventstore.StreamID) error {
	info, err := a.store.Info(a.ctx, sid)
	if err == nil && info.Deleted {
		return fmt.Errorf("stream %s was deleted (its deletion marker is v%d); its events are gone from the stream, the partition log may still hold them", sid, info.DeletedAt)
	}
	ids, err := a.entityIDs(sid.Category)
	if err != nil || len(ids) == 0 {
		return fmt.Errorf("stream %s not found: category %s has no entity streams", sid, sid.Category)
	}
	show := closestIDs(ids, sid.ID, 5)
	for i, id := range show {
		show[i] = eventstore.Stream(sid.Category, id).String()
	}
	return fmt.Errorf("stream %s not found (never written); %d entities in category %s, the closest: %s", sid, len(ids), sid.Category, strings.Join(show, ", "))
}

// entityIDs returns the ids of category's entity streams.
func (a *app) entityIDs(category string) ([]string, error) {
	kc, err := a.classifier([]string{category})
	if err != nil {
		return nil, err
	}
	keys, err := scanNamespace(a.ctx, a.client, kc, scanOptions{match: kc.ks.StreamPattern(category), typ: "stream",
		keep: func(k keyInfo) bool { return k.Kind == kindStream && k.Stream.Category == category }})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.Stream.ID
	}
	return ids, nil
}

// closestIDs returns at most n of ids (reordered in place) closest to id:
// the longest common prefix first, then the shortest id.
func closestIDs(ids []string, id string, n int) []string {
	common := func(x string) int {
		k := 0
		for k < len(x) && k < len(id) && x[k] == id[k] {
			k++
		}
		return k
	}
	sort.Slice(ids, func(i, j int) bool {
		if ci, cj := common(ids[i]), common(ids[j]); ci != cj {
			return ci > cj
		}
		if len(ids[i]) != len(ids[j]) {
			return len(ids[i]) < len(ids[j])
		}
		return ids[i] < ids[j]
	})
	return ids[:min(len(ids), n)]
}
