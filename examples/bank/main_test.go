package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var (
	balanceLine   = regexp.MustCompile(`(?m)^\s+account-(\S+)\s+\S+\s+balance\s+(-?\d+)\s+\(version (\d+)\)$`)
	namespaceLine = regexp.MustCompile(`(?m)^namespace (bank-[a-z0-9]+);`)
)

// TestBank runs the demo twice on one server: the story's balances come out, and a
// second run does not collide with the first (each run has its own namespace).
func TestBank(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	seen := map[string]bool{}
	for range 2 {
		var out bytes.Buffer
		err := run(ctx, &out, tg.Client)
		if m := namespaceLine.FindStringSubmatch(out.String()); m != nil {
			// run writes outside tg.Namespace: clean up, for runs against REDIS_URL.
			t.Cleanup(func() { unlinkNamespace(t, tg.Client, m[1]) })
			if seen[m[1]] {
				t.Errorf("namespace %s used twice", m[1])
			}
			seen[m[1]] = true
		} else {
			t.Errorf("no namespace line in the output")
		}
		if err != nil {
			t.Fatalf("run: %v\noutput:\n%s", err, out.String())
		}

		type balance struct{ amount, version int }
		got := map[string]balance{}
		savings := ""
		for _, m := range balanceLine.FindAllStringSubmatch(out.String(), -1) {
			amount, _ := strconv.Atoi(m[2])
			version, _ := strconv.Atoi(m[3])
			id := m[1]
			if regexp.MustCompile(`^savings-\d+$`).MatchString(id) {
				savings, id = id, "savings"
			}
			got[id] = balance{amount, version}
		}
		want := map[string]balance{
			"alice":   {55, 5}, // +100 -30 +25 (sent twice, written once) -40 to savings
			"bob":     {50 - 20 - 10, 4},
			"carol":   {20, 2},
			"savings": {40, 2},
		}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: balance %d at version %d, want %d at version %d", id, got[id].amount, got[id].version, w.amount, w.version)
			}
		}
		if len(got) != len(want) || savings == "" {
			t.Errorf("balances %v, want the accounts %v", got, want)
		}
		if !regexp.MustCompile(`(?m)^\s+total 135$`).MatchString(out.String()) {
			t.Errorf("no total 135 in the output")
		}
		if t.Failed() {
			t.Fatalf("output:\n%s", out.String())
		}
	}
}

// unlinkNamespace deletes the keys of a demo run (a standalone server).
func unlinkNamespace(t *testing.T, c rueidis.Client, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(ns+":*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Logf("cleaning %s: %v", ns, err)
			return
		}
		if len(e.Elements) > 0 {
			if err := c.Do(ctx, c.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				t.Logf("cleaning %s: %v", ns, err)
				return
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}
