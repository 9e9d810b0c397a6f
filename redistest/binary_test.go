package redistest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want version
		ok   bool
	}{
		{"Redis server v=6.2.16 sha=00000000:0 malloc=libc bits=64 build=abc", version{6, 2, 16}, true},
		{"Valkey server v=8.0.1 sha=00000000:0 malloc=libc bits=64 build=abc", version{8, 0, 1}, true},
		{"7.0.15", version{7, 0, 15}, true},
		{"v=7.4", version{}, false},
		{"", version{}, false},
	} {
		got, ok := parseVersion(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseVersion(%q) = %v, %t; want %v, %t", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if !(version{6, 2, 16}).legacyCluster() || (version{7, 0, 0}).legacyCluster() || (version{}).legacyCluster() {
		t.Error("legacyCluster: want true for 6.2 only (unknown counts as current)")
	}
}

func TestImageVersion(t *testing.T) {
	t.Parallel()
	if v := imageVersion(map[string]string{imageVersionLabel: "6.2.16"}, nil); v != (version{6, 2, 16}) {
		t.Errorf("label: %v", v)
	}
	if v := imageVersion(nil, []string{"PATH=/bin", "REDIS_VERSION=7.2.6"}); v != (version{7, 2, 6}) {
		t.Errorf("official image env: %v", v)
	}
	if v := imageVersion(nil, []string{"PATH=/bin"}); v != (version{}) {
		t.Errorf("undeclared: %v", v)
	}
}

func TestServerBinary(t *testing.T) {
	// Not parallel: sets REDIS_SERVER_BIN.
	dir := t.TempDir()
	bin := filepath.Join(dir, "redis-server")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'Redis server v=6.2.16 sha=0'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envServerBin, dir)
	if got, err := serverBinary(config{}); err != nil || got != bin {
		t.Errorf("a directory in %s: %q, %v; want %q", envServerBin, got, err, bin)
	}
	if v, err := binaryVersion(context.Background(), bin); err != nil || v != (version{6, 2, 16}) {
		t.Errorf("binaryVersion: %v, %v", v, err)
	}
	if got, err := serverBinary(config{binary: bin}); err != nil || got != bin {
		t.Errorf("WithBinary(file): %q, %v", got, err)
	}
	if _, err := serverBinary(config{binary: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "WithBinary") {
		t.Errorf("a missing binary: %v", err)
	}
	t.Setenv(envImage, "")
	if why := containerRuledOut(context.Background(), config{}); !strings.Contains(why, envImage) {
		t.Errorf("REDIS_SERVER_BIN without REDIS_IMAGE: container not ruled out (%q)", why)
	}
	if why := containerRuledOut(context.Background(), config{binary: bin}); why == "" {
		t.Error("WithBinary: container not ruled out")
	}
}

func TestNodePortsLegacy(t *testing.T) {
	t.Parallel()
	p, err := nodePorts(true, version{6, 2, 16})
	if err != nil {
		t.Fatal(err)
	}
	if p[1] != p[0]+legacyBusOffset || p[1] > 65535 {
		t.Errorf("legacy cluster ports %v: want bus = port+10000 <= 65535", p)
	}
	args := strings.Join(serverArgs(p[0], p[1], true, version{6, 2, 16}, nil), " ")
	if strings.Contains(args, "--cluster-port") {
		t.Errorf("a 6.2 node got --cluster-port: %s", args)
	}
	if args := strings.Join(serverArgs(1, 2, true, version{7, 0, 15}, nil), " "); !strings.Contains(args, "--cluster-port 2") {
		t.Errorf("a 7.0 node without --cluster-port: %s", args)
	}
}

// TestWithBinary starts a cluster from the binary named by WithBinary (a
// directory, as build scripts print it), whatever its version.
func TestWithBinary(t *testing.T) {
	t.Parallel()
	bin, err := serverBinary(config{})
	if err != nil {
		skipOrFailInCI(t, err.Error())
	}
	s := NewServer(t, WithBinary(filepath.Dir(bin)), WithCluster())
	if s.Source() != SourceLocal || !strings.Contains(s.String(), bin) {
		t.Fatalf("WithBinary(%s): %s", filepath.Dir(bin), s)
	}
	c := s.NewClient(t)
	if err := c.Do(context.Background(), c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatal(err)
	}
}
