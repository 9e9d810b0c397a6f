// Package redistest gives tests a real Redis: a standalone server and a 3-master
// cluster, shared by all tests of one test binary, each test working in its own
// key namespace.
//
// # Where the Redis comes from
//
// The shared servers ([Standalone], [Cluster]) come from the first source that works:
//
//  1. Env: REDIS_URL (standalone) or REDIS_CLUSTER_URL (cluster; comma-separated
//     seeds allowed, each "redis://host:port" or "host:port"). Nothing is started
//     and nothing is stopped; only the test's own keys are deleted.
//  2. Container: a testcontainers-go container of REDIS_IMAGE (default "redis:7.2"),
//     when Docker is reachable. The image is pulled at most once with a bounded
//     timeout; a failed pull or start falls through to the next source. Containers
//     use host networking so cluster nodes announce addresses the test can reach.
//     Set TESTCONTAINERS_RYUK_DISABLED=true when the Ryuk image cannot be pulled.
//  3. Local: a redis-server found on PATH, on a free loopback port, in a temporary
//     directory, without persistence. On Linux it is killed with the test binary.
//
// REDISTEST_SOURCE=env|container|local forces one source; the test fails when that
// source is not available. Which source was chosen is logged to the test that
// started the server (visible with go test -v).
//
// Cluster mode needs Redis 7.0 or newer (it uses --cluster-port and CLUSTER
// ADDSLOTSRANGE); the cluster is formed from Go, so images without redis-cli work.
//
// # Use in your own tests
//
// Call [Main] from TestMain so the servers the process started are stopped once all
// tests have run:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
//	func TestAppend(t *testing.T) {
//		redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
//			key := tg.Namespace + ":{acct}:1"
//			err := tg.Client.Do(ctx, tg.Client.B().Set().Key(key).Value("v").Build()).Error()
//			...
//		})
//	}
//
// Keys must start with Target.Namespace + ":" — they are deleted when the test ends,
// which keeps the shared servers small and lets tests run in parallel.
//
// Tests that kill or restart Redis use a dedicated server from [NewServer].
//
// # Outside of tests
//
// Programs without a testing.TB (demos, Example functions, tools) start a
// dedicated server with [Start], connect with [Server.Client] and Close both
// themselves. Start picks its source like NewServer and ignores REDIS_URL under
// SourceAuto; a program that prefers a configured server checks REDIS_URL first:
//
//	srv, err := redistest.Start(ctx)
//	if err != nil {
//		return err
//	}
//	defer srv.Close()
//	client, err := srv.Client()
package redistest
