package aggregator

import (
	"context"
	"sync"
)

// Downloads run under two bounds, so that the aggregator's memory stays O(model)
// rather than O(sites × model): a download holds, until its site has read it, the
// encoded message gRPC is writing (up to a chunk, proto.MaxChunk) and the stream's
// write quota. At key setup every site fetches a sealed share from every dealer
// (N² downloads) and in each round every site fetches the model, so without a bound
// all of them buffer together.
const (
	// maxDownloads bounds the downloads the aggregator serves at once; the rest wait
	// their turn (in order, mostly: Go wakes channel senders first come first served).
	maxDownloads = 8
	// maxDownloadsPerSite bounds one site's share of them: a site downloads one blob
	// at a time, and one more covers a retry racing the stream it replaces, so that
	// a site that opens streams and never reads them cannot take every slot.
	maxDownloadsPerSite = 2
)

// downloadSlots counts the downloads being served, overall and per site. Unlike
// uploadSlots it makes a caller wait, not refuse: a download is short, and a site
// refused would only retry. It is safe for concurrent use.
type downloadSlots struct {
	all chan struct{}

	mu      sync.Mutex
	perSite int
	sites   map[string]*siteDownloads
}

// siteDownloads is one site's slots, with a count of its holders and waiters so
// that an idle site's entry is dropped.
type siteDownloads struct {
	slots chan struct{}
	users int
}

func newDownloadSlots(limit, perSite int) *downloadSlots {
	return &downloadSlots{all: make(chan struct{}, limit), perSite: perSite, sites: map[string]*siteDownloads{}}
}

// acquire waits for one of site's slots and then one of the aggregator's, or until
// ctx ends (its error returned). On success the caller must call the returned
// release once, when the download is over.
func (d *downloadSlots) acquire(ctx context.Context, site string) (release func(), err error) {
	d.mu.Lock()
	sd := d.sites[site]
	if sd == nil {
		sd = &siteDownloads{slots: make(chan struct{}, d.perSite)}
		d.sites[site] = sd
	}
	sd.users++
	d.mu.Unlock()
	leave := func() {
		d.mu.Lock()
		if sd.users--; sd.users == 0 {
			delete(d.sites, site)
		}
		d.mu.Unlock()
	}
	select {
	case sd.slots <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
	select {
	case d.all <- struct{}{}:
	case <-ctx.Done():
		<-sd.slots
		leave()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-d.all
			<-sd.slots
			leave()
		})
	}, nil
}

// busy returns the downloads being served overall and for site, for tests.
func (d *downloadSlots) busy(site string) (all, ofSite int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if sd := d.sites[site]; sd != nil {
		ofSite = len(sd.slots)
	}
	return len(d.all), ofSite
}
