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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

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

// subcommand is one command of the CLI. Every command declares its flags
// the same way globals do: fields of its own struct, bound in register
// (flag.XxxVar), so a command's options are one value read in run. run
// gets the positional arguments; it checks them and the flags first and
// reports a mistake with usagef, before it needs Redis.
type subcommand interface {
	register(fs *flag.FlagSet)
	run(a *app, args []string) error
}

// command names a subcommand for the command line and the usage text.
type command struct {
	name, args, summary string
	newCmd              func() subcommand
}

var commands = []command{
	{"streams", "", "categories, partitions, entity counts, memory", func() subcommand { return &streamsCmd{} }},
	{"read", "<category-id>", "an entity's events, decoded as JSON", func() subcommand { return &readCmd{} }},
	{"groups", "", "projections per partition: lag, pending, last delivered, consumers, lease holder", func() subcommand { return &groupsCmd{} }},
	{"pending", "", "entries delivered but not acknowledged: idle time, deliveries", func() subcommand { return &pendingCmd{} }},
	{"dlq", "list|retry|skip <projection> ...", "dead letters of a projection", func() subcommand { return &dlqCmd{} }},
	{"rebuild", "<projection>", "what a rebuild of a projection would replay, and how to run it", func() subcommand { return &rebuildCmd{} }},
	{"trim", "", "trim partition logs (retention); --dry-run reports only", func() subcommand { return &trimCmd{} }},
	{"compact", "", "compact cold entity streams (retention); --dry-run reports only", func() subcommand { return &compactCmd{} }},
	{"stats", "", "memory per category, read models, cache hit figures", func() subcommand { return &statsCmd{} }},
}

// findCommand returns the command called name, or nil.
func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
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

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // a runtime error
	exitUsage = 2 // a mistake on the command line
)

// run is the whole program, testable in-process: it parses args, runs one
// command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{namespace: "sf", timeout: 5 * time.Minute}
	inv, code := parseCommandLine(g, args, stdout, stderr)
	if inv == nil {
		return code
	}
	if err := eventstore.ValidateNamespace(g.namespace); err != nil {
		fmt.Fprintf(stderr, "streamfold: --namespace: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	a := &app{ctx: ctx, g: g, stdout: stdout, stderr: stderr}
	defer a.close()
	return inv.cmd.report(stderr, inv.sub.run(a, inv.args))
}

// invocation is a parsed command line: the command, its flags set, and its
// positional arguments.
type invocation struct {
	cmd  *command
	sub  subcommand
	args []string
}

// parseCommandLine parses the global flags, finds the command and parses
// its flags (globals are accepted there too). With no command to run it
// returns nil and the exit code: help asked for, or a usage error already
// printed.
func parseCommandLine(g *globals, args []string, stdout, stderr io.Writer) (*invocation, int) {
	root := flag.NewFlagSet("streamfold", flag.ContinueOnError)
	root.SetOutput(stderr)
	g.register(root)
	root.Usage = func() { printUsage(stderr, root) }
	if err := root.Parse(args); err != nil {
		return nil, parseExit(err)
	}
	rest := root.Args()
	switch {
	case len(rest) == 0:
		printUsage(stderr, root)
		return nil, exitUsage
	case rest[0] == "help":
		printUsage(stdout, root)
		return nil, exitOK
	}
	cmd := findCommand(rest[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "streamfold: unknown command %q\n\n", rest[0])
		printUsage(stderr, root)
		return nil, exitUsage
	}
	sub, pos, err := cmd.parse(g, rest[1:], stderr)
	if err != nil {
		return nil, parseExit(err)
	}
	return &invocation{cmd, sub, pos}, exitOK
}

// parseExit is the exit code of a flag parse error: 0 for -h (package flag
// has printed the usage), else a usage error (flag has printed it).
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// parse parses the command's flags and the globals among args and returns
// the command ready to run with its positional arguments.
func (c *command) parse(g *globals, args []string, stderr io.Writer) (subcommand, []string, error) {
	fs := flag.NewFlagSet("streamfold "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	sub := c.newCmd()
	sub.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: streamfold [global flags] %s [flags] %s\n\n%s\n\nflags:\n", c.name, c.args, c.summary)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	return sub, pos, err
}

// report prints the command's error, if any, and returns the exit code.
func (c *command) report(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "streamfold %s: %s\n", c.name, ue.msg)
		fmt.Fprintf(stderr, "usage: streamfold %s [flags] %s (see streamfold %s -h)\n", c.name, c.args, c.name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "streamfold %s: %v\n", c.name, err)
	return exitError
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
