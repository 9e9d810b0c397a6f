package projection

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation is the OpenTelemetry scope name of the runner.
const instrumentation = "github.com/streamfold/streamfold/projection"

// WithTracerProvider sets where the runner's spans go (default
// otel.GetTracerProvider(): a no-op until the program installs one). Every
// handled event gets a span "streamfold.handle" whose parent is the W3C trace
// context found in the event's headers ("traceparent", "tracestate"), so a
// trace follows a command through the append into its projections.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithMeterProvider sets where the runner's metrics go (default
// otel.GetMeterProvider()): streamfold.projection.events (counter, by
// outcome), and the observable gauges streamfold.projection.lag and
// streamfold.projection.dead_letters per partition this instance holds.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}

type telemetry struct {
	tracer      trace.Tracer
	meter       metric.Meter
	events      metric.Int64Counter
	lag, dead   metric.Int64ObservableGauge
	okAttrs     metric.AddOption
	failedAttrs metric.AddOption
	projAttr    attribute.KeyValue
}

func (t *telemetry) init(r *Runner, o options) error {
	tp, mp := o.tracerProvider, o.meterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t.tracer = tp.Tracer(instrumentation)
	t.meter = mp.Meter(instrumentation)
	t.projAttr = attribute.String("projection", r.proj.Name)
	var err error
	if t.events, err = t.meter.Int64Counter("streamfold.projection.events",
		metric.WithDescription("Events handled, by outcome (applied, failed)."), metric.WithUnit("{event}")); err != nil {
		return fmt.Errorf("projection %s: metrics: %w", r.proj.Name, err)
	}
	if t.lag, err = t.meter.Int64ObservableGauge("streamfold.projection.lag",
		metric.WithDescription("Partition log entries not yet delivered to the projection."), metric.WithUnit("{event}")); err != nil {
		return fmt.Errorf("projection %s: metrics: %w", r.proj.Name, err)
	}
	if t.dead, err = t.meter.Int64ObservableGauge("streamfold.projection.dead_letters",
		metric.WithDescription("Dead letters waiting in the partition's queue."), metric.WithUnit("{event}")); err != nil {
		return fmt.Errorf("projection %s: metrics: %w", r.proj.Name, err)
	}
	t.okAttrs = metric.WithAttributeSet(attribute.NewSet(t.projAttr, attribute.String("outcome", "applied")))
	t.failedAttrs = metric.WithAttributeSet(attribute.NewSet(t.projAttr, attribute.String("outcome", "failed")))
	return nil
}

// observe registers the gauges' callback for the time of a Run. It reports
// the partitions this instance holds, from Redis (XINFO GROUPS, XLEN), when
// the metrics are collected.
func (t *telemetry) observe(r *Runner) (unregister func()) {
	reg, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := r.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range st {
			if s.Owner != r.opts.instance {
				continue
			}
			attrs := metric.WithAttributes(t.projAttr, attribute.String("category", s.Category), attribute.Int("partition", s.Partition))
			if s.Lag >= 0 {
				o.ObserveInt64(t.lag, s.Lag, attrs)
			}
			o.ObserveInt64(t.dead, s.DeadLetters, attrs)
		}
		return nil
	}, t.lag, t.dead)
	if err != nil {
		r.log.Warn("projection: cannot register metrics callback", "err", err)
		return func() {}
	}
	return func() { _ = reg.Unregister() }
}

// start begins the span of one event, child of the trace context in its
// headers. Attributes are built only when the span records.
func (t *telemetry) start(ctx context.Context, p *partition, ev eventstore.RecordedEvent) (context.Context, trace.Span) {
	ctx, span := t.tracer.Start(eventstore.TraceContext(ctx, ev), "streamfold.handle", trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(t.projAttr,
			attribute.String("category", p.u.cat),
			attribute.Int("partition", p.u.p),
			attribute.String("stream", ev.Stream.String()),
			attribute.String("version", strconv.FormatUint(ev.Version, 10)),
			attribute.String("type", ev.Type))
	}
	return ctx, span
}

func (t *telemetry) end(ctx context.Context, span trace.Span, err error, n int64) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		t.events.Add(ctx, n, t.failedAttrs)
	} else {
		t.events.Add(ctx, n, t.okAttrs)
	}
	span.End()
}
