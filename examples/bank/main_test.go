package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/examples/bank/bankdemo"
	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestMetricsExposed: with -metrics, the demo's appends, projections and
// read models show up at the Prometheus endpoint.
func TestMetricsExposed(t *testing.T) {
	url, stop, err := serveMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tg := redistest.Standalone(t)
	ctx := context.Background()
	if err := bankdemo.Run(ctx, io.Discard, tg.Client, tg.Namespace); err != nil {
		t.Fatal(err)
	}
	series, err := streamfoldSeries(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"streamfold_events_appended_total": false, "streamfold_projection_events_total": false, "streamfold_readmodel_cache_hits_total": false, "streamfold_append_duration_seconds_bucket": false}
	for _, s := range series {
		for name := range want {
			if strings.HasPrefix(s, name+"{") {
				want[name] = true
			}
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("no %s among %d series", name, len(series))
		}
	}
}
