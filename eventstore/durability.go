package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/luascript"
)

// Durability asks Redis to confirm that an append reached replicas before
// Append returns. Without it, an append is acknowledged once the primary
// has applied it (and, with appendfsync always, written its AOF); a
// failover can then lose it.
type Durability struct {
	// Replicas is how many replicas must acknowledge the append (WAIT).
	Replicas int
	// Timeout bounds the wait (default 1s). WAIT never fails the write: on
	// timeout the append stands on the primary and Append returns a
	// *DurabilityError carrying its result.
	Timeout time.Duration
}

func (d Durability) enabled() bool { return d.Replicas > 0 }

// WithDurability sets the replication acknowledgement of appends (default:
// none). WAIT is sent on the connection that carried the append, in the same
// round trip, as Redis requires; on a cluster it goes to the partition's
// primary.
func WithDurability(d Durability) Option {
	return func(o *options) { o.durability = d }
}

// ErrNotDurable: an append was applied on the primary but fewer replicas
// than asked acknowledged it in time.
var ErrNotDurable = errors.New("eventstore: append not acknowledged by enough replicas")

// DurabilityError reports an append that the primary applied but that too
// few replicas acknowledged. Results holds what was appended: retrying the
// same events with the same expected version is safe (it replays, and is
// acknowledged only once enough replicas have caught up).
type DurabilityError struct {
	Results []AppendResult
	Wanted  int
	Acked   int
}

func (e *DurabilityError) Error() string {
	return fmt.Sprintf("eventstore: append applied on the primary but acknowledged by %d of %d replicas", e.Acked, e.Wanted)
}

// Unwrap makes errors.Is(err, ErrNotDurable) true.
func (e *DurabilityError) Unwrap() error { return ErrNotDurable }

// appendCall is the append script for durableCall, which sends it with WAIT.
var appendCall = luascript.NewScript(appendLua)

// execDurable sends the script and WAIT in one DoMulti on one dedicated
// connection (WAIT blocks) to the partition's primary, so WAIT counts this
// write.
//
// A redirection is followed here, not by rueidis: its cluster DoMulti would
// resend the script alone to the new owner while WAIT, answered by the old
// one, counted replicas of some earlier write: a false acknowledgement during
// a slot migration or after a failover. So the dedicated connection returns
// MOVED and ASK, and both commands go again together to the node named
// (after ASKING for an ASK). Other refusals (TRYAGAIN, ...) are retried by
// the caller (retryRefused).
func (s *Store) execDurable(ctx context.Context, keys, args []string) (rueidis.RedisMessage, int, error) {
	res, err := s.durableCall(ctx, s.client, false, keys, args)
	if err == nil {
		err = res[0].Error()
	}
	var re *rueidis.RedisError
	if errors.As(err, &re) {
		addr, ask := re.IsAsk()
		if !ask {
			addr, _ = re.IsMoved()
		}
		if node, ok := s.client.Nodes()[addr]; ok && addr != "" {
			res, err = s.durableCall(ctx, node, ask, keys, args)
		}
	}
	if err != nil {
		return rueidis.RedisMessage{}, 0, err
	}
	reply, err := res[0].ToMessage()
	if err != nil {
		return rueidis.RedisMessage{}, 0, err
	}
	n, err := res[1].AsInt64()
	if err != nil {
		return rueidis.RedisMessage{}, 0, fmt.Errorf("WAIT: %w", err)
	}
	return reply, int(n), nil
}

// durableCall sends the script (EVAL after NOSCRIPT) and WAIT on one
// dedicated connection of c, preceded by ASKING when asking; it returns the
// script's and WAIT's replies.
func (s *Store) durableCall(ctx context.Context, c rueidis.Client, asking bool, keys, args []string) ([]rueidis.RedisResult, error) {
	var out []rueidis.RedisResult
	err := c.Dedicated(func(dc rueidis.DedicatedClient) error {
		out = appendCall.Send(dc.B(), keys, args, func(script rueidis.Completed) []rueidis.RedisResult {
			wait := dc.B().Wait().Numreplicas(int64(s.opts.durability.Replicas)).Timeout(s.opts.durability.Timeout.Milliseconds()).Build()
			if asking {
				return dc.DoMulti(ctx, dc.B().Asking().Build(), script, wait)[1:]
			}
			return dc.DoMulti(ctx, script, wait)
		})
		return nil
	})
	return out, err
}
