// Package luascript holds what the Go counterparts of the store's Lua
// scripts share, so that a script's contract lives in one place and Go and
// Lua cannot drift apart.
//
// A script's codes (reply statuses, expected-version kinds) are defined once,
// in Go, as a []Code. Prelude turns them into Lua locals that are prepended
// to the script's source, so the Lua body names them (APPENDED, EXPECT_ANY)
// and never writes their numbers. Every script also documents its contract
// in its header comment: its KEYS, its ARGV and a "Codes:" line. Check reads
// that header and reports where it disagrees with the Go counterpart (the
// number of keys and arguments, a code missing, added or with another value,
// a code the body never names, a name in capitals the body uses that is no
// code, a bare number returned where a status is expected, a coded variable
// compared with a literal), so a test fails as soon as one side changes
// without the other.
//
// Script (call.go) sends a script in the ways rueidis.Lua cannot: pipelined
// with other calls, or on one connection with commands around it, EVALSHA
// first and EVAL when Redis does not know the script (NOSCRIPT).
package luascript

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Code is a number a script and its Go counterpart agree on: a reply status
// or an argument's special value. Name is a Lua identifier in capitals.
type Code struct {
	Name  string
	Value int64
}

// Prelude returns the Lua statements that define codes as locals, to be
// prepended to a script's source; "" when there are none.
func Prelude(codes ...Code) string {
	if len(codes) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("-- codes of the Go counterpart (internal/luascript)\n")
	for _, c := range codes {
		fmt.Fprintf(&b, "local %s = %d\n", c.Name, c.Value)
	}
	return b.String()
}

// Contract is what a script's Go counterpart expects of it.
type Contract struct {
	// Keys and Args are the numbers of KEYS and ARGV the counterpart
	// sends. With Variadic, the header documents a fixed part and then a
	// repeated one ("KEYS[2..]"); Keys and Args are then the fixed part's
	// counts of the entries before the repeated one.
	Keys, Args int
	Variadic   bool
	// Codes are the script's codes, as prepended by Prelude.
	Codes []Code
	// Statuses: the script replies with a status code first (a number, or
	// the first element of an array); a bare number there is a drift.
	Statuses bool
	// Coded are the body's variables that hold a code read from ARGV (an
	// op, a guard): every comparison of one (==, ~=) must be with the name
	// of a code, never with a literal ('set', 2) or an unknown name.
	Coded []string
}

// Header is what a script's header comment documents.
type Header struct {
	Keys  []string // "KEYS[1]", "KEYS[2..]", in order
	Args  []string // "ARGV[1]", ...
	Codes []Code   // from its "Codes:" line
}

// ParseHeader reads the header comment of a script's source: its leading
// lines that begin with "--". The codes are read from the line that begins
// with "-- Codes:" and the indented comment lines that follow it, as pairs
// "NAME value".
func ParseHeader(src string) Header {
	keyRe := regexp.MustCompile(`^--\s+(KEYS\[\d+(?:\.\.)?\])`)
	argRe := regexp.MustCompile(`^--\s+(ARGV\[\d+(?:\.\.)?\])`)
	codeRe := regexp.MustCompile(`\b([A-Z][A-Z0-9_]*) (-?\d+)\b`)
	var h Header
	inCodes := false
	for line := range strings.Lines(src) {
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, "--") {
			break
		}
		if m := keyRe.FindStringSubmatch(line); m != nil {
			h.Keys = append(h.Keys, m[1])
		}
		if m := argRe.FindStringSubmatch(line); m != nil {
			h.Args = append(h.Args, m[1])
		}
		switch {
		case strings.HasPrefix(line, "-- Codes:"):
			inCodes = true
			line = strings.TrimPrefix(line, "-- Codes:")
		case inCodes && strings.HasPrefix(line, "--   "):
		default:
			inCodes = false
		}
		if inCodes {
			for _, m := range codeRe.FindAllStringSubmatch(line, -1) {
				v, _ := strconv.ParseInt(m[2], 10, 64)
				h.Codes = append(h.Codes, Code{Name: m[1], Value: v})
			}
		}
	}
	return h
}

// Body returns src without its header and without comments: the code.
func Body(src string) string {
	var b strings.Builder
	header := true
	for line := range strings.Lines(src) {
		if header && strings.HasPrefix(line, "--") {
			continue
		}
		header = false
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i] + "\n"
		}
		b.WriteString(line)
	}
	return b.String()
}

