package eventstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// MinServerVersion is the oldest Redis the store runs on. Redis 6.2 brought
// what the store and its projections cannot do without: XAUTOCLAIM, MINID
// trimming, SET … GET, HELLO without arguments. Valkey (7.2 and later) is
// supported as the Redis of the same version.
const MinServerVersion = "6.2.0"

// ErrUnsupportedServer: New found a server older than MinServerVersion.
// See UnsupportedServerError.
var ErrUnsupportedServer = errors.New("eventstore: unsupported Redis version")

// UnsupportedServerError is New's refusal of a server older than
// MinServerVersion; errors.Is(err, ErrUnsupportedServer) holds.
type UnsupportedServerError struct {
	Addr    string // the node that reported it
	Server  string // "redis" or "valkey"
	Version string // as the server reported it, e.g. "6.0.16"
}

func (e *UnsupportedServerError) Error() string {
	return fmt.Sprintf("eventstore: %s at %s is %s %s; Streamfold needs Redis %s or newer",
		e.Server, e.Addr, e.Server, e.Version, MinServerVersion)
}

// Unwrap returns ErrUnsupportedServer.
func (e *UnsupportedServerError) Unwrap() error { return ErrUnsupportedServer }

// ServerInfo is what New learned about the Redis server: its version and
// what it can do. Every node of a cluster is asked, and the oldest answers
// (a cluster in the middle of an upgrade runs with the old node's
// features). When no node could be asked (unreachable at New, or HELLO and
// INFO refused), Version is empty and every feature is off: the fallbacks
// are correct on every supported version.
type ServerInfo struct {
	// Server is "redis" or "valkey", as HELLO reports it.
	Server string
	// Version is the server's version, e.g. "7.0.15" ("8.0.1" for Valkey 8).
	Version string
	// ReadOnlyScripts: EVAL_RO and EVALSHA_RO (Redis 7.0). Without them,
	// read-only scripts (Info, snapshot loads) are sent as EVALSHA.
	ReadOnlyScripts bool
	// StreamMetadata: XINFO STREAM reports entries-added and
	// max-deleted-entry-id, and XSETID takes ENTRIESADDED and MAXDELETEDID
	// (Redis 7.0). Without it a stream whose every stored event was removed
	// by hand (XDEL) cannot be told from one trimmed to empty behind a
	// snapshot, so it is not reported as damaged (StreamInfo.Damaged); a
	// removed tail under a remaining event still is. Compaction restores
	// what the server keeps either way.
	StreamMetadata bool
	// GroupLag: XINFO GROUPS reports a consumer group's lag (Redis 7.0).
	GroupLag bool
	// Cluster: the server runs in cluster mode, where a script's keys must
	// share a slot. Otherwise one group-commit call carries appends of
	// every partition (WithGroupCommit).
	Cluster bool
}

// Known reports whether the server's version could be asked.
func (i ServerInfo) Known() bool { return i.Version != "" }

// AtLeast reports whether the server's version is major.minor or newer
// (false when unknown). Valkey counts as the Redis of the same number.
func (i ServerInfo) AtLeast(major, minor int) bool {
	v, ok := parseServerVersion(i.Version)
	return ok && (v[0] > major || v[0] == major && v[1] >= minor)
}

// String describes the server, e.g. "redis 6.2.16".
func (i ServerInfo) String() string {
	if !i.Known() {
		return "a Redis of unknown version"
	}
	return i.Server + " " + i.Version
}

// Server returns what the store learned about the Redis server at New.
func (s *Store) Server() ServerInfo { return s.server }

// newScript returns a script handle for src: read-only scripts run as
// EVALSHA_RO where the server has it (a read-only replica runs them, and
// an ACL may allow only them), else as EVALSHA.
func (i ServerInfo) newScript(src string, readOnly bool) *rueidis.Lua {
	if readOnly && i.ReadOnlyScripts {
		return rueidis.NewLuaScriptReadOnly(src)
	}
	return rueidis.NewLuaScript(src)
}

// serverProbeTimeout bounds New's look at the server.
const serverProbeTimeout = 5 * time.Second

