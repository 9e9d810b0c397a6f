package tour_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/redistest"
)

// TestMain and TestOpenAccount are the README's redistest snippet.
func TestMain(m *testing.M) { redistest.Main(m) }

func TestOpenAccount(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		reg := eventstore.NewRegistry()
		type Opened struct{ Owner string }
		eventstore.MustRegister[Opened](reg, "Opened")
		store, err := eventstore.New(tg.Client, eventstore.WithNamespace(tg.Namespace), eventstore.WithRegistry(reg))
		if err != nil {
			t.Fatal(err)
		}
		res, err := store.Append(context.Background(), eventstore.Stream("account", "alice"),
			eventstore.NoStream, eventstore.NewEvent(Opened{Owner: "Alice"}))
		if err != nil || res.Version != 1 {
			t.Fatalf("append: %+v, %v", res, err)
		}
	})
}

// The files whose code the README may show.
var readmeSources = []string{
	"example_test.go",
	"readme_test.go",
	"../../eventstore/example_test.go",
}

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// TestREADMECode checks that every Go block of the README is, line for line
// (leading tabs aside), part of a file above: code that compiles and runs.
func TestREADMECode(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, f := range readmeSources {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, normalize(string(b)))
	}
	blocks := goBlock.FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("no Go blocks in README.md")
	}
	for _, b := range blocks {
		code := normalize(b[1])
		found := false
		for _, s := range sources {
			if strings.Contains(s, code) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("README block not found in %v:\n%s", readmeSources, b[1])
		}
	}
}

// normalize drops leading tabs and blank lines.
func normalize(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimLeft(l, "\t"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return "\n" + strings.Join(out, "\n") + "\n"
}
