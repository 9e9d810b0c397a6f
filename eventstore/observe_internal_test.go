package eventstore

import (
	"context"
	"testing"
)

// BenchmarkObserveNoop is what the observability of one append costs when no
// provider is installed (the default global no-ops).
func BenchmarkObserveNoop(b *testing.B) {
	s := &Store{inst: newInstruments(&options{})}
	appends := []StreamAppend{{Stream: Stream("account", "acc-1"), Events: []Event{{}}}}
	res := []AppendResult{{Version: 1, Positions: []Position{{}}}}
	ctx := context.Background()
	for b.Loop() {
		c, span, start := s.startAppend(ctx, appends)
		s.endAppend(c, span, start, appends, res, nil)
	}
}
