package eventstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTracePropagation: an append under a span records a child span, and the
// events carry its trace context to whoever reads them.
func TestTracePropagation(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	s, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(storetest.Registry()),
		eventstore.WithTracerProvider(tp), eventstore.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	cmdCtx, cmd := tp.Tracer("test").Start(ctx, "command")
	id := eventstore.Stream("account", "traced")
	caller := map[string]string{"tenant": "t1"}
	ev := eventstore.NewEvent(storetest.Deposited{Amount: 1})
	ev.Headers = caller
	if _, err := s.Append(cmdCtx, id, eventstore.NoStream, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(cmdCtx, id, eventstore.NoStream, eventstore.NewEvent(storetest.Deposited{Amount: 2})); !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatal(err)
	}
	cmd.End()
	if len(caller) != 1 {
		t.Fatalf("the caller's headers were changed: %v", caller)
	}
	var appendSpan sdktrace.ReadOnlySpan
	for _, sp := range spans.Ended() {
		if sp.Name() == "streamfold.append" {
			appendSpan = sp
			break
		}
	}
	if appendSpan == nil || appendSpan.Parent().SpanID() != cmd.SpanContext().SpanID() || appendSpan.SpanKind() != trace.SpanKindProducer {
		t.Fatalf("append span %v", appendSpan)
	}
	last, err := s.Last(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if last.Headers["tenant"] != "t1" || last.Headers["traceparent"] == "" {
		t.Fatalf("headers %v", last.Headers)
	}
	got := trace.SpanContextFromContext(eventstore.TraceContext(ctx, last))
	if got.TraceID() != cmd.SpanContext().TraceID() || got.SpanID() != appendSpan.SpanContext().SpanID() {
		t.Fatalf("extracted %v, want trace %v span %v", got, cmd.SpanContext().TraceID(), appendSpan.SpanContext().SpanID())
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, p := range d.DataPoints {
					sums[m.Name] += p.Value
				}
			}
		}
	}
	if sums["streamfold.events.appended"] != 1 || sums["streamfold.append.conflicts"] != 1 {
		t.Fatalf("metrics %v", sums)
	}
}
