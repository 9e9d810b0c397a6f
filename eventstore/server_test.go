package eventstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/redistest"
)

// TestDecideServer covers what a real server here cannot show: a server
// older than the minimum, a cluster in the middle of an upgrade, a node
// that does not answer.
func TestDecideServer(t *testing.T) {
	t.Parallel()
	ok := func(addr, server, version string) nodeAnswer {
		return nodeAnswer{addr: addr, server: server, version: version}
	}
	for _, tc := range []struct {
		name    string
		answers []nodeAnswer
		want    ServerInfo
		refused string // the node New names in its refusal
		warns   string // a substring of the log, when it must warn
	}{
		{name: "7.0", answers: []nodeAnswer{ok("a", "redis", "7.0.15")},
			want: ServerInfo{Server: "redis", Version: "7.0.15", ReadOnlyScripts: true, StreamMetadata: true, GroupLag: true}},
		{name: "valkey 8", answers: []nodeAnswer{ok("a", "valkey", "8.0.1")},
			want: ServerInfo{Server: "valkey", Version: "8.0.1", ReadOnlyScripts: true, StreamMetadata: true, GroupLag: true}},
		{name: "6.2", answers: []nodeAnswer{ok("a", "redis", "6.2.16")},
			want: ServerInfo{Server: "redis", Version: "6.2.16"}, warns: "before 7.0"},
		{name: "an upgrade half done runs as the oldest node",
			answers: []nodeAnswer{ok("a", "redis", "7.2.6"), ok("b", "redis", "6.2.16"), ok("c", "redis", "7.4.1")},
			want:    ServerInfo{Server: "redis", Version: "6.2.16"}, warns: "before 7.0"},
		{name: "6.0 is refused", answers: []nodeAnswer{ok("a", "redis", "7.0.15"), ok("b", "redis", "6.0.16")}, refused: "b"},
		{name: "a node not asked turns every feature off",
			answers: []nodeAnswer{ok("a", "redis", "7.4.1"), {addr: "b", err: errors.New("i/o timeout")}},
			want:    ServerInfo{}, warns: "could not ask"},
		{name: "no version", answers: []nodeAnswer{ok("a", "redis", "")}, want: ServerInfo{}, warns: "could not ask"},
		{name: "cluster mode", answers: []nodeAnswer{{addr: "a", server: "redis", version: "7.0.15", mode: "cluster"},
			{addr: "b", server: "redis", version: "7.0.15", mode: "cluster"}},
			want: ServerInfo{Server: "redis", Version: "7.0.15", ReadOnlyScripts: true, StreamMetadata: true, GroupLag: true, Cluster: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			got, err := decideServer(tc.answers, slog.New(slog.NewTextHandler(&buf, nil)))
			if tc.refused != "" {
				var ue *UnsupportedServerError
				if !errors.Is(err, ErrUnsupportedServer) || !errors.As(err, &ue) || ue.Addr != tc.refused ||
					!strings.Contains(err.Error(), MinServerVersion) {
					t.Fatalf("want a refusal of node %s naming %s, got %v", tc.refused, MinServerVersion, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			if tc.warns == "" && buf.Len() > 0 || !strings.Contains(buf.String(), tc.warns) {
				t.Errorf("log %q, want it to say %q", buf.String(), tc.warns)
			}
		})
	}
}

// TestServerProbed checks what New learns from the real server against what
// the server says of itself, on whatever version the tests run against.
func TestServerProbed(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		s, err := New(tg.Client, WithNamespace(tg.Namespace))
		if err != nil {
			t.Fatal(err)
		}
		c := tg.Client
		hello, err := c.Do(context.Background(), c.B().Hello().Build()).AsStrMap()
		if err != nil {
			t.Fatal(err)
		}
		info := s.Server()
		t.Logf("server: %s %+v", info, info)
		if info.Version != hello["version"] || info.Server != hello["server"] {
			t.Fatalf("Server() = %+v, HELLO says %s %s", info, hello["server"], hello["version"])
		}
		v7 := info.AtLeast(7, 0)
		if info.ReadOnlyScripts != v7 || info.StreamMetadata != v7 || info.GroupLag != v7 {
			t.Fatalf("features of %s: %+v", info, info)
		}
		// What the flags promise, asked of the server itself.
		xinfoHasMeta := func() bool {
			key := tg.Namespace + ":probe"
			if err := c.Do(context.Background(), c.B().Xadd().Key(key).Id("1-0").FieldValue().FieldValue("f", "v").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			m, err := c.Do(context.Background(), c.B().XinfoStream().Key(key).Build()).AsMap()
			if err != nil {
				t.Fatal(err)
			}
			_, ok := m["max-deleted-entry-id"]
			return ok
		}
		if got := xinfoHasMeta(); got != info.StreamMetadata {
			t.Fatalf("XINFO STREAM has max-deleted-entry-id: %t; StreamMetadata: %t", got, info.StreamMetadata)
		}
	})
}
