package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
)

// Three schema versions of one event type, as a codebase would keep them.
type (
	depositedV1 struct{ Amount int64 } // cents, no currency
	depositedV2 struct{ Cents int64 }  // renamed field
	depositedV3 struct {
		Cents    int64
		Currency string
	} // current
)

func upcastRegistry(t *testing.T, failOn int64) *eventstore.Registry {
	t.Helper()
	r := eventstore.NewRegistry()
	if err := eventstore.Register[depositedV3](r, "Deposited", eventstore.SchemaVersion(3)); err != nil {
		t.Fatal(err)
	}
	// Registered newest first: the chain is assembled on read, not on registration.
	if err := eventstore.RegisterUpcast(r, "Deposited", 2, func(o depositedV2) (depositedV3, error) {
		return depositedV3{Cents: o.Cents, Currency: "EUR"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := eventstore.RegisterUpcast(r, "Deposited", 1, func(o depositedV1) (depositedV2, error) {
		if o.Amount == failOn {
			return depositedV2{}, fmt.Errorf("amount %d refused", o.Amount)
		}
		return depositedV2{Cents: o.Amount}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUpcast(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		open := func(reg *eventstore.Registry) *eventstore.Store {
			s, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		// Writers of the past: release 1 and release 2.
		r1 := eventstore.NewRegistry()
		eventstore.MustRegister[depositedV1](r1, "Deposited")
		r2 := eventstore.NewRegistry()
		eventstore.MustRegister[depositedV2](r2, "Deposited", eventstore.SchemaVersion(2))
		id := eventstore.Stream("account", "up-1")
		if _, err := open(r1).Append(ctx, id, eventstore.NoStream, eventstore.NewEvent(depositedV1{Amount: 5}), eventstore.NewEvent(depositedV1{Amount: 13})); err != nil {
			t.Fatal(err)
		}
		if _, err := open(r2).Append(ctx, id, eventstore.Exact(2), eventstore.NewEvent(depositedV2{Cents: 7})); err != nil {
			t.Fatal(err)
		}
		cur := open(upcastRegistry(t, 13))
		if _, err := cur.Append(ctx, id, eventstore.Exact(3), eventstore.NewEvent(depositedV3{Cents: 9, Currency: "USD"})); err != nil {
			t.Fatal(err)
		}

		var got []string
		for ev, err := range cur.Read(ctx, id, 0) {
			if err != nil {
				var ue *eventstore.UpcastError
				if !errors.Is(err, eventstore.ErrUpcast) || !errors.As(err, &ue) || ue.From != 1 || ue.To != 3 || !strings.Contains(err.Error(), "amount 13 refused") {
					t.Fatalf("v%d: %v", ev.Version, err)
				}
				if ev.Data != nil || len(ev.Raw) == 0 || ev.SchemaVersion != 1 {
					t.Fatalf("failed upcast yields %+v", ev)
				}
				got = append(got, "error")
				continue
			}
			d, ok := ev.Data.(depositedV3)
			if !ok {
				t.Fatalf("v%d: Data is %T", ev.Version, ev.Data)
			}
			got = append(got, fmt.Sprintf("v%d/s%d %d %s", ev.Version, ev.SchemaVersion, d.Cents, d.Currency))
		}
		want := "v1/s1 5 EUR|error|v3/s2 7 EUR|v4/s3 9 USD"
		if strings.Join(got, "|") != want {
			t.Fatalf("got  %s\nwant %s", strings.Join(got, "|"), want)
		}

		// The release-1 reader meets events newer than it knows.
		for ev, err := range open(r1).Read(ctx, id, 3) {
			if !errors.Is(err, eventstore.ErrUpcast) {
				t.Fatalf("v%d read by an older release: %v", ev.Version, err)
			}
		}

		// A chain with a gap: version 2 stored, no step from 2.
		gap := eventstore.NewRegistry()
		eventstore.MustRegister[depositedV3](gap, "Deposited", eventstore.SchemaVersion(3))
		eventstore.MustRegisterUpcast(gap, "Deposited", 1, func(o depositedV1) (depositedV2, error) { return depositedV2{Cents: o.Amount}, nil })
		for ev, err := range open(gap).Read(ctx, id, 3, eventstore.Limit(1)) {
			if !errors.Is(err, eventstore.ErrUpcast) || !strings.Contains(err.Error(), "no upcaster registered from version 2") {
				t.Fatalf("v%d with a gap in the chain: %v", ev.Version, err)
			}
		}
	})
}

func TestRegisterUpcastErrors(t *testing.T) {
	r := eventstore.NewRegistry()
	up := func(o depositedV1) (depositedV2, error) { return depositedV2{Cents: o.Amount}, nil }
	if err := eventstore.RegisterUpcast(r, "Deposited", 1, up); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"duplicate":    eventstore.RegisterUpcast(r, "Deposited", 1, up),
		"version 0":    eventstore.RegisterUpcast(r, "Deposited", 0, up),
		"bad name":     eventstore.RegisterUpcast(r, "a b", 1, up),
		"nil function": eventstore.RegisterUpcast[depositedV1, depositedV2](r, "Other", 1, nil),
	} {
		if !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
