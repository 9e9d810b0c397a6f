package luascript

import (
	"context"
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// Script is a script's source and SHA-1, for the calls rueidis.Lua cannot
// make: calls pipelined with others (ExecMulti, without Lua.ExecMulti's
// SCRIPT LOAD on every node first), and a call sent on one connection with
// other commands around it (Send: WAIT after an append). Both send EVALSHA
// and fall back to EVAL when Redis does not know the script (NOSCRIPT: a
// restarted or flushed server, a new replica promoted).
type Script struct {
	src, sha string
}

// NewScript returns the Script of source src.
func NewScript(src string) Script {
	h := sha1.Sum([]byte(src))
	return Script{src: src, sha: hex.EncodeToString(h[:])}
}

// SHA1 returns the script's SHA-1, in hex, as EVALSHA takes it.
func (s Script) SHA1() string { return s.sha }

// EvalSHA returns the EVALSHA command of a call of the script.
func (s Script) EvalSHA(b rueidis.Builder, keys, args []string) rueidis.Completed {
	return b.Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// Eval returns the EVAL command of a call of the script.
func (s Script) Eval(b rueidis.Builder, keys, args []string) rueidis.Completed {
	return b.Eval().Script(s.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// IsNoScript reports whether err is Redis' NOSCRIPT: the script is not in
// the server's cache, and nothing ran.
func IsNoScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}

// Send calls the script through send, which sends the command it is given
// (with others around it, on a connection of its choice) and returns the
// replies, the script's first: once as EVALSHA and, when that reply is
// NOSCRIPT, once more as EVAL. It returns the replies of the last send.
func (s Script) Send(b rueidis.Builder, keys, args []string, send func(script rueidis.Completed) []rueidis.RedisResult) []rueidis.RedisResult {
	out := send(s.EvalSHA(b, keys, args))
	if len(out) > 0 && IsNoScript(out[0].Error()) {
		out = send(s.Eval(b, keys, args))
	}
	return out
}

// Call is one call of a script, for ExecMulti.
type Call struct {
	Script     Script
	Keys, Args []string
}

// ExecMulti makes calls in one round trip: EVALSHA for all, pipelined, then
// EVAL for those that found their script missing. It returns their replies
// in order. rueidis' Lua.ExecMulti would first send SCRIPT LOAD to every
// node on every call: a second round trip and ~7 µs of server time.
func ExecMulti(ctx context.Context, c rueidis.Client, calls []Call) []rueidis.RedisResult {
	if len(calls) == 1 {
		// One call goes alone, so rueidis can pipeline it with the
		// other goroutines' commands.
		k := calls[0]
		return []rueidis.RedisResult{k.Script.Send(c.B(), k.Keys, k.Args, func(cmd rueidis.Completed) []rueidis.RedisResult {
			return []rueidis.RedisResult{c.Do(ctx, cmd)}
		})[0]}
	}
	cmds := make(rueidis.Commands, len(calls))
	for i, k := range calls {
		cmds[i] = k.Script.EvalSHA(c.B(), k.Keys, k.Args)
	}
	out := c.DoMulti(ctx, cmds...)
	for i, res := range out {
		if IsNoScript(res.Error()) {
			k := calls[i]
			out[i] = c.Do(ctx, k.Script.Eval(c.B(), k.Keys, k.Args))
		}
	}
	return out
}
