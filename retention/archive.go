package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/streamfold/streamfold/eventstore"
)

// An Archiver keeps events before they are trimmed from an entity stream.
// Archive must return nil only once the events are durably stored: the
// stream is trimmed only after it succeeds, and left whole if it fails.
// Archiving the same events twice (a retried pass) must be harmless.
//
// Events are handed over as stored. Raw is the payload exactly as in Redis.
// With a codec whose encoding depends on the stream (an
// eventstore.StreamCodec such as package shred's), Data is decoded from Raw
// without the stream, into a generic value (maps, as the codec decodes into
// an `any`), so personal fields stay sealed: an archive, which Forget cannot
// rewrite, never holds them in the clear. With any other codec Data is the
// decoded (and upcast) event, as Read yields it.
type Archiver interface {
	Archive(ctx context.Context, stream eventstore.StreamID, events []eventstore.RecordedEvent) error
}

// FileArchiver appends events as JSON lines to one file per category and
// day (of the event's time, UTC): <Dir>/<category>/<2006-01-02>.jsonl. Each
// write is fsynced before Archive returns.
type FileArchiver struct {
	Dir string

	mu sync.Mutex
}

// ArchivedEvent is one line of a FileArchiver file. Data is the payload
// exactly as stored (the store's codec, msgpack by default), base64 in JSON;
// DataJSON is the decoded payload when its type was registered, for people
// and tools (see Archiver: with package shred its personal fields hold
// their sealed "shred:v1:..." values).
//
// To restore an event, decode Data with the store's codec and registry
// (Registry.New(Type), then the codec's UnmarshalStream with the stream for
// a StreamCodec), or write it back as it is: with package shred, personal
// fields decrypt while the entity's key lives and read as empty once it is
// forgotten, exactly as the store's own reads do.
type ArchivedEvent struct {
	Stream        string            `json:"stream"`
	Version       uint64            `json:"version"`
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	SchemaVersion int               `json:"schema_version"`
	Time          time.Time         `json:"time"`
	CorrelationID string            `json:"correlation_id,omitempty"`
	CausationID   string            `json:"causation_id,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Data          []byte            `json:"data"`
	DataJSON      json.RawMessage   `json:"data_json,omitempty"`
}

// ErrArchive: the archiver could not keep the events; nothing was trimmed.
var ErrArchive = errors.New("retention: archive failed")

// Archive implements Archiver.
func (a *FileArchiver) Archive(ctx context.Context, stream eventstore.StreamID, events []eventstore.RecordedEvent) error {
	if a.Dir == "" {
		return fmt.Errorf("%w: FileArchiver has no Dir", ErrArchive)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	byDay := map[string][]byte{}
	var days []string
	for _, ev := range events {
		line := ArchivedEvent{
			Stream: stream.String(), Version: ev.Version, ID: ev.ID.String(), Type: ev.Type, SchemaVersion: ev.SchemaVersion,
			Time: ev.Time, CorrelationID: ev.CorrelationID, CausationID: ev.CausationID, Headers: ev.Headers, Data: ev.Raw,
		}
		if ev.Data != nil {
			if j, err := json.Marshal(ev.Data); err == nil {
				line.DataJSON = j
			}
		}
		b, err := json.Marshal(line)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrArchive, err)
		}
		day := ev.Time.UTC().Format(time.DateOnly)
		if _, ok := byDay[day]; !ok {
			days = append(days, day)
		}
		byDay[day] = append(append(byDay[day], b...), '\n')
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	dir := filepath.Join(a.Dir, stream.Category)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: %v", ErrArchive, err)
	}
	for _, day := range days {
		if err := appendSync(filepath.Join(dir, day+".jsonl"), byDay[day]); err != nil {
			return fmt.Errorf("%w: %v", ErrArchive, err)
		}
	}
	// The directory entry of a new file must be durable too.
	return syncDir(dir)
}

func appendSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrArchive, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: %v", ErrArchive, err)
	}
	return nil
}

// ReadArchive decodes a FileArchiver file's lines, for restores and checks.
func ReadArchive(path string) ([]ArchivedEvent, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []ArchivedEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var e ArchivedEvent
		if err := dec.Decode(&e); err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// asStored returns events as an Archiver receives them: with a StreamCodec,
// Data is replaced by Raw decoded without the stream, so that personal
// fields the codec sealed per entity stay sealed. Read decrypted them (it
// decodes with the stream); an archive must not keep them that way, since
// forgetting the entity deletes only its key.
func asStored(codec eventstore.Codec, events []eventstore.RecordedEvent) []eventstore.RecordedEvent {
	if _, ok := codec.(eventstore.StreamCodec); !ok {
		return events
	}
	out := make([]eventstore.RecordedEvent, len(events))
	for i, ev := range events {
		ev.Data = nil
		var v any
		if len(ev.Raw) > 0 && codec.Unmarshal(ev.Raw, &v) == nil {
			ev.Data = v
		}
		out[i] = ev
	}
	return out
}
