package eventstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
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
	return func(o *options) {
		if d.Timeout == 0 {
			d.Timeout = time.Second
		}
		o.durability = d
	}
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

var appendSHA = func() string { h := sha1.Sum([]byte(appendLua)); return hex.EncodeToString(h[:]) }()

// execDurable sends the script and WAIT in one DoMulti: rueidis puts them on
// one connection (a dedicated one, since WAIT blocks; on a cluster, the
// keyless WAIT follows the script's slot), so WAIT counts this write.
func (s *Store) execDurable(ctx context.Context, keys, args []string) ([]rueidis.RedisMessage, int, error) {
	c := s.client
	wait := c.B().Wait().Numreplicas(int64(s.opts.durability.Replicas)).Timeout(s.opts.durability.Timeout.Milliseconds()).Build()
	res := c.DoMulti(ctx, c.B().Evalsha().Sha1(appendSHA).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build(), wait)
	if err := res[0].Error(); err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && re.IsNoScript() {
			wait = c.B().Wait().Numreplicas(int64(s.opts.durability.Replicas)).Timeout(s.opts.durability.Timeout.Milliseconds()).Build()
			res = c.DoMulti(ctx, c.B().Eval().Script(appendLua).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build(), wait)
		}
	}
	resp, err := res[0].ToArray()
	if err != nil {
		return nil, 0, err
	}
	n, err := res[1].AsInt64()
	if err != nil {
		return nil, 0, fmt.Errorf("WAIT: %w", err)
	}
	return resp, int(n), nil
}
