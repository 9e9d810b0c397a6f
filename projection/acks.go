package projection

import "time"

// Acks: workers report finished entries to their partition, whose reader
// sends the ids with its next read (read.lua acks them first, fenced), so a
// burst costs one script call per read rather than one per event. Runner
// wakes WaitFor callers when acks reach Redis.

// ackCoalesce bounds how long finished events of a burst's tail wait to be
// acked together (it delays WaitFor by at most that much).
const ackCoalesce = 2 * time.Millisecond

func (p *partition) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// finish is called by a worker when a task of this partition is done.
func (p *partition) finish(ackID string) {
	p.mu.Lock()
	if ackID != "" {
		p.acks = append(p.acks, ackID)
	}
	p.inflight--
	p.mu.Unlock()
	p.signal()
}

// finishMany is finish for a batch task of n events.
func (p *partition) finishMany(ackIDs []string, n int) {
	p.mu.Lock()
	p.acks = append(p.acks, ackIDs...)
	p.inflight -= n
	p.mu.Unlock()
	p.signal()
}

func (p *partition) hasAcks() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acks) > 0
}

func (p *partition) takeAcks() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.acks
	p.acks = nil
	return a
}

func (p *partition) putBackAcks(a []string) {
	if len(a) == 0 {
		return
	}
	p.mu.Lock()
	p.acks = append(a, p.acks...)
	p.mu.Unlock()
}

func (p *partition) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

// waitIdle waits until nothing is in flight, d passes, or a stop.
func (p *partition) waitIdle(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for p.inFlight() > 0 {
		select {
		case <-p.wake:
		case <-t.C:
			return
		case <-p.stop:
			return
		}
	}
}

// notifyAcked wakes WaitFor callers.
func (r *Runner) notifyAcked() {
	r.ackMu.Lock()
	close(r.acked)
	r.acked = make(chan struct{})
	r.ackMu.Unlock()
}

func (r *Runner) ackSignal() <-chan struct{} {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	return r.acked
}
