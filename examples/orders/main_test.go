package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// The program as make orders runs it, on the shared standalone server.
func TestRun(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, "redis://"+tg.Addrs[0], tg.Namespace); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "GET via"); n != 3 {
		t.Fatalf("%d reads, want 3:\n%s", n, out.String())
	}
	t.Log(out.String())
}
