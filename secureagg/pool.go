package secureagg

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// parallel runs work(w, i) for i in [0, n) on at most GOMAXPROCS workers; w is
// the worker's index, so that each worker can own its lattigo buffers. It
// stops at the first error or when ctx is done.
func parallel(ctx context.Context, n int, newWorker func() func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers < 1 {
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work := newWorker()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = work(i)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