// probeServer asks every node the client knows for its version (HELLO, else
// INFO server) and decides with decideServer. New does not fail because
// Redis is down: a node that does not answer is logged by decideServer.
func probeServer(client rueidis.Client, log *slog.Logger) (ServerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), serverProbeTimeout)
	defer cancel()
	nodes := client.Nodes()
	answers := make([]nodeAnswer, 0, len(nodes))
	for addr, c := range nodes {
		a := nodeAnswer{addr: addr}
		a.server, a.version, a.mode, a.err = nodeVersion(ctx, c)
		answers = append(answers, a)
	}
	slices.SortFunc(answers, func(a, b nodeAnswer) int { return strings.Compare(a.addr, b.addr) })
	return decideServer(answers, log)
}

// nodeAnswer is one node's answer to nodeVersion.
type nodeAnswer struct {
	addr, server, version string
	mode                  string // "standalone", "cluster" or "sentinel"; "" when not told
	err                   error
}

// decideServer refuses a server older than MinServerVersion, takes the
// oldest node's version, and logs at Warn what runs differently on an old
// or unknown server. When a node could not be asked, every feature stays
// off: that node may be the oldest.
func decideServer(answers []nodeAnswer, log *slog.Logger) (ServerInfo, error) {
	minimum, _ := parseServerVersion(MinServerVersion)
	var info ServerInfo
	var oldest [3]int
	var failed []string
	for _, a := range answers {
		if a.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", a.addr, a.err))
			continue
		}
		v, ok := parseServerVersion(a.version)
		if !ok {
			failed = append(failed, fmt.Sprintf("%s: version %q", a.addr, a.version))
			continue
		}
		if compareVersions(v, minimum) < 0 {
			return ServerInfo{}, &UnsupportedServerError{Addr: a.addr, Server: a.server, Version: a.version}
		}
		info.Cluster = info.Cluster || a.mode == "cluster"
		if !info.Known() || compareVersions(v, oldest) < 0 {
			info.Server, info.Version, oldest = a.server, a.version, v
		}
	}
	if len(failed) > 0 || !info.Known() {
		log.Warn("eventstore: could not ask Redis for its version; using what every supported version can do",
			"min", MinServerVersion, "errors", strings.Join(failed, "; "))
		return ServerInfo{}, nil
	}
	info.ReadOnlyScripts = info.AtLeast(7, 0)
	info.StreamMetadata = info.AtLeast(7, 0)
	info.GroupLag = info.AtLeast(7, 0)
	if !info.AtLeast(7, 0) {
		log.Warn("eventstore: Redis before 7.0: read-only scripts run as EVALSHA; a stream whose every event was "+
			"removed by hand (XDEL) is not reported as damaged; XINFO GROUPS reports no consumer-group lag",
			"server", info.Server, "version", info.Version)
	}
	return info, nil
}

// nodeVersion asks one node for its server name, version and mode: HELLO
// without arguments (any user may send it: clients need it to connect),
// else the redis_version and redis_mode of INFO server.
func nodeVersion(ctx context.Context, c rueidis.Client) (name, version, mode string, err error) {
	m, herr := c.Do(ctx, c.B().Hello().Build()).AsStrMap()
	if herr == nil && m["version"] != "" {
		return cmp.Or(m["server"], "redis"), m["version"], m["mode"], nil
	}
	if _, ok := rueidis.IsRedisErr(herr); herr != nil && !ok {
		return "", "", "", herr // the network: INFO would fail the same way
	}
	s, err := c.Do(ctx, c.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return "", "", "", fmt.Errorf("HELLO: %v; INFO server: %w", herr, err)
	}
	fields := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimPrefix(s, "txt:"), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	if v := fields["valkey_version"]; v != "" {
		return "valkey", v, fields["redis_mode"], nil
	}
	return "redis", fields["redis_version"], fields["redis_mode"], nil
}

// parseServerVersion reads "major.minor.patch" (a missing patch is 0).
func parseServerVersion(s string) ([3]int, bool) {
	var v [3]int
	parts := strings.SplitN(strings.TrimSpace(s), ".", 3)
	if len(parts) < 2 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func compareVersions(a, b [3]int) int { return slices.Compare(a[:], b[:]) }
