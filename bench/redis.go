package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// server is the Redis the benchmarks run against.
type server struct {
	addr   string
	desc   string
	config string // the redis-server arguments, when we started it
	cmd    *exec.Cmd
	dir    string
}

// benchConfig is the fixed configuration of a redis-server the program
// starts: persistence off, so disks do not enter the figures.
var benchConfig = []string{"--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--protected-mode", "no", "--maxmemory-policy", "noeviction"}

func startRedis(ctx context.Context) (*server, error) {
	if u := os.Getenv("REDIS_URL"); u != "" {
		opt, err := rueidis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		return &server{addr: opt.InitAddress[0], desc: "REDIS_URL " + opt.InitAddress[0]}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("set REDIS_URL or install redis-server (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "streamfold-bench-")
	if err != nil {
		return nil, err
	}
	args := append([]string{"--port", strconv.Itoa(port), "--dir", dir}, benchConfig...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{addr: "127.0.0.1:" + strconv.Itoa(port), desc: "own redis-server", config: strings.Join(quoteArgs(args), " "), cmd: cmd, dir: dir}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.client()
		if err == nil {
			err = c.Do(ctx, c.B().Ping().Build()).Error()
			c.Close()
			if err == nil {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("redis-server did not answer: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" {
			a = `""`
		}
		out[i] = a
	}
	return out
}

func (s *server) client(opts ...func(*rueidis.ClientOption)) (rueidis.Client, error) {
	o := rueidis.ClientOption{InitAddress: []string{s.addr}}
	for _, f := range opts {
		f(&o)
	}
	return rueidis.NewClient(o)
}

// Close stops a redis-server the program started.
func (s *server) Close() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		os.RemoveAll(s.dir)
	}
}

func describe(ctx context.Context, s *server) (environment, error) {
	env := environment{Go: runtime.Version(), CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, When: time.Now().UTC(), Source: s.desc}
	c, err := s.client()
	if err != nil {
		return env, err
	}
	defer c.Close()
	info, err := c.Do(ctx, c.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return env, err
	}
	env.Redis = infoField(info, "redis_version")
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				env.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return env, nil
}

func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key {
			return v
		}
	}
	return ""
}

// serverCPU returns the Redis server's total CPU seconds (INFO cpu).
func serverCPU(ctx context.Context, c rueidis.Client) float64 {
	info, err := c.Do(ctx, c.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		return 0
	}
	u, _ := strconv.ParseFloat(infoField(info, "used_cpu_user"), 64)
	s, _ := strconv.ParseFloat(infoField(info, "used_cpu_sys"), 64)
	return u + s
}

// flush empties the database between measurements.
func flush(ctx context.Context, c rueidis.Client) error {
	return c.Do(ctx, c.B().Flushall().Build()).Error()
}
