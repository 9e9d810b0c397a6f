// Package ordersvc is a small HTTP service on Streamfold, wired as the
// README's "Wiring a service" says: orders are aggregates with snapshots,
// a projection keeps an "orders" read model, and every replica serves the
// API and runs the projection under its own instance id. A write returns
// once the projection has applied it (projection.WaitFor by name, on the
// result the Update returns), so a read through any replica right after
// the response sees it (GetFresh).
//
//	POST /orders/{id}/items  {"sku": "book", "price": 1200}  add an item
//	GET  /orders/{id}                                        read the order
package ordersvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/aggregate"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
	"github.com/streamfold/streamfold/snapshot"
)

// ItemAdded is the event of an order's new item.
type ItemAdded struct {
	SKU   string
	Price int64
}

// Order is an order's state.
type Order struct {
	Items int
	Total int64
}

// AddItem is the command of POST /orders/{id}/items.
type AddItem struct {
	SKU   string `json:"sku"`
	Price int64  `json:"price"`
}

// ErrInvalid: a command the domain refuses.
var ErrInvalid = errors.New("ordersvc: invalid command")

func addItem(_ Order, c AddItem) ([]any, error) {
	if c.SKU == "" || c.Price <= 0 {
		return nil, fmt.Errorf("%w: an item needs a sku and a positive price", ErrInvalid)
	}
	return []any{ItemAdded{SKU: c.SKU, Price: c.Price}}, nil
}

// Projection is the name of the projection into the orders read model.
const Projection = "orders"

// Config wires one replica.
type Config struct {
	// Client is the replica's Redis client, built from a URL with
	// rueidis.ParseURL; the caller closes it after Replica.Close.
	Client    rueidis.Client
	Namespace string
	// Instance is the replica's projection instance id (its pod name, say):
	// a replica restarted under the same id takes its leases back at once.
	Instance string
	Logger   *slog.Logger
	// RequestTimeout bounds each request's Redis work (default 5s): without
	// a deadline a call to an unreachable Redis blocks.
	RequestTimeout time.Duration
	// LeaseTTL is the projection's lease TTL (default 10s, the library's):
	// how long the partitions of a crashed replica wait for a takeover.
	LeaseTTL time.Duration
}

// Replica is one process of the service: the API and a runner of the
// projection.
type Replica struct {
	cfg    Config
	store  *eventstore.Store
	snaps  *snapshot.Store
	orders *aggregate.Repository[Order]
	model  *readmodel.Model
	runner *projection.Runner
	stop   context.CancelFunc
	done   chan error
}

// Start builds the replica and starts its projection runner.
func Start(ctx context.Context, cfg Config) (*Replica, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	store, err := eventstore.New(cfg.Client, eventstore.WithNamespace(cfg.Namespace), eventstore.WithLogger(cfg.Logger))
	if err != nil {
		return nil, err
	}
	typ := aggregate.NewType("order", func(s *Order, ev any) {
		if e, ok := ev.(ItemAdded); ok {
			s.Items++
			s.Total += e.Price
		}
	})
	aggregate.MustRegisterEvent[ItemAdded](typ, "ItemAdded")
	snaps, err := snapshot.New(store, snapshot.WithPolicy(snapshot.Every(20)), snapshot.WithLogger(cfg.Logger))
	if err != nil {
		return nil, err
	}
	r := &Replica{cfg: cfg, store: store, snaps: snaps, done: make(chan error, 1)}
	fail := func(err error) (*Replica, error) {
		snaps.Close(ctx)
		return nil, err
	}
	if r.orders, err = aggregate.NewRepository(store, typ, aggregate.WithSnapshots(snaps), aggregate.WithLogger(cfg.Logger)); err != nil {
		return fail(err)
	}
	if r.model, err = readmodel.New(cfg.Client, cfg.Namespace, "orders"); err != nil {
		return fail(err)
	}
	// A runner waits for its categories: create it, so the first replica
	// starts on it before the first order.
	if _, err := store.CreateCategory(ctx, "order"); err != nil {
		return fail(err)
	}
	handler := projection.HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
		if e, ok := ev.Data.(ItemAdded); ok {
			_, err := r.model.Patch(ctx, ev.Stream.ID, ev.Version, readmodel.IncrBy("items", 1), readmodel.IncrBy("total", e.Price))
			return err
		}
		return nil
	})
	opts := []projection.Option{projection.WithInstanceID(cfg.Instance), projection.WithLogger(cfg.Logger)}
	if cfg.LeaseTTL > 0 {
		opts = append(opts, projection.WithLeaseTTL(cfg.LeaseTTL))
	}
	if r.runner, err = projection.NewRunner(store, projection.Projection{Name: Projection, Categories: []string{"order"}, Handler: handler}, opts...); err != nil {
		return fail(err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	go func() { r.done <- r.runner.Run(runCtx) }()
	return r, nil
}

// Runner returns the replica's projection runner.
func (r *Replica) Runner() *projection.Runner { return r.runner }

// Close shuts the replica down gracefully: the runner finishes its events
// in flight, acks them and hands its leases back (another replica takes
// them at its next maintenance tick), then the snapshot writer flushes what
// is queued. Stop the HTTP server first, so no request is left half done.
func (r *Replica) Close(ctx context.Context) error {
	r.stop()
	var err error
	select {
	case err = <-r.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return errors.Join(err, r.snaps.Close(ctx))
}

// Handler returns the replica's HTTP API.
func (r *Replica) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders/{id}/items", r.addItem)
	mux.HandleFunc("GET /orders/{id}", r.get)
	return mux
}

// View is an order as the API returns it.
type View struct {
	ID      string `json:"id"`
	Version uint64 `json:"version"`
	Items   int    `json:"items"`
	Total   int64  `json:"total"`
}

func (r *Replica) addItem(w http.ResponseWriter, req *http.Request) {
	var cmd AddItem
	if err := json.NewDecoder(req.Body).Decode(&cmd); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.RequestTimeout)
	defer cancel()
	a, err := r.orders.Update(ctx, req.PathValue("id"), aggregate.Decide(addItem, cmd))
	if err != nil {
		r.fail(w, err)
		return
	}
	// Read your writes: answer once the projection has applied the write,
	// whichever replica holds the partition.
	if err := projection.WaitFor(ctx, r.store, Projection, a.LastAppend()); err != nil {
		r.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, View{ID: a.ID(), Version: a.Version(), Items: a.State().Items, Total: a.State().Total})
}

func (r *Replica) get(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.RequestTimeout)
	defer cancel()
	// Fresh, not cached: after another replica's write, this replica's
	// cached copy is invalidated by Redis a moment later.
	e, err := r.model.GetFresh(ctx, req.PathValue("id"))
	if err != nil {
		r.fail(w, err)
		return
	}
	items, _ := strconv.Atoi(e.Fields["items"])
	total, _ := strconv.ParseInt(e.Fields["total"], 10, 64)
	writeJSON(w, http.StatusOK, View{ID: e.ID, Version: e.Version, Items: items, Total: total})
}

func (r *Replica) fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, eventstore.ErrInvalidStreamID), errors.Is(err, readmodel.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, readmodel.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, aggregate.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	if code >= 500 {
		r.cfg.Logger.Error("ordersvc: request failed", "err", err)
	}
	http.Error(w, err.Error(), code)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
