package redistest

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/redis/rueidis"
)

// startEnv connects to the server named by REDIS_URL (standalone) or REDIS_CLUSTER_URL
// (cluster). It starts nothing; Close only drops the package's connection.
func startEnv(ctx context.Context, cfg config) (*Server, error) {
	name := envURL
	if cfg.cluster {
		name = envClusterURL
	}
	raw := strings.TrimSpace(os.Getenv(name))
	if raw == "" {
		return nil, fmt.Errorf("env: %s is not set", name)
	}
	opt, err := parseSeeds(raw)
	if err != nil {
		return nil, fmt.Errorf("env: %s: %w", name, err)
	}
	s := &Server{source: SourceEnv, cluster: cfg.cluster, base: opt, addrs: opt.InitAddress}
	s.base.InitAddress = nil

	c, err := s.newClient(func(o *rueidis.ClientOption) { o.DisableCache = true })
	if err != nil {
		return nil, fmt.Errorf("env: %s: %w", name, err)
	}
	defer c.Close()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		return nil, fmt.Errorf("env: %s: %w", name, err)
	}
	if cfg.cluster {
		// Report the masters, not the seeds: namespace cleanup and users need every master.
		masters, err := clusterMasters(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("env: %s: CLUSTER SLOTS: %w", name, err)
		}
		s.addrs = masters
	}
	s.desc = fmt.Sprintf("%s Redis from %s at %s", kind(cfg.cluster), name, strings.Join(s.addrs, ","))
	return s, nil
}

// parseSeeds reads "redis://[user:pass@]host:port[/db]" or a comma-separated list of
// such URLs and bare host:port seeds. Options (auth, TLS, db) come from the first URL.
func parseSeeds(raw string) (rueidis.ClientOption, error) {
	var opt rueidis.ClientOption
	var addrs []string
	haveOpt := false
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "://") {
			addrs = append(addrs, part)
			continue
		}
		o, err := rueidis.ParseURL(part)
		if err != nil {
			return opt, err
		}
		if !haveOpt {
			opt, haveOpt = o, true
		}
		addrs = append(addrs, o.InitAddress...)
	}
	if len(addrs) == 0 {
		return opt, fmt.Errorf("no address in %q", raw)
	}
	opt.InitAddress = addrs
	return opt, nil
}
