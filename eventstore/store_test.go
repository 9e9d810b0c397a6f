package eventstore_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// newStore returns a store on a fresh namespace of the given deployment.
func newStore(get func(testing.TB) *redistest.Target) storetest.Factory {
	return func(t *testing.T, opts ...eventstore.Option) *eventstore.Store {
		tg := get(t)
		s, err := eventstore.New(tg.Client, append([]eventstore.Option{eventstore.WithNamespace(tg.Namespace)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestConformanceStandalone(t *testing.T) { storetest.Run(t, newStore(redistest.Standalone)) }

func TestConformanceCluster(t *testing.T) { storetest.Run(t, newStore(redistest.Cluster)) }

func splitAddr(t *testing.T, addr string) (string, int64) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseInt(port, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

// New learns whether the server runs in cluster mode (HELLO's mode).
func TestServerClusterMode(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		s, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace))
		if err != nil {
			t.Fatal(err)
		}
		if want := tg.Client.Mode() == rueidis.ClientModeCluster; s.Server().Cluster != want {
			t.Fatalf("Server().Cluster = %t on a %s client", s.Server().Cluster, tg.Client.Mode())
		}
	})
}
