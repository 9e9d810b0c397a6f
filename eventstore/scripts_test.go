package eventstore

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/internal/luascript"
)

// TestScriptContracts: every script's header (KEYS, ARGV, Codes) agrees with
// its Go counterpart in scripts.go, every code is used by its body, and no
// status is returned as a bare number.
func TestScriptContracts(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		c         luascript.Contract
	}{
		// append: KEYS[1] the log, then two keys per stream; ARGV is a
		// list of transactions (appendStreamPart, appendStreamArgs).
		{"append.lua", appendBodyLua, luascript.Contract{Keys: 0, Variadic: true, Codes: appendCodes(), Statuses: true}},
		{"delete.lua", deleteBodyLua, luascript.Contract{Keys: len(deleteRequest{}.keys()), Args: len(deleteRequest{}.args()), Codes: deleteCodes(), Statuses: true}},
		{"info.lua", infoBodyLua, luascript.Contract{Keys: len(infoKeys("", ""))}},
	} {
		if err := luascript.Check(tc.name, tc.src, tc.c); err != nil {
			t.Error(err)
		}
	}
}

// TestExpectedKindsListed: every special (negative) ExpectedVersion constant
// of event.go is one the scripts know (expectedCodes), so a new kind cannot
// reach a script that would take it for another.
func TestExpectedKindsListed(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "event.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "ExpectedVersion" || len(vs.Values) != 1 {
				continue
			}
			lit := vs.Values[0]
			neg := false
			if u, ok := lit.(*ast.UnaryExpr); ok && u.Op == token.SUB {
				lit, neg = u.X, true
			}
			bl, ok := lit.(*ast.BasicLit)
			if !ok {
				t.Errorf("ExpectedVersion %s: not a literal", vs.Names[0])
				continue
			}
			v, _ := strconv.ParseInt(bl.Value, 10, 64)
			if neg {
				v = -v
			}
			if v >= 0 {
				continue // an exact version (NoStream)
			}
			found++
			if !ExpectedVersion(v).valid() {
				t.Errorf("ExpectedVersion %s (%d) is not in expectedCodes (scripts.go): the scripts do not know it", vs.Names[0], v)
			}
		}
	}
	if found != len(expectedCodes()) {
		t.Errorf("event.go declares %d special ExpectedVersions, expectedCodes lists %d", found, len(expectedCodes()))
	}
}

// TestCheckCatchesDrift: the check fails on a header or body that drifted.
func TestCheckCatchesDrift(t *testing.T) {
	c := luascript.Contract{Keys: len(deleteRequest{}.keys()), Args: len(deleteRequest{}.args()), Codes: deleteCodes(), Statuses: true}
	for name, src := range map[string]string{
		"renumbered code":   replaceOnce(t, deleteBodyLua, "NO_STREAM 3", "NO_STREAM 5"),
		"bare status":       replaceOnce(t, deleteBodyLua, "return {DELETED, v, pos}", "return {0, v, pos}"),
		"undocumented argv": replaceOnce(t, deleteBodyLua, "-- ARGV[3]", "-- ARGV[4]"),
	} {
		if luascript.Check("delete.lua", src, c) == nil {
			t.Errorf("%s: not detected", name)
		}
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	i := strings.Index(s, old)
	if i < 0 {
		t.Fatalf("%q not in script", old)
	}
	return s[:i] + new + s[i+len(old):]
}
