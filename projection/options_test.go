package projection_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/redistest"
)

// NewRunner reports every problem of the projection and the options at
// once, each option by its name, all matching ErrInvalid.
func TestNewRunnerJoinsEveryProblem(t *testing.T) {
	tg := redistest.Standalone(t)
	s := newStore(t, tg.Client, tg.Namespace, 2)
	_, err := projection.NewRunner(s, projection.Projection{Name: "bad name", Categories: []string{category}, Handler: counting(newModel(t, tg.Client, tg.Namespace, "m"))},
		projection.WithInstanceID("has space"), projection.WithBatch(-1), projection.WithWorkers(-2),
		projection.WithBlock(time.Microsecond), projection.WithLeaseTTL(time.Millisecond))
	if !errors.Is(err, projection.ErrInvalid) {
		t.Fatalf("want ErrInvalid: %v", err)
	}
	for _, want := range []string{"bad name", "WithInstanceID", "WithBatch(-1)", "WithWorkers(-2)", "WithBlock", "WithLeaseTTL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in %v", want, err)
		}
	}
}
