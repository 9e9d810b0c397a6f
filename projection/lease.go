package projection

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/fnv1a"
)

// Leases (lua/lease.lua): at most one instance reads a partition, the one
// holding its lease, whose value carries a fencing token every fenced
// script checks. The runner's maintenance round heartbeats, renews the
// leases held, and takes or hands back partitions towards each live
// instance's fair share.

// maintainEvery is the maintenance period: TTL/3, at most a second, so that
// partitions handed back by an instance that stops gracefully are taken by
// the others within about a second (at TTL/3 = 3.3 s by default, writes to
// them waited that long to be applied).
func maintainEvery(ttl time.Duration) time.Duration { return min(ttl/3, time.Second) }

// healTimeout bounds a maintenance round's healing (see maintain).
const healTimeout = 30 * time.Second

// shuttingDown reports whether a maintenance call's context ended because
// the runner is stopping (cancelled), not at the round's deadline: a
// failure then is not worth a warning.
func shuttingDown(ctx context.Context) bool { return errors.Is(ctx.Err(), context.Canceled) }

// maintain runs every maintainEvery: heartbeat, lease renewal, reaping of stopped
// partitions, and rebalancing (each live instance aims at its fair share
// of the partitions, ceil(partitions/instances)).
//
// Its Redis calls share one lease TTL: past it, a lease not renewed has
// lapsed anyway, and a call to an unresponsive Redis (paused, its host
// gone) can otherwise wait on reconnections for far longer, the round
// never reaching the renewal that gives the partitions up (one runner still
// held its leases a minute into an outage under load). Healing, which
// recreates groups on every partition, gets its own, longer bound, and the
// rebalance a lease TTL of its own after it.
func (r *Runner) maintain(parent context.Context) {
	if parent.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(parent, r.opts.leaseTTL)
	defer cancel()
	live, heartbeat := r.heartbeat(ctx)
	defer r.logHeld(live)
	var lost *StateLostError
	if err := r.checkCounts(ctx); errors.As(err, &lost) {
		return // Run stops
	}
	held, units := r.reap()
	r.renew(ctx, held)
	if r.healWanted.Swap(false) {
		// Before acquiring: the partitions taken next find their groups.
		hctx, hcancel := context.WithTimeout(parent, max(r.opts.leaseTTL, healTimeout))
		err := r.heal(hctx, causeLeaseLost)
		hcancel()
		if err != nil {
			r.healWanted.Store(true)
			if parent.Err() == nil {
				r.warns.warn(r.log, "heal", "projection: recreating lost state failed; trying again", "err", err)
			}
			return
		}
	}
	if heartbeat != nil {
		// An instance the others cannot count must not take partitions:
		// it would count itself alone, aim at all of them, and re-acquire
		// its own leases as they lapse (a half-closed client whose reads
		// fail while its lease scripts still run did exactly that), so
		// the live instances could never take them over.
		return
	}
	// Its own lease TTL: healing may have used the round's time.
	bctx, bcancel := context.WithTimeout(parent, r.opts.leaseTTL)
	defer bcancel()
	r.rebalance(bctx, units, held, live)
}

// heartbeat tells members.lua this instance is alive and returns the number
// of live instances (at least 1), with the heartbeat's error.
func (r *Runner) heartbeat(ctx context.Context) (int64, error) {
	q := membersRequest{key: r.keys.members(), instance: r.opts.instance, ttl: r.opts.leaseTTL}
	live, err := r.sc.members.Exec(ctx, r.client, q.keys(), q.args()).AsInt64()
	if err != nil && !shuttingDown(ctx) {
		r.warns.warn(r.log, "heartbeat", "projection: heartbeat failed; taking no partition until it succeeds", "err", err)
	}
	return max(live, 1), err
}

// leave removes this instance from the live ones (end of Run).
func (r *Runner) leave(ctx context.Context) {
	q := membersRequest{key: r.keys.members(), instance: r.opts.instance, ttl: membersLeave}
	_ = r.sc.members.Exec(ctx, r.client, q.keys(), q.args()).Error()
}

// reap forgets the partitions whose reader ended and returns the ones held
// and not stopping, with the runner's units.
func (r *Runner) reap() (held []*partition, units []unit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for u, p := range r.parts {
		select {
		case <-p.done:
			delete(r.parts, u)
			continue
		default:
		}
		if !p.stopping() {
			held = append(held, p)
		}
	}
	return held, r.units
}

// rebalance hands back the partitions held beyond this instance's fair share
// of units among live instances, or takes free ones up to it.
func (r *Runner) rebalance(ctx context.Context, units []unit, held []*partition, live int64) {
	target := (len(units) + int(live) - 1) / int(live)
	n := 0
	for _, p := range held {
		if !p.stopping() {
			n++
		}
	}
	// Preference order: rotated by a hash of the instance id, so instances
	// starting together do not all race for partition 0 first.
	off := int(fnv1a.String(r.opts.instance) % uint32(max(len(units), 1)))
	if n > target {
		r.handBack(units, off, n-target, live)
		return
	}
	r.take(ctx, units, off, target-n)
}

