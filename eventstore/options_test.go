package eventstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/eventstore"
)

// TestNewJoinsEveryProblem: New checks every option before failing, and
// names each bad one.
func TestNewJoinsEveryProblem(t *testing.T) {
	_, err := eventstore.New(nil, eventstore.WithNamespace("bad ns"), eventstore.WithPartitions(-1),
		eventstore.WithCategoryPartitions("a-b", 2), eventstore.WithCategoryPartitions("ok", 5000),
		eventstore.WithMaxEventSize(-1), eventstore.WithGroupCommit(eventstore.GroupCommit{MaxBatch: -1, InFlight: 1}),
		eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: time.Microsecond}))
	if !errors.Is(err, eventstore.ErrInvalidStreamID) {
		t.Fatalf("want ErrInvalidStreamID: %v", err)
	}
	for _, want := range []string{"WithNamespace: eventstore: invalid namespace", "WithPartitions: partitions -1",
		`WithCategoryPartitions: eventstore: invalid category "a-b"`, "WithCategoryPartitions: partitions 5000 of category ok",
		"WithMaxEventSize", "WithGroupCommit", "WithDurability: timeout 1µs below a millisecond"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in %v", want, err)
		}
	}
	_, err = eventstore.New(nil, eventstore.WithDurability(eventstore.Durability{Replicas: -1}))
	if err == nil || !strings.Contains(err.Error(), "WithDurability: replicas -1") {
		t.Fatalf("negative replicas: %v", err)
	}
}
