package aggregate

import (
	"context"
	"sync"
)

// keyedMutex serialises Updates of one aggregate inside a process. Without
// it, N local goroutines updating one aggregate all load the same version and
// all but one lose the append, so local contention costs N round trips per
// success and a backoff; with it they queue, and optimistic concurrency is
// left to resolve the contention between processes.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked; a channel so waiting honours ctx
	refs int
}

// lock waits for key's lock, or for ctx to end; it returns the unlock.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
