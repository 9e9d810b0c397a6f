package redistest_test

import (
	"context"
	"testing"

	"github.com/streamfold/streamfold/redistest"
)

// Each runs a test against the shared standalone server and the shared cluster. Put
// keys under tg.Namespace; they are deleted when the test ends. In the test package:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func ExampleEach() {
	testSetGet := func(t *testing.T) {
		redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
			t.Parallel()
			ctx := context.Background()
			key := tg.Namespace + ":{account:1}:balance"
			if err := tg.Client.Do(ctx, tg.Client.B().Set().Key(key).Value("10").Build()).Error(); err != nil {
				t.Fatal(err)
			}
		})
	}
	_ = testSetGet
}

// A dedicated server for a test that crashes Redis on purpose.
func ExampleNewServer() {
	testCrash := func(t *testing.T) {
		s := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal),
			redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
		c := s.NewClient(t)
		_ = c // write, then:
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := s.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	_ = testCrash
}
