package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// links is one toxiproxy proxy per site, in this process: the site dials its proxy,
// which dials the aggregator, and every fault of the network kind is a toxic added
// to and removed from a proxy (toxiproxy's own toxics: latency, bandwidth, timeout,
// reset_peer).
type links struct {
	server *toxiproxy.ApiServer

	mu      sync.Mutex
	proxies map[string]*toxiproxy.Proxy
	toxics  int // toxics added so far, to name them uniquely
}

func newLinks() *links {
	return &links{
		server:  toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
		proxies: map[string]*toxiproxy.Proxy{},
	}
}

// add starts site's proxy on a free loopback port in front of upstream and returns
// the address it listens on.
func (l *links) add(site, upstream string) (string, error) {
	p := toxiproxy.NewProxy(l.server, site, "127.0.0.1:0", upstream)
	if err := l.server.Collection.Add(p, true); err != nil {
		return "", fmt.Errorf("faults: the proxy of site %s: %w", site, err)
	}
	l.mu.Lock()
	l.proxies[site] = p
	l.mu.Unlock()
	return p.Listen, nil
}

// toxic is one toxiproxy toxic as its API spells it.
type toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"`
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

// inject adds a toxic of typ with attrs to both directions of site's link and
// returns the function that removes them.
func (l *links) inject(site, typ string, attrs map[string]any) (remove func(), err error) {
	l.mu.Lock()
	p := l.proxies[site]
	l.toxics++
	n := l.toxics
	l.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("faults: no proxy for site %s", site)
	}
	var names []string
	remove = func() {
		for _, name := range names {
			_ = p.Toxics.RemoveToxic(context.Background(), name)
		}
	}
	for _, dir := range []string{"upstream", "downstream"} {
		t := toxic{Name: fmt.Sprintf("%s-%d-%s", typ, n, dir), Type: typ, Stream: dir, Toxicity: 1, Attributes: attrs}
		b, err := json.Marshal(t)
		if err != nil {
			remove()
			return nil, err
		}
		if _, err := p.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
			remove()
			return nil, fmt.Errorf("faults: toxic %s on site %s's link: %w", typ, site, err)
		}
		names = append(names, t.Name)
	}
	return remove, nil
}

// injectAll adds the toxic to every site's link.
func (l *links) injectAll(sites []string, typ string, attrs map[string]any) (remove func(), err error) {
	var removes []func()
	remove = func() {
		for _, r := range removes {
			r()
		}
	}
	for _, s := range sites {
		r, err := l.inject(s, typ, attrs)
		if err != nil {
			remove()
			return nil, err
		}
		removes = append(removes, r)
	}
	return remove, nil
}

// close stops every proxy and closes its connections.
func (l *links) close() {
	_ = l.server.Collection.Clear()
}
