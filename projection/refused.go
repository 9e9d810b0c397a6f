package projection

import (
	"context"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/refusal"
)

// script is a Lua script whose calls Redis refused without running them
// (during a slot migration: TRYAGAIN while a partition's keys are split
// between two nodes, or an ASK or MOVED rueidis did not follow; LOADING;
// BUSY) are sent again with backoff, as the store does (package
// internal/refusal): such a call wrote nothing, so sending it again is safe
// for every script of the runner. A call that gives up returns an
// *eventstore.UnavailableError (errors.Is eventstore.ErrUnavailable).
//
// The runner's contexts have no deadline; patience bounds the retries then
// (a quarter of the lease TTL), so that the maintenance round that renews
// every lease is not held up by one refused partition.
type script struct {
	lua      *rueidis.Lua
	patience time.Duration
}

func newScript(src string, patience time.Duration) script {
	return script{lua: rueidis.NewLuaScript(src), patience: patience}
}

// Exec is rueidis.Lua.Exec with refusals retried.
func (s script) Exec(ctx context.Context, c rueidis.Client, keys, args []string) rueidis.RedisResult {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var res rueidis.RedisResult
	st, err := refusal.Retry(ctx, func() error {
		res = s.lua.Exec(ctx, c, keys, args)
		return res.Error()
	})
	return unavailable(res, st, err)
}

// ExecMulti is rueidis.Lua.ExecMulti with the refused calls retried, each
// on its own, all within the patience (as Exec): a lease renewal round must
// end while the leases it renews are still valid, even when Redis hangs.
func (s script) ExecMulti(ctx context.Context, c rueidis.Client, multi ...rueidis.LuaExec) []rueidis.RedisResult {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	out := s.lua.ExecMulti(ctx, c, multi...)
	for i, res := range out {
		if refusal.Is(res.Error()) {
			out[i] = s.Exec(ctx, c, multi[i].Keys, multi[i].Args)
		}
	}
	return out
}

func (s script) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || s.patience <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.patience)
}

func unavailable(res rueidis.RedisResult, st refusal.Stats, err error) rueidis.RedisResult {
	if err != nil && refusal.Is(err) {
		return rueidis.NewErrorResult(&eventstore.UnavailableError{Retries: st.Retries, Waited: st.Waited, Err: err})
	}
	return res
}
