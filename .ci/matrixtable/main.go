// Command matrixtable turns the go test -json output of a matrix run (one file
// per server version, named after it: redis-6.2.16.json) into a Markdown table:
// per version and topology, the tests passed and failed of every suite, and
// the failed tests by name. With -readme it also writes the table into that
// file between the lines "<!-- matrix:begin -->" and "<!-- matrix:end -->".
//
//	go run ./.ci/matrixtable [-readme README.md] OUT/*.json
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

const module = "github.com/streamfold/streamfold"

// event is one line of go test -json.
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Output  string
}

// suites maps a package (after the module path) to its column, by prefix.
var suites = []struct{ prefix, name string }{
	{"redistest", "redistest"},
	{"eventstore", "eventstore (conformance)"},
	{"snapshot", "snapshot"},
	{"projection", "projection"},
	{"readmodel", "readmodel"},
	{"retention", "retention"},
	{"examples", "examples"},
	{"integration_test", "integration (crash)"},
}

var topologies = []string{"standalone", "cluster", "dedicated/unit"}

type cell struct{ pass, fail, skip int }

type run struct {
	name     string
	seen     map[string]bool // server versions the harness reported
	took     time.Duration
	cells    map[[2]string]*cell // {topology, suite}
	failed   []string
	packages map[string]string // package -> final action
}

var serverRE = regexp.MustCompile(`redistest: (?:shared|dedicated) (?:standalone|cluster) Redis ([0-9][0-9.]*)`)

func main() {
	readme := flag.String("readme", "", "write the table into this file between the matrix markers")
	flag.Parse()
	var runs []*run
	for _, path := range flag.Args() {
		r, err := load(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "matrixtable:", err)
			os.Exit(1)
		}
		runs = append(runs, r)
	}
	table := render(runs)
	fmt.Print(table)
	if *readme != "" {
		if err := splice(*readme, table); err != nil {
			fmt.Fprintln(os.Stderr, "matrixtable:", err)
			os.Exit(1)
		}
	}
}

func load(path string) (*run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &run{
		name:     strings.TrimSuffix(filepath.Base(path), ".json"),
		seen:     map[string]bool{},
		cells:    map[[2]string]*cell{},
		packages: map[string]string{},
	}
	final, err := r.read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.countTests(final)
	r.countPackageFailures()
	slices.Sort(r.failed)
	return r, nil
}

// read reads go test -json output: the server versions the harness reported,
// how long the run took, each package's final action, and it returns each
// test's final action ({package, test} -> pass/fail/skip).
func (r *run) read(f *os.File) (map[[2]string]string, error) {
	final := map[[2]string]string{}
	var first, last time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // go test's own lines (build errors) are not JSON
		}
		if !e.Time.IsZero() {
			if first.IsZero() {
				first = e.Time
			}
			last = e.Time
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(e.Package, module), "/")
		if m := serverRE.FindStringSubmatch(e.Output); m != nil {
			r.seen[m[1]] = true
		}
		switch e.Action {
		case "pass", "fail", "skip":
			if e.Test == "" {
				r.packages[pkg] = e.Action
			} else {
				final[[2]string{pkg, e.Test}] = e.Action
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	r.took = last.Sub(first).Round(time.Second)
	return final, nil
}

// countTests counts the tests' final actions into their cells, and names
// the failed ones.
func (r *run) countTests(final map[[2]string]string) {
	for k, action := range final {
		if hasChild(final, k) {
			continue // count leaves only: a parent fails with its subtests
		}
		c := r.cell(topology(k[1]), suite(k[0]))
		switch action {
		case "pass":
			c.pass++
		case "fail":
			c.fail++
			r.failed = append(r.failed, k[0]+" "+k[1])
		case "skip":
			c.skip++
		}
	}
}

// countPackageFailures counts a package that failed without a failed test
// (a build error, a panic, a timeout), which must not read as passed.
func (r *run) countPackageFailures() {
	for pkg, action := range r.packages {
		if action == "fail" && !slices.ContainsFunc(r.failed, func(s string) bool { return strings.HasPrefix(s, pkg+" ") }) {
			r.cell("dedicated/unit", suite(pkg)).fail++
			r.failed = append(r.failed, pkg+" (package failed: see its output)")
		}
	}
}

func (r *run) cell(top, suite string) *cell {
	k := [2]string{top, suite}
	if r.cells[k] == nil {
		r.cells[k] = &cell{}
	}
	return r.cells[k]
}

func hasChild(final map[[2]string]string, k [2]string) bool {
	for o := range final {
		if o[0] == k[0] && strings.HasPrefix(o[1], k[1]+"/") {
			return true
		}
	}
	return false
}

// topology reads a test's name: redistest.Each names its subtests
// "standalone" and "cluster"; suites run per deployment say so in their name.
func topology(test string) string {
	for seg := range strings.SplitSeq(strings.ToLower(test), "/") {
		switch {
		case seg == "standalone" || strings.HasSuffix(seg, "standalone"):
			return "standalone"
		case seg == "cluster" || strings.HasSuffix(seg, "cluster"):
			return "cluster"
		}
	}
	return "dedicated/unit"
}

func suite(pkg string) string {
	for _, s := range suites {
		if pkg == s.prefix || strings.HasPrefix(pkg, s.prefix+"/") {
			return s.name
		}
	}
	return pkg
}

func render(runs []*run) string {
	var b bytes.Buffer
	fmt.Fprint(&b, "| server | topology |")
	for _, s := range suites {
		fmt.Fprintf(&b, " %s |", s.name)
	}
	fmt.Fprint(&b, "\n|---|---|")
	for range suites {
		fmt.Fprint(&b, "---|")
	}
	fmt.Fprintln(&b)
	for _, r := range runs {
		for i, top := range topologies {
			label := ""
			if i == 0 {
				label = fmt.Sprintf("%s (%s; %s)", r.name, strings.Join(sortedKeys(r.seen), ", "), r.took)
			}
			fmt.Fprintf(&b, "| %s | %s |", label, top)
			for _, s := range suites {
				c := r.cells[[2]string{top, s.name}]
				switch {
				case c == nil:
					fmt.Fprint(&b, " — |")
				case c.fail > 0:
					fmt.Fprintf(&b, " **%d failed** of %d |", c.fail, c.pass+c.fail)
				case c.skip > 0:
					fmt.Fprintf(&b, " %d passed, %d skipped |", c.pass, c.skip)
				default:
					fmt.Fprintf(&b, " %d passed |", c.pass)
				}
			}
			fmt.Fprintln(&b)
		}
	}
	for _, r := range runs {
		if len(r.failed) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\nFailed on %s:\n", r.name)
		for _, f := range r.failed {
			fmt.Fprintf(&b, "- `%s`\n", f)
		}
	}
	return b.String()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	if len(out) == 0 {
		out = []string{"version not reported"}
	}
	return out
}

const begin, end = "<!-- matrix:begin -->", "<!-- matrix:end -->"

// splice replaces what lies between the markers in path with table.
func splice(path, table string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s … %s lines", path, begin, end)
	}
	s = s[:i+len(begin)] + "\n" + table + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