// Check reports every way in which the script src (its own file, without a
// prelude) disagrees with c, joined; nil when they agree.
func Check(name, src string, c Contract) error {
	h := ParseHeader(src)
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	checkList := func(kind string, got []string, n int) {
		want := make([]string, 0, n+1)
		for i := range n {
			want = append(want, fmt.Sprintf("%s[%d]", kind, i+1))
		}
		if c.Variadic && kind == "KEYS" {
			want = append(want, fmt.Sprintf("%s[%d..]", kind, n+1))
		}
		if !slices.Equal(got, want) {
			fail("header documents %s %v, the Go counterpart sends %v", kind, got, want)
		}
	}
	checkList("KEYS", h.Keys, c.Keys)
	if !c.Variadic {
		checkList("ARGV", h.Args, c.Args)
	}
	doc := map[string]int64{}
	for _, hc := range h.Codes {
		doc[hc.Name] = hc.Value
	}
	body := Body(src)
	code := stringRe.ReplaceAllString(body, "''") // a name in a string is no use of it
	for _, gc := range c.Codes {
		v, ok := doc[gc.Name]
		switch {
		case !ok:
			fail("code %s (%d) is not in the header's Codes line", gc.Name, gc.Value)
		case v != gc.Value:
			fail("code %s is %d in the header, %d in Go", gc.Name, v, gc.Value)
		}
		delete(doc, gc.Name)
		if !regexp.MustCompile(`\b` + gc.Name + `\b`).MatchString(code) {
			fail("code %s is never used by the script's body", gc.Name)
		}
	}
	for n, v := range doc {
		fail("header's code %s (%d) is unknown to Go", n, v)
	}
	for _, msg := range checkNames(body, code, c) {
		fail("%s", msg)
	}
	if c.Statuses {
		// A status returned as a bare number: "return 2", "return {2, ...".
		bareRe := regexp.MustCompile(`\breturn\s+\{?\s*-?\d`)
		for line := range strings.Lines(body) {
			if bareRe.MatchString(line) {
				fail("bare status number, name it: %s", strings.TrimSpace(line))
			}
		}
	}
	return errors.Join(errs...)
}

var (
	// stringRe matches a Lua short string literal.
	stringRe = regexp.MustCompile(`'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"`)
	// capsRe matches a name in capitals that is not a field (redis.LOG_WARNING).
	capsRe = regexp.MustCompile(`(?:^|[^.\w])([A-Z][A-Z0-9_]+)\b`)
	// operandRe matches the operand of a comparison: a string, a number or a name.
	operandRe = `('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|-?\d[\w.]*|[A-Za-z_]\w*)`
)

// checkNames reports the names in capitals of code (body, the script
// without comments, without its strings) that are neither codes of c nor
// KEYS and ARGV, and the comparisons in body of c.Coded variables with
// anything but a code.
func checkNames(body, code string, c Contract) []string {
	codes := map[string]bool{}
	for _, gc := range c.Codes {
		codes[gc.Name] = true
	}
	var msgs []string
	seen := map[string]bool{"KEYS": true, "ARGV": true}
	for _, m := range capsRe.FindAllStringSubmatch(code, -1) {
		if n := m[1]; !codes[n] && !seen[n] {
			seen[n] = true
			msgs = append(msgs, fmt.Sprintf("the body names %s, which is not a code of the Go counterpart", n))
		}
	}
	for _, v := range c.Coded {
		q := regexp.QuoteMeta(v)
		after := regexp.MustCompile(`(?:^|[^.\w])` + q + `\s*(?:==|~=)\s*` + operandRe)
		before := regexp.MustCompile(operandRe + `\s*(?:==|~=)\s*` + q + `\b`)
		for line := range strings.Lines(body) {
			var operands []string
			for _, m := range after.FindAllStringSubmatch(line, -1) {
				operands = append(operands, m[1])
			}
			for _, m := range before.FindAllStringSubmatch(line, -1) {
				if m[1] != v {
					operands = append(operands, m[1])
				}
			}
			for _, o := range operands {
				if !codes[o] {
					msgs = append(msgs, fmt.Sprintf("%s is compared with %s, not a code: %s", v, o, strings.TrimSpace(line)))
				}
			}
		}
	}
	return msgs
}
