package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/site"
)

// newHealthCmd is the probe for container healthchecks and monitoring: exit 0 and
// one line when healthy, non-zero and one sentence saying why otherwise.
func newHealthCmd(a *app) *cobra.Command {
	var rawURL, addr, stateDir string
	var timeout, maxAge time.Duration
	cmd := &cobra.Command{
		Use:   "health (--url URL | --addr HOST:PORT | --site-state DIR)",
		Short: "Probe an aggregator's /healthz or a site agent's heartbeat; exit non-zero when unhealthy",
		Long: `Probe one fedclaims process; exit 0 when it is healthy, 1 with the reason otherwise.

The aggregator: GET its /healthz on the metrics listener (plain HTTP, the same address
as /metrics and the status page, 127.0.0.1:9464 by default), with --url, or --addr for
http://HOST:PORT/healthz. Healthy is 200 within --timeout: the federation's loop runs
and has not halted.

A site agent: it only dials out and has no listener, so it writes heartbeat.json in its
state directory while its work stream to the aggregator is open over a live connection
(every 30 s, and at each assignment). --site-state DIR reads it: healthy is a last
contact within --max-age.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var n int
			for _, s := range []string{rawURL, addr, stateDir} {
				if s != "" {
					n++
				}
			}
			if n != 1 {
				return errors.New("fedclaims health needs exactly one of --url, --addr (an aggregator) or --site-state (a site agent)")
			}
			var msg string
			var err error
			if stateDir != "" {
				msg, err = siteHealth(stateDir, maxAge, time.Now())
			} else {
				if addr != "" {
					rawURL = "http://" + addr + "/healthz"
				}
				msg, err = aggregatorHealth(cmd.Context(), rawURL, timeout)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, msg)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&rawURL, "url", "", "the aggregator's health URL, e.g. http://127.0.0.1:9464/healthz")
	f.StringVar(&addr, "addr", "", "the aggregator's metrics listener HOST:PORT (probes http://HOST:PORT/healthz)")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "how long the aggregator has to answer")
	f.StringVar(&stateDir, "site-state", "", "a site agent's state directory (its state_dir)")
	f.DurationVar(&maxAge, "max-age", 2*time.Minute, "the oldest last contact with the aggregator a healthy site may have")
	return cmd
}

// aggregatorHealth GETs rawURL and wants 200 within timeout.
func aggregatorHealth(ctx context.Context, rawURL string, timeout time.Duration) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("flag --url %q: want http://HOST:PORT/healthz", rawURL)
	}
	if timeout <= 0 {
		return "", fmt.Errorf("flag --timeout %s: want a positive duration", timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("flag --url %q: %w", rawURL, err)
	}
	// No proxy: a probe asks this very address, never a proxy in the environment.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("aggregator %s is unhealthy: no answer within %s: %w", rawURL, timeout, err)
		}
		return "", fmt.Errorf("aggregator %s is not reachable: %w", rawURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	said := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("aggregator %s is unhealthy: it answered %s %q", rawURL, resp.Status, said)
	}
	return fmt.Sprintf("aggregator %s: healthy (%s)", rawURL, said), nil
}

// siteHealth reads the heartbeat a site agent keeps in stateDir and wants its last
// contact with the aggregator at most maxAge before now.
func siteHealth(stateDir string, maxAge time.Duration, now time.Time) (string, error) {
	if maxAge < site.HeartbeatEvery {
		return "", fmt.Errorf("flag --max-age %s: shorter than the %s between a site's heartbeats, a healthy site would read as stale", maxAge, site.HeartbeatEvery)
	}
	if fi, err := os.Stat(stateDir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return "", fmt.Errorf("flag --site-state %s: %w", stateDir, err)
	}
	h, err := site.ReadHeartbeat(stateDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("site state %s holds no %s: the site agent has had no live contact with the aggregator since it started, or does not run with this state_dir", stateDir, site.HeartbeatFile)
	case err != nil:
		return "", err
	}
	age := now.Sub(h.LastContact).Round(time.Second)
	if age > maxAge {
		return "", fmt.Errorf("site %s is unhealthy: its last contact with the aggregator was %s ago (%s), longer than --max-age %s", h.SiteID, age, h.LastContact.Format(time.RFC3339), maxAge)
	}
	last := "no assignment yet on this stream"
	if !h.LastMessage.IsZero() {
		last = "last assignment " + now.Sub(h.LastMessage).Round(time.Second).String() + " ago"
	}
	return fmt.Sprintf("site %s (federation %s): healthy, in contact with the aggregator %s ago, work stream open since %s, %s",
		h.SiteID, h.Federation, age, h.StreamOpen.Format(time.RFC3339), last), nil
}
