package readmodel_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
)

// TestNewJoinsEveryProblem: New and NewRollup check everything before
// failing and name each bad option.
func TestNewJoinsEveryProblem(t *testing.T) {
	_, err := readmodel.New(nil, "bad ns", "bad name", readmodel.WithSchemaVersion(-1),
		readmodel.WithTTL(time.Microsecond), readmodel.WithTombstoneTTL(-time.Second), readmodel.WithCacheTTL(-time.Second))
	if !errors.Is(err, readmodel.ErrInvalid) || !errors.Is(err, eventstore.ErrInvalidStreamID) {
		t.Fatalf("want ErrInvalid and ErrInvalidStreamID: %v", err)
	}
	for _, want := range []string{"namespace", "bad name", "WithSchemaVersion", "WithTTL: TTL 1µs below a millisecond",
		"WithTombstoneTTL: negative", "WithCacheTTL: negative", "WithTTL without WithLoader"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in %v", want, err)
		}
	}
	_, err = readmodel.NewRollup(nil, "ns", "r", readmodel.WithSchemaVersion(-1), readmodel.WithTombstoneTTL(time.Hour))
	if !errors.Is(err, readmodel.ErrInvalid) || !strings.Contains(err.Error(), "WithSchemaVersion") || !strings.Contains(err.Error(), "do not apply") {
		t.Fatalf("NewRollup: %v", err)
	}
	if _, err := readmodel.New(nil, "ns", "m", readmodel.WithCacheTTL(time.Microsecond)); err != nil {
		t.Fatalf("a client-side cache TTL below a millisecond: %v", err)
	}
}
