package ordersvc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/examples/orders/ordersvc"
	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// replica is one replica of the service with its own client (connections
// and client-side cache, as a separate process has) and HTTP server.
type replica struct {
	*ordersvc.Replica
	client rueidis.Client
	srv    *httptest.Server
	closed bool
}

func startReplica(t *testing.T, tg *redistest.Target, instance string, cfg ordersvc.Config) *replica {
	t.Helper()
	cfg.Client = tg.NewClient(t)
	cfg.Namespace, cfg.Instance = tg.Namespace, instance
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := ordersvc.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := &replica{Replica: r, client: cfg.Client, srv: httptest.NewServer(r.Handler())}
	t.Cleanup(func() { rep.close(t) })
	return rep
}

// close stops the HTTP server, then the replica, gracefully.
func (r *replica) close(t *testing.T) {
	if r.closed {
		return
	}
	r.closed = true
	r.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Errorf("close %s: %v", r.Runner().Instance(), err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func addItem(ctx context.Context, base, id string, price int64) (ordersvc.View, error) {
	body, _ := json.Marshal(ordersvc.AddItem{SKU: "sku", Price: price})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/orders/"+id+"/items", bytes.NewReader(body))
	return do(req)
}

func getOrder(ctx context.Context, base, id string) (ordersvc.View, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/orders/"+id, nil)
	return do(req)
}

func do(req *http.Request) (ordersvc.View, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ordersvc.View{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return ordersvc.View{}, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(b.String()))
	}
	var v ordersvc.View
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// Two replicas on one Redis: a write through one, then at once a read
// through the other, from several clients at a time: never stale.
func TestReadYourWritesAcrossReplicas(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		a := startReplica(t, tg, "orders-a", ordersvc.Config{})
		b := startReplica(t, tg, "orders-b", ordersvc.Config{})
		const clients, writes = 4, 60
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			wg.Go(func() {
				for i := range writes {
					id := fmt.Sprintf("o%d-%d", c, i%7)
					from, to := a.srv.URL, b.srv.URL
					if i%2 == 1 {
						from, to = to, from
					}
					w, err := addItem(ctx, from, id, int64(i+1))
					if err != nil {
						errs <- err
						return
					}
					r, err := getOrder(ctx, to, id)
					if err != nil {
						errs <- fmt.Errorf("read after write %d of %s: %w", i, id, err)
						return
					}
					if r.Version < w.Version || r.Version == w.Version && (r.Items != w.Items || r.Total != w.Total) {
						errs <- fmt.Errorf("stale read of %s through the other replica: wrote %+v, read %+v", id, w, r)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		t.Logf("%d writes, each read at once through the other replica: none stale; partitions held: %s %v, %s %v",
			clients*writes, a.Runner().Instance(), a.Runner().Held(), b.Runner().Instance(), b.Runner().Held())
	})
}

// How long the partitions of a replica wait for the other one after a
// graceful stop and after a crash (its leases are not handed back: its
// client is closed under it, as when a process dies), with the library's
// default lease TTL: the time from the stop until a write to an order of a
// partition it held is applied (the POST to the other replica returns).
// Reported in the log; bounded generously so a loaded machine passes.
func TestTakeover(t *testing.T) {
	for _, mode := range []string{"graceful", "crash"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			tg := redistest.Standalone(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cfg := ordersvc.Config{RequestTimeout: time.Minute}
			a := startReplica(t, tg, "orders-a", cfg)
			b := startReplica(t, tg, "orders-b", cfg)
			// Await a balanced split: each replica holds its share.
			var held []string
			for {
				held = a.Runner().Held()
				if len(held) > 0 && len(b.Runner().Held()) > 0 && len(held)+len(b.Runner().Held()) == 16 {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("no balanced split: a %v, b %v", held, b.Runner().Held())
				case <-time.After(50 * time.Millisecond):
				}
			}
			// An order in a partition replica a holds.
			p, _ := strconv.Atoi(held[0][strings.IndexByte(held[0], '/')+1:])
			id := ""
			for i := 0; id == ""; i++ {
				if c := fmt.Sprintf("t%d", i); eventstore.PartitionOf(c, 16) == p {
					id = c
				}
			}
			start := time.Now()
			if mode == "graceful" {
				a.close(t)
			} else {
				a.client.Close() // no lease handed back, nothing acked
			}
			if _, err := addItem(ctx, b.srv.URL, id, 1); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			t.Logf("takeover after a %s stop: a write to partition %d applied by %s %v after the stop (lease TTL 10s)",
				mode, p, b.Runner().Instance(), took.Round(time.Millisecond))
			if took > 45*time.Second {
				t.Errorf("takeover took %v", took)
			}
		})
	}
}
