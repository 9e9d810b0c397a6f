package redistest

import (
	"fmt"
	"os"
	"strings"
)

// Source is where a Redis server comes from.
type Source int

const (
	// SourceAuto picks the first available source: env (shared servers only), container, local.
	// REDISTEST_SOURCE overrides the choice.
	SourceAuto Source = iota
	// SourceEnv uses the server named by REDIS_URL or REDIS_CLUSTER_URL.
	SourceEnv
	// SourceContainer starts a testcontainers-go container of REDIS_IMAGE.
	SourceContainer
	// SourceLocal starts a redis-server process found on PATH.
	SourceLocal
)

// String returns the name used by REDISTEST_SOURCE ("env", "container", "local"), or "auto".
func (s Source) String() string {
	switch s {
	case SourceAuto:
		return "auto"
	case SourceEnv:
		return "env"
	case SourceContainer:
		return "container"
	case SourceLocal:
		return "local"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// Environment variables read by the package.
const (
	envURL        = "REDIS_URL"
	envClusterURL = "REDIS_CLUSTER_URL"
	envImage      = "REDIS_IMAGE"
	envSource     = "REDISTEST_SOURCE"

	defaultImage = "redis:7.2"
)

// forcedSource reads REDISTEST_SOURCE; SourceAuto when unset.
func forcedSource() (Source, error) {
	v := strings.ToLower(strings.TrimSpace(os.Getenv(envSource)))
	switch v {
	case "", "auto":
		return SourceAuto, nil
	case "env":
		return SourceEnv, nil
	case "container":
		return SourceContainer, nil
	case "local":
		return SourceLocal, nil
	}
	return SourceAuto, fmt.Errorf("%s=%q: want env, container or local", envSource, v)
}

// redisImage is REDIS_IMAGE or the default official image.
func redisImage() string {
	if v := strings.TrimSpace(os.Getenv(envImage)); v != "" {
		return v
	}
	return defaultImage
}
