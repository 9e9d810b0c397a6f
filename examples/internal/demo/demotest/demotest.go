// Package demotest runs the examples' stories in their tests.
package demotest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/streamfold/streamfold/examples/internal/demo"
	"github.com/streamfold/streamfold/redistest"
)

// Tell runs a story (called name in messages) on tg, in tg's namespace,
// within two minutes, and returns that context, for the test's own checks,
// and the narration. A story that fails fails the test with its narration;
// the narration is logged too when the test fails later.
func Tell(t *testing.T, tg *redistest.Target, name string, run demo.RunFunc) (context.Context, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	var out bytes.Buffer
	start := time.Now()
	if err := run(ctx, &out, tg.Client, tg.Namespace); err != nil {
		t.Fatalf("%s: %v\noutput:\n%s", name, err, out.String())
	}
	t.Logf("%s took %v", name, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output:\n%s", out.String())
		}
	})
	return ctx, out.String()
}
