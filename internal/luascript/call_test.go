package luascript_test

import (
	"context"
	"testing"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/luascript"
	"github.com/streamfold/streamfold/redistest"
)

// TestCallsAfterScriptFlush: EVALSHA of a script the server does not know
// (NOSCRIPT) is sent again as EVAL, alone, pipelined, and with other
// commands around it.
func TestCallsAfterScriptFlush(t *testing.T) {
	ctx := context.Background()
	c := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal)).NewClient(t)
	echo := luascript.NewScript("return KEYS[1] .. ARGV[1]")
	twice := luascript.NewScript("return KEYS[1] .. ARGV[1] .. ARGV[1]")
	flush := func() {
		t.Helper()
		if err := c.Do(ctx, c.B().ScriptFlush().Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	want := func(res rueidis.RedisResult, s string) {
		t.Helper()
		if got, err := res.ToString(); err != nil || got != s {
			t.Fatalf("got %q, %v; want %q", got, err, s)
		}
	}
	flush()
	want(luascript.ExecMulti(ctx, c, []luascript.Call{{Script: echo, Keys: []string{"k"}, Args: []string{"1"}}})[0], "k1")
	flush()
	out := luascript.ExecMulti(ctx, c, []luascript.Call{
		{Script: echo, Keys: []string{"a"}, Args: []string{"1"}},
		{Script: twice, Keys: []string{"b"}, Args: []string{"2"}},
	})
	want(out[0], "a1")
	want(out[1], "b22")
	flush()
	sends := 0
	out = echo.Send(c.B(), []string{"s"}, []string{"x"}, func(cmd rueidis.Completed) []rueidis.RedisResult {
		sends++
		return c.DoMulti(ctx, c.B().Ping().Build(), cmd, c.B().Echo().Message("after").Build())[1:]
	})
	want(out[0], "sx")
	want(out[1], "after")
	if sends != 2 {
		t.Fatalf("%d sends after SCRIPT FLUSH, want 2 (EVALSHA, EVAL)", sends)
	}
}
