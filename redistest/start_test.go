package redistest

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a slog handler.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStart checks the non-test entry point: it ignores REDIS_URL under SourceAuto,
// logs through the given slog.Logger, hands out working clients, and Close stops the
// server it started.
func TestStart(t *testing.T) {
	if src, _ := forcedSource(); src == SourceEnv {
		t.Skip("REDISTEST_SOURCE=env: Start connects to REDIS_URL by request")
	}
	// A URL nothing listens on: Start must not try it.
	t.Setenv(envURL, "redis://127.0.0.1:1")

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := Start(ctx, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.Source() == SourceEnv {
		t.Fatalf("Start used %s: %s", envURL, s)
	}
	if s.Cluster() {
		t.Fatalf("Start without WithCluster gave a cluster: %s", s)
	}
	if !strings.Contains(logs.String(), "redistest: dedicated "+s.String()) {
		t.Errorf("logger did not get the started server; logs:\n%s", logs.String())
	}

	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Do(ctx, c.B().Ping().Build()).ToString(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	c.Close()

	addr := s.Addrs()[0]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if err := ping(pctx, addr); err == nil {
		t.Fatalf("%s still answers PING after Close", addr)
	}
}

func TestStartCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := Start(ctx, WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil {
		_ = s.Close()
		if s.Source() != SourceEnv {
			t.Fatalf("Start with a cancelled context started %s", s)
		}
	}
}

// TestConnect: REDIS_URL wins; without it Connect starts an ephemeral
// server, and close stops it.
func TestConnect(t *testing.T) {
	ctx := context.Background()
	srv := NewServer(t, WithSource(SourceLocal))
	t.Setenv("REDIS_URL", "redis://"+srv.Addrs()[0])
	c, desc, closeFn, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(desc, srv.Addrs()[0]) || c.Do(ctx, c.B().Ping().Build()).Error() != nil {
		t.Fatalf("REDIS_URL: %s", desc)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REDIS_URL", "")
	t.Setenv("REDISTEST_SOURCE", "local")
	c, desc, closeFn, err = Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(desc, "ephemeral") || c.Do(ctx, c.B().Ping().Build()).Error() != nil {
		t.Fatalf("ephemeral: %s", desc)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
}