// handBack stops surplus held partitions, last in preference order first.
func (r *Runner) handBack(units []unit, off, surplus int, live int64) {
	for i := len(units) - 1; i >= 0 && surplus > 0; i-- {
		u := units[(i+off)%len(units)]
		r.mu.Lock()
		p := r.parts[u]
		r.mu.Unlock()
		if p != nil && !p.stopping() {
			r.log.Debug("projection: handing back partition", "category", u.cat, "partition", u.p, "live", live)
			p.requestStop()
			surplus--
		}
	}
}

// take acquires up to want free partitions, in preference order, and
// starts their readers.
func (r *Runner) take(ctx context.Context, units []unit, off, want int) {
	for i := 0; i < len(units) && want > 0; i++ {
		u := units[(i+off)%len(units)]
		r.mu.Lock()
		_, have := r.parts[u]
		r.mu.Unlock()
		if have {
			continue
		}
		p, err := r.acquire(ctx, u)
		if err != nil {
			if !shuttingDown(ctx) {
				r.warns.warn(r.log, "acquire", "projection: acquire failed", "category", u.cat, "partition", u.p, "err", err)
			}
			continue
		}
		if p == nil {
			continue
		}
		r.mu.Lock()
		r.parts[u] = p
		r.mu.Unlock()
		want--
		go p.run()
	}
}

// acquire tries to take u's lease; nil when another instance holds it.
func (r *Runner) acquire(ctx context.Context, u unit) (*partition, error) {
	k := r.keys.part(u.cat, u.p)
	q := leaseRequest{k: k, op: leaseAcquire, owner: r.opts.instance, ttl: r.opts.leaseTTL}
	val, err := parseAcquire(r.sc.lease.Exec(ctx, r.client, q.keys(), q.args()))
	if err != nil || val == "" {
		return nil, err
	}
	r.log.Debug("projection: partition acquired", "category", u.cat, "partition", u.p, "lease", val)
	return newPartition(r, u, k, val), nil
}

// renew extends the leases held, in one pipelined round. A lease found taken
// over stops its partition at once; one not renewed for TTL - TTL/4 (Redis
// unreachable) is given up too, since a standby may take it when it expires.
func (r *Runner) renew(ctx context.Context, held []*partition) {
	if len(held) == 0 {
		return
	}
	execs := make([]rueidis.LuaExec, len(held))
	for i, p := range held {
		execs[i] = leaseRequest{k: p.k, op: leaseRenew, owner: r.opts.instance, ttl: r.opts.leaseTTL, held: p.lease}.exec()
	}
	sent := time.Now()
	for i, res := range r.sc.lease.ExecMulti(ctx, r.client, execs...) {
		p := held[i]
		ours, err := parseLeaseHeld(res)
		switch {
		case err == nil && ours:
			p.renewedAt.Store(sent.UnixNano())
		case err == nil:
			p.lose("lease taken over")
		default:
			if time.Since(time.Unix(0, p.renewedAt.Load())) > r.opts.leaseTTL-r.opts.leaseTTL/4 {
				p.lose("lease not renewed in time: " + err.Error())
			} else if !shuttingDown(ctx) {
				r.warns.warn(r.log, "renew", "projection: lease renewal failed", "category", p.u.cat, "partition", p.u.p, "err", err)
			}
		}
	}
}

// lose stops the partition without acking anything more: another instance
// owns it (or may, soon). Its unacked entries stay pending and are claimed by
// the next holder.
func (p *partition) lose(why string) {
	if p.lost.CompareAndSwap(false, true) {
		if p.stateLost() {
			// Redis lost the lease with its fence counter (emptied): the
			// runner heals, with one WARN for all its partitions.
			p.log.Info("projection: partition lost with the lease state Redis lost", "reason", why)
			p.r.healWanted.Store(true)
		} else {
			p.warns.warn(p.log, "lost", "projection: partition lost", "reason", why)
		}
	}
	p.hcancel()
	p.requestStop()
}

// stateLost reports whether the partition's fence counter is below the
// token of the lease held: only a Redis that lost it (FLUSHALL, a restart
// without persistence) goes back, since the counter never expires and
// only grows.
func (p *partition) stateLost() bool {
	tok, _, _ := strings.Cut(p.lease, ":")
	held, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	fence, err := p.client.Do(ctx, p.client.B().Get().Key(p.k.fence).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return true
	}
	return err == nil && fence < held
}

// release gives the lease back (graceful stop), unless it was lost.
func (p *partition) release() {
	if p.lost.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := leaseRequest{k: p.k, op: leaseRelease, owner: p.consumer, held: p.lease}
	if err := p.sc.lease.Exec(ctx, p.client, q.keys(), q.args()).Error(); err != nil {
		p.log.Warn("projection: lease release failed; it will expire", "err", err)
		return
	}
	p.log.Debug("projection: partition released")
}

// Held returns the partitions this instance currently holds, as
// "category/partition".
func (r *Runner) Held() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for u, p := range r.parts {
		if !p.stopping() {
			out = append(out, fmt.Sprintf("%s/%d", u.cat, u.p))
		}
	}
	return out
}
