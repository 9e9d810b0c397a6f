package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
)

// User events (category "user"). Both carry the whole profile (event-carried
// state), so the consumer can refresh a cache entry from the event alone.
type (
	UserRegistered struct{ Name, Email, Plan string }
	ProfileUpdated struct{ Name, Email, Plan string }
)

// Profile is a user's current profile: the fold of their events.
type Profile struct{ Name, Email, Plan string }

func registerEvents(r *eventstore.Registry) {
	eventstore.MustRegister[UserRegistered](r, "UserRegistered")
	eventstore.MustRegister[ProfileUpdated](r, "ProfileUpdated")
}

func user(id string) eventstore.StreamID { return eventstore.Stream("user", id) }

// profileOf is the fold of one event; ok is false for events that do not set a profile.
func profileOf(data any) (p Profile, ok bool) {
	switch e := data.(type) {
	case UserRegistered:
		return Profile(e), true
	case ProfileUpdated:
		return Profile(e), true
	}
	return Profile{}, false
}

// fold reads a user's events and returns the profile and its version: what a
// cache-aside loader does on a miss. A user without a stream (never registered,
// or deleted) is eventstore.ErrStreamNotFound, which the read model turns into
// readmodel.ErrNotFound.
func fold(ctx context.Context, store *eventstore.Store, id string) (Profile, uint64, error) {
	var (
		p Profile
		v uint64
	)
	for ev, err := range store.Read(ctx, user(id), 0) {
		if err != nil {
			return Profile{}, 0, err
		}
		if np, ok := profileOf(ev.Data); ok {
			p = np
		}
		v = ev.Version
	}
	return p, v, nil
}

// The read model's two schemas: v1 stores the name whole; v2 splits it into
// first and last name. Each schema version has its own keys.
func fieldsV1(p Profile) map[string]string {
	return map[string]string{"name": p.Name, "email": p.Email, "plan": p.Plan}
}

func fieldsV2(p Profile) map[string]string {
	first, last, _ := strings.Cut(p.Name, " ")
	return map[string]string{"first": first, "last": last, "email": p.Email, "plan": p.Plan}
}

// loader is the cache-aside loader of one schema: fold the user's events.
func loader(store *eventstore.Store, fields func(Profile) map[string]string) readmodel.Loader {
	return func(ctx context.Context, id string) (readmodel.Entry, error) {
		p, v, err := fold(ctx, store, id)
		if err != nil {
			return readmodel.Entry{}, fmt.Errorf("fold %s: %w", user(id), err)
		}
		return readmodel.Entry{ID: id, Version: v, Fields: fields(p)}, nil
	}
}

// consumer is the stream consumer of one schema: it refreshes a user's entry
// on every profile event and deletes it (leaving a version tombstone) when the
// user is deleted. Writes are version-guarded: redeliveries change nothing.
func consumer(m *readmodel.Model, fields func(Profile) map[string]string) func(context.Context, eventstore.RecordedEvent) error {
	return func(ctx context.Context, ev eventstore.RecordedEvent) error {
		if ev.Type == eventstore.DeletedType {
			_, err := m.Delete(ctx, ev.Stream.ID, ev.Version)
			return err
		}
		p, ok := profileOf(ev.Data)
		if !ok {
			return nil
		}
		_, err := m.Set(ctx, ev.Stream.ID, ev.Version, fields(p))
		return err
	}
}
