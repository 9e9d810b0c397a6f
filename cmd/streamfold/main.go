// Command streamfold shows and repairs the state Streamfold keeps in Redis:
// categories and entity streams, projections (consumer groups, lag, pending
// entries, dead letters), read models, retention.
//
//	streamfold [--redis URL] [--namespace NS] [--json] <command> [flags] [args]
//
// The Redis URL comes from --redis, else REDIS_URL, else
// redis://127.0.0.1:6379. A cluster is reached through any of its nodes;
// several seeds are given comma-separated
// (redis://10.0.0.1:7000,redis://10.0.0.2:7000). Output is a table for people
// and, with --json, one JSON document for scripts. Exit codes: 0 ok, 1 runtime
// error, 2 usage error.
//
// The CLI has no event type registry and no handler code: it decodes payloads
// generically (msgpack to JSON), and `rebuild` reports what a rebuild would
// replay instead of running one (see rebuild.go for why).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand: flags are declared in setup, which returns
// the function to run once they are parsed.
type command struct {
	name, args, summary string
	setup               func(fs *flag.FlagSet) func(a *app, args []string) error
}

var commands = []command{
	{"streams", "", "categories, partitions, entity counts, memory", streamsCmd},
	{"read", "<category-id>", "an entity's events, decoded as JSON", readCmd},
	{"groups", "", "projections per partition: lag, pending, last delivered, consumers, lease holder", groupsCmd},
	{"pending", "", "entries delivered but not acknowledged: idle time, deliveries", pendingCmd},
	{"dlq", "list|retry|skip <projection> ...", "dead letters of a projection", dlqCmd},
	{"rebuild", "<projection>", "what a rebuild of a projection would replay, and how to run it", rebuildCmd},
	{"trim", "", "trim partition logs (retention); --dry-run reports only", trimCmd},
	{"compact", "", "compact cold entity streams (retention); --dry-run reports only", compactCmd},
	{"stats", "", "memory per category, read models, cache hit figures", statsCmd},
}

// globals are the flags accepted before or after the command.
type globals struct {
	redis     string
	namespace string
	json      bool
	timeout   time.Duration
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.redis, "redis", g.redis, "Redis URL; comma-separated seeds for a cluster (default $REDIS_URL, else redis://127.0.0.1:6379)")
	fs.StringVar(&g.namespace, "namespace", g.namespace, "Streamfold key namespace (eventstore.WithNamespace)")
	fs.BoolVar(&g.json, "json", g.json, "print JSON instead of tables")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "overall time limit of the command")
}

// run is the whole program, testable in-process: it parses args, runs one
// command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{namespace: "sf", timeout: 5 * time.Minute}
	root := flag.NewFlagSet("streamfold", flag.ContinueOnError)
	root.SetOutput(stderr)
	g.register(root)
	root.Usage = func() { printUsage(stderr, root) }
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := root.Args()
	if len(rest) == 0 {
		printUsage(stderr, root)
		return 2
	}
	if rest[0] == "help" {
		printUsage(stdout, root)
		return 0
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == rest[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "streamfold: unknown command %q\n\n", rest[0])
		printUsage(stderr, root)
		return 2
	}
	fs := flag.NewFlagSet("streamfold "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	exec := cmd.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: streamfold [global flags] %s [flags] %s\n\n%s\n\nflags:\n", cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, rest[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := eventstore.ValidateNamespace(g.namespace); err != nil {
		fmt.Fprintf(stderr, "streamfold: --namespace: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	a := &app{ctx: ctx, g: g, stdout: stdout, stderr: stderr}
	defer a.close()
	if err := exec(a, pos); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "streamfold %s: %s\n", cmd.name, ue.msg)
			fmt.Fprintf(stderr, "usage: streamfold %s [flags] %s (see streamfold %s -h)\n", cmd.name, cmd.args, cmd.name)
			return 2
		}
		fmt.Fprintf(stderr, "streamfold %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

// parseInterspersed parses flags that may come after positional arguments
// (`read account-1 --limit 5`), which package flag alone does not allow.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func printUsage(w io.Writer, root *flag.FlagSet) {
	fmt.Fprint(w, "usage: streamfold [--redis URL] [--namespace NS] [--json] <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %-34s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprint(w, "\nglobal flags (also accepted after the command):\n")
	root.SetOutput(w)
	root.PrintDefaults()
	fmt.Fprint(w, "\nRun `streamfold <command> -h` for a command's flags.\n")
}

// app is what a command works with; the Redis connection is opened on first
// use, so usage errors never need Redis.
type app struct {
	ctx            context.Context
	g              *globals
	stdout, stderr io.Writer
	client         rueidis.Client
	store          *eventstore.Store
}

func (a *app) close() {
	if a.client != nil {
		a.client.Close()
	}
}

// connect opens the client and the store of the namespace.
func (a *app) connect() (*eventstore.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	url, from := a.g.redis, "--redis"
	if url == "" {
		url, from = os.Getenv("REDIS_URL"), "REDIS_URL"
	}
	if url == "" {
		url, from = "redis://127.0.0.1:6379", "the default"
	}
	opt, err := parseRedisURL(url)
	if err != nil {
		return nil, fmt.Errorf("bad Redis URL from %s: %v (want redis://[user:password@]host:port[/db], comma-separated seeds for a cluster)", from, err)
	}
	opt.DisableCache = true // a one-shot tool gains nothing from client-side caching
	opt.Dialer.Timeout = 5 * time.Second
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Redis at %s (from %s): %v; set --redis or REDIS_URL", strings.Join(opt.InitAddress, ","), from, err)
	}
	a.client = client
	// The CLI has no event types: every payload comes back undecoded (Raw)
	// and is decoded generically (see read.go).
	store, err := eventstore.New(client, eventstore.WithNamespace(a.g.namespace),
		eventstore.WithLogger(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		return nil, err
	}
	a.store = store
	return store, nil
}

// parseRedisURL accepts one URL or comma-separated seeds of one cluster.
func parseRedisURL(s string) (rueidis.ClientOption, error) {
	parts := strings.Split(s, ",")
	var opt rueidis.ClientOption
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "redis://" + p
		}
		o, err := rueidis.ParseURL(p)
		if err != nil {
			return opt, err
		}
		if i == 0 {
			opt = o
			continue
		}
		opt.InitAddress = append(opt.InitAddress, o.InitAddress...)
	}
	return opt, nil
}

// categories returns the namespace's categories, sorted, or the subset
// asked for (an unknown one is an error that lists the known ones: the store
// would otherwise create it).
func (a *app) categories(want []string) ([]string, error) {
	store, err := a.connect()
	if err != nil {
		return nil, err
	}
	all, err := store.Categories(a.ctx)
	if err != nil {
		return nil, fmt.Errorf("list categories: %w", err)
	}
	sort.Strings(all)
	if len(want) == 0 {
		return all, nil
	}
	known := map[string]bool{}
	for _, c := range all {
		known[c] = true
	}
	for _, c := range want {
		if !known[c] {
			return nil, unknownCategory(a.g.namespace, c, all)
		}
	}
	return want, nil
}

func unknownCategory(ns, c string, all []string) error {
	if len(all) == 0 {
		return fmt.Errorf("unknown category %q: namespace %q has no categories (wrong --namespace?)", c, ns)
	}
	return fmt.Errorf("unknown category %q in namespace %q; known: %s", c, ns, strings.Join(all, ", "))
}

// listFlag is a repeatable, comma-separated string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}
