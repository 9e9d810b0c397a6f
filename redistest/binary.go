package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// envServerBin names the redis-server binary local servers run: the binary
// itself, or a directory holding one called redis-server (the bin directory a
// source build prints, say).
const envServerBin = "REDIS_SERVER_BIN"

// imageVersionLabel is the image label .ci/redis-image.sh sets to the version
// of the redis-server it copied; official images say the same in their
// REDIS_VERSION environment variable.
const imageVersionLabel = "dev.streamfold.redis.version"

// WithBinary makes local servers run the redis-server at path (a binary, or a
// directory holding redis-server) instead of the one REDIS_SERVER_BIN names or
// PATH holds. Under SourceAuto it also rules out containers, whose image holds
// a binary of its own: the server is then a local process.
func WithBinary(path string) Option { return func(c *config) { c.binary = path } }

// serverBinary returns the redis-server a local server runs: WithBinary's,
// else REDIS_SERVER_BIN's, else the one on PATH.
func serverBinary(cfg config) (string, error) {
	p, from := cfg.binary, "WithBinary"
	if p == "" {
		p, from = strings.TrimSpace(os.Getenv(envServerBin)), envServerBin
	}
	if p == "" {
		bin, err := exec.LookPath("redis-server")
		if err != nil {
			return "", fmt.Errorf("redis-server not found on PATH (apt-get install redis-server, or set %s): %w", envServerBin, err)
		}
		return bin, nil
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		p = filepath.Join(p, "redis-server")
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s: %s is not an executable file", from, p)
	}
	return p, nil
}

// binaryChosen reports whether a binary was named (WithBinary or REDIS_SERVER_BIN).
func binaryChosen(cfg config) bool {
	return cfg.binary != "" || strings.TrimSpace(os.Getenv(envServerBin)) != ""
}

// version is a server's release, as redis-server --version prints it.
type version struct {
	major, minor, patch int
}

var versionRE = regexp.MustCompile(`\bv=(\d+)\.(\d+)\.(\d+)`)

// parseVersion reads "6.2.16", or "v=6.2.16" inside --version's output.
func parseVersion(s string) (version, bool) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		m = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(strings.TrimSpace(s))
	}
	if m == nil {
		return version{}, false
	}
	var v version
	v.major, _ = strconv.Atoi(m[1])
	v.minor, _ = strconv.Atoi(m[2])
	v.patch, _ = strconv.Atoi(m[3])
	return v, true
}

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch) }

// legacyCluster reports whether a cluster node of this version takes its bus
// port from its port (port+10000): --cluster-port exists since Redis 7.0.
// The zero version (unknown) is taken as current.
func (v version) legacyCluster() bool { return v != (version{}) && v.major < 7 }

// binaryVersion runs bin --version: "Redis server v=6.2.16 sha=…" (Valkey:
// "Valkey server v=8.0.1 …"; its own version, not the compatible
// redis_version it reports in INFO).
func binaryVersion(ctx context.Context, bin string) (version, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return version{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	v, ok := parseVersion(string(out))
	if !ok {
		return version{}, fmt.Errorf("%s --version: no version in %q", bin, strings.TrimSpace(string(out)))
	}
	return v, nil
}

// imageVersion reads the version of the server in an image from its labels
// or environment; the zero version when the image does not say.
func imageVersion(labels map[string]string, env []string) version {
	if v, ok := parseVersion(labels[imageVersionLabel]); ok {
		return v
	}
	for _, e := range env {
		if k, val, ok := strings.Cut(e, "="); ok && (k == "REDIS_VERSION" || k == "VALKEY_VERSION") {
			if v, ok := parseVersion(val); ok {
				return v
			}
		}
	}
	return version{}
}
