package projection_test

import (
	"context"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTracingAndMetrics: an event whose headers carry a W3C trace context
// is handled in a span "streamfold.handle" that is a child of that context,
// with the event's attributes; the events counter and the lag and
// dead-letter gauges are reported.
func TestTracingAndMetrics(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		s := newStore(t, tg.Client, tg.Namespace, 2)
		m := newModel(t, tg.Client, tg.Namespace, "traced")

		// The command side: a span whose context travels in the headers.
		cctx, cmd := tp.Tracer("test").Start(ctx, "command")
		headers := map[string]string{}
		propagation.TraceContext{}.Inject(cctx, propagation.MapCarrier(headers))
		cmd.End()
		ev := eventstore.Event{Data: Deposited{Amount: amount("t", 1)}}
		ev.Headers = headers
		res, err := s.Append(ctx, eventstore.Stream(category, "t"), eventstore.NoStream, ev)
		if err != nil {
			t.Fatal(err)
		}

		for _, h := range []projection.Handler{counting(m), countingBatch(m)} {
			exp.Reset()
			name := "traced"
			if _, ok := h.(projection.BatchHandler); ok {
				name = "tracedbatch"
			}
			r, err := projection.NewRunner(s, projection.Projection{Name: name, Categories: []string{category}, Handler: h},
				projection.WithTracerProvider(tp), projection.WithMeterProvider(mp), projection.WithBlock(100*time.Millisecond), quiet())
			if err != nil {
				t.Fatal(err)
			}
			stop := runRunner(t, r)
			if err := r.WaitFor(ctx, res); err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, sp := range exp.GetSpans() {
				if sp.Name != "streamfold.handle" {
					continue
				}
				found = true
				if sp.Parent.SpanID() != cmd.SpanContext().SpanID() || sp.SpanContext.TraceID() != cmd.SpanContext().TraceID() {
					t.Fatalf("%s: span parent %v, want %v", name, sp.Parent, cmd.SpanContext())
				}
				attrs := attribute.NewSet(sp.Attributes...)
				for k, want := range map[attribute.Key]string{"projection": name, "stream": "acct-t", "version": "1", "type": "deposited", "category": category} {
					if v, ok := attrs.Value(k); !ok || v.Emit() != want {
						t.Fatalf("%s: attribute %s = %q, want %q", name, k, v.Emit(), want)
					}
				}
			}
			if !found {
				t.Fatalf("%s: no streamfold.handle span among %d", name, len(exp.GetSpans()))
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(ctx, &rm); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, sm := range rm.ScopeMetrics {
				for _, mt := range sm.Metrics {
					got[mt.Name] = true
				}
			}
			for _, want := range []string{"streamfold.projection.events", "streamfold.projection.lag", "streamfold.projection.dead_letters"} {
				if !got[want] {
					t.Fatalf("%s: metric %s missing (have %v)", name, want, got)
				}
			}
			stop()
		}
	})
}
