// Command orders runs the orders service (package ordersvc) as two
// replicas in one process, each with its own Redis client, HTTP server and
// projection instance, on REDIS_URL or an ephemeral Redis; it writes
// through one replica, reads through the other, and shuts both down
// gracefully.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/examples/orders/ordersvc"
	"github.com/streamfold/streamfold/redistest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		srv, err := redistest.Start(ctx)
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		url = "redis://" + srv.Addrs()[0]
	}
	if err := run(ctx, os.Stdout, url, "orders-"+strings.ToLower(rand.Text()[:8])); err != nil {
		log.Fatal(err)
	}
}

type replica struct {
	*ordersvc.Replica
	client rueidis.Client
	http   *http.Server
	url    string
}

func run(ctx context.Context, w io.Writer, redisURL, ns string) error {
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var reps []*replica
	for _, name := range []string{"orders-a", "orders-b"} {
		opt, err := rueidis.ParseURL(redisURL)
		if err != nil {
			return err
		}
		client, err := rueidis.NewClient(opt)
		if err != nil {
			return err
		}
		r, err := ordersvc.Start(ctx, ordersvc.Config{Client: client, Namespace: ns, Instance: name, Logger: logger})
		if err != nil {
			client.Close()
			return err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		rep := &replica{Replica: r, client: client, http: &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 5 * time.Second}, url: "http://" + ln.Addr().String()}
		go rep.http.Serve(ln)
		reps = append(reps, rep)
		fmt.Fprintf(w, "%s serving on %s\n", name, rep.url)
	}
	defer func() {
		// Graceful shutdown, in order: stop taking requests, stop the
		// runner (acks, leases handed back), flush snapshots, close the client.
		for _, r := range reps {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := errors.Join(r.http.Shutdown(sctx), r.Close(sctx))
			cancel()
			r.client.Close()
			if err != nil {
				fmt.Fprintf(w, "shutdown: %v\n", err)
			}
		}
	}()
	for i, price := range []int64{1200, 350, 99} {
		from, to := reps[i%2], reps[(i+1)%2]
		body, _ := json.Marshal(ordersvc.AddItem{SKU: fmt.Sprintf("sku-%d", i), Price: price})
		var wrote, read ordersvc.View
		if err := call(ctx, http.MethodPost, from.url+"/orders/o1/items", body, &wrote); err != nil {
			return err
		}
		if err := call(ctx, http.MethodGet, to.url+"/orders/o1", nil, &read); err != nil {
			return err
		}
		fmt.Fprintf(w, "POST via %s: version %d, %d items; GET via %s at once: version %d, total %d\n",
			from.Runner().Instance(), wrote.Version, wrote.Items, to.Runner().Instance(), read.Version, read.Total)
		if read.Version < wrote.Version {
			return fmt.Errorf("stale read: wrote %+v, read %+v", wrote, read)
		}
	}
	return nil
}

func call(ctx context.Context, method, url string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
