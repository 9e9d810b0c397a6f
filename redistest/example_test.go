package redistest_test

import (
	"context"
	"fmt"
	"log"
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

// A program (a demo, a tool, an Example) starts its own Redis and closes it at the
// end. Start ignores REDIS_URL unless REDISTEST_SOURCE=env: check it yourself to
// prefer a configured server.
func ExampleStart() {
	ctx := context.Background()
	srv, err := redistest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	client, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	pong, err := client.Do(ctx, client.B().Ping().Build()).ToString()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(pong)
	// Output: PONG
}
