package aggregator

import "sync"

// maxUploadsPerSite bounds the upload streams one site may hold open at once: a
// site uploads one blob at a time, and one more covers a retry racing the stream
// it replaces. Without a bound, streams that never finish pile up buffers.
const maxUploadsPerSite = 2

// maxUploads bounds the upload streams read at once across all sites, so that the
// aggregator's memory does not grow with the number of sites uploading together
// (64 sites each mid-upload held about 4 MB of chunk data and decode copies). A
// waiting upload costs its site time, not the aggregator memory: its data stays
// in gRPC's 64 KiB flow-control window.
const maxUploads = 8

// uploadSlots counts each site's open upload streams. Handlers take a slot before
// reading anything and give it back when the stream ends; it is safe for
// concurrent use because it is consulted outside the loop.
type uploadSlots struct {
	mu    sync.Mutex
	limit int
	busy  map[string]int
}

// acquire takes a slot for site, or reports false when it holds limit already.
func (u *uploadSlots) acquire(site string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.busy[site] >= u.limit {
		return false
	}
	u.busy[site]++
	return true
}

func (u *uploadSlots) release(site string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.busy[site]--; u.busy[site] <= 0 {
		delete(u.busy, site)
	}
}
