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
//  3. Local: a redis-server on a free loopback port, in a temporary directory,
//     without persistence. On Linux it is killed with the test binary. The binary
//     is the one [WithBinary] names, else REDIS_SERVER_BIN (a redis-server, or a
//     directory holding one), else the redis-server on PATH.
//
// REDISTEST_SOURCE=env|container|local forces one source; the test fails when that
// source is not available. Which source was chosen, and the server's version, is
// logged to the test that started the server (visible with go test -v).
//
// # Testing another server version
//
// To run every server of a test binary — shared and dedicated, standalone and
// cluster — from one build, set REDIS_SERVER_BIN to it. Under SourceAuto a
// container is then used only when REDIS_IMAGE is set too, and only when the image
// does not declare another version (.ci/redis-image.sh builds a FROM-scratch image
// from a binary and labels it with the binary's version):
//
//	REDIS_SERVER_BIN=$HOME/.cache/redis-builds/redis-6.2.16/bin go test ./...
//
// Redis 6.2 and newer, and Valkey, are supported, clusters included. A cluster is
// formed from Go with CLUSTER ADDSLOTS and MEET, so images without redis-cli work;
// a node of a server before 7.0 has no --cluster-port, so it gets a port p whose
// p+10000 (its bus port) is free too.
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
