package readmodel

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// observe registers the counters of the read model name with mp (nil:
// otel.GetMeterProvider()), read from stats when metrics are collected:
// streamfold.readmodel.cache.hits and .misses, and streamfold.readmodel.writes
// by outcome, applied and skipped. withLoader adds what only a Model has:
// streamfold.readmodel.cache.loads and the writes deferred to the loader.
func observe(mp metric.MeterProvider, name string, withLoader bool, stats func() Stats) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter("github.com/streamfold/streamfold/readmodel")
	hits, _ := meter.Int64ObservableCounter("streamfold.readmodel.cache.hits", metric.WithDescription("Gets served from the client-side cache"))
	misses, _ := meter.Int64ObservableCounter("streamfold.readmodel.cache.misses", metric.WithDescription("Gets that went to Redis"))
	writes, _ := meter.Int64ObservableCounter("streamfold.readmodel.writes", metric.WithDescription("version-guarded writes: applied, skipped as not newer, or deferred to the loader (missing entry)"))
	instruments := []metric.Observable{hits, misses, writes}
	var loads metric.Int64ObservableCounter
	if withLoader {
		loads, _ = meter.Int64ObservableCounter("streamfold.readmodel.cache.loads", metric.WithDescription("misses filled by the loader"))
		instruments = append(instruments, loads)
	}
	model := attribute.String("streamfold.readmodel", name)
	outcome := func(o string) metric.ObserveOption {
		return metric.WithAttributes(model, attribute.String("outcome", o))
	}
	// Registration fails only on instruments of another provider; the
	// counters stay readable through Stats either way.
	_, _ = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := stats()
		o.ObserveInt64(hits, st.Hits, metric.WithAttributes(model))
		o.ObserveInt64(misses, st.Misses, metric.WithAttributes(model))
		o.ObserveInt64(writes, st.Applied, outcome("applied"))
		o.ObserveInt64(writes, st.Skipped, outcome("skipped"))
		if withLoader {
			o.ObserveInt64(loads, st.Loads, metric.WithAttributes(model))
			o.ObserveInt64(writes, st.Deferred, outcome("deferred"))
		}
		return nil
	}, instruments...)
}
