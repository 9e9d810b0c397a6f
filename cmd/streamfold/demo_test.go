package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/examples/bank/bankdemo"
	"github.com/streamfold/streamfold/redistest"
)

// TestBankDemo runs the bank demo, then every command against its data
// (issue 8: "every CLI command works against the demo's data").
func TestBankDemo(t *testing.T) {
	onEveryTarget(t, func(t *testing.T, tg *redistest.Target) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var story bytes.Buffer
		if err := bankdemo.Run(ctx, &story, tg.Client, tg.Namespace); err != nil {
			t.Fatalf("bankdemo.Run: %v\n%s", err, story.String())
		}
		balances, statements, transfers := bankdemo.BalancesProjection, bankdemo.StatementsProjection, bankdemo.TransfersProjection
		for _, c := range []struct {
			args []string
			want []string
		}{
			{[]string{"streams"}, []string{"account", "transfer"}},
			{[]string{"read", "account-alice"}, []string{"AccountOpened", "Deposited"}},
			{[]string{"read", "account-alice", "--backward", "--limit", "2"}, nil},
			{[]string{"--json", "read", "transfer-t1"}, []string{`"type"`, `"data"`}},
			{[]string{"groups"}, []string{balances, statements, transfers}},
			{[]string{"--json", "groups"}, []string{`"lease_holder"`}},
			{[]string{"pending"}, nil},
			{[]string{"dlq", "list", transfers}, []string{"transfer-t3"}},
			{[]string{"dlq", "list", balances}, []string{"no dead letters"}},
			{[]string{"--json", "dlq", "list", transfers}, []string{`"ref"`}},
			{[]string{"dlq", "retry", transfers, "transfer-t3"}, []string{"retry of transfer-t3"}},
			{[]string{"rebuild", balances, "--progress=false"}, []string{"account", "projection.Rebuild"}},
			{[]string{"trim", "--dry-run", "--max-len", "1"}, []string{"would trim (dry run)"}},
			{[]string{"compact", "--dry-run", "--idle", "1h"}, []string{"would compact (dry run)"}},
			{[]string{"stats"}, []string{"read model balances", "read model statements", "keyspace hits"}},
			{[]string{"--json", "stats"}, []string{`"read_models"`}},
		} {
			r := cli(t, tg, c.args...)
			if r.code != 0 {
				t.Errorf("streamfold %s: exit %d\n%s\n%s", strings.Join(c.args, " "), r.code, r.stdout, r.stderr)
				continue
			}
			mustContain(t, "streamfold "+strings.Join(c.args, " "), r.stdout, c.want...)
		}
		// The letter can be skipped by the ref `dlq list` prints.
		var ls []letterJSON
		okJSON(t, tg, &ls, "dlq", "list", transfers)
		if len(ls) == 0 {
			t.Fatal("no dead letter of transfers")
		}
		ok(t, tg, "dlq", "skip", transfers, ls[0].Ref)
	})
}
