package localfed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// Start launches the aggregator, waits until it answers the admin API, then
// launches every site agent.
func (f *Federation) Start(ctx context.Context) error {
	if err := f.Aggregator.start(); err != nil {
		return err
	}
	if err := f.waitAggregator(ctx); err != nil {
		return err
	}
	for _, s := range f.Sites {
		if err := s.Process.start(); err != nil {
			return err
		}
	}
	return nil
}

// RestartAggregator starts the aggregator again after it stopped or was killed,
// and waits until it answers.
func (f *Federation) RestartAggregator(ctx context.Context) error {
	if err := f.Aggregator.start(); err != nil {
		return err
	}
	return f.waitAggregator(ctx)
}

// RestartSite starts a site's agent again after it stopped or was killed.
func (f *Federation) RestartSite(id string) error {
	s := f.Site(id)
	if s == nil {
		return fmt.Errorf("localfed: no site %q", id)
	}
	return s.Process.start()
}

// waitAggregator polls the admin API until the aggregator answers or exits.
func (f *Federation) waitAggregator(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := f.Status(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-f.Aggregator.Done():
			return f.Aggregator.exitError()
		case <-ctx.Done():
			return fmt.Errorf("localfed: the aggregator at %s did not answer: %w (last: %v; log %s)", f.Addr, ctx.Err(), err, f.Aggregator.Log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Admin dials the aggregator with the admin certificate. The caller closes the
// connection.
func (f *Federation) Admin() (fedclaimspb.AdminClient, *grpc.ClientConn, error) {
	tlsConf, err := certs.ClientTLS(certs.AdminFiles(f.PKI), "127.0.0.1")
	if err != nil {
		return nil, nil, fmt.Errorf("localfed: %w", err)
	}
	conn, err := grpc.NewClient(f.Addr, fedclaimspb.DialOptions(tlsConf)...)
	if err != nil {
		return nil, nil, fmt.Errorf("localfed: dialling %s: %w", f.Addr, err)
	}
	return fedclaimspb.NewAdminClient(conn), conn, nil
}

// Envelope is the admin's envelope for this federation.
func (f *Federation) Envelope() *fedclaimspb.Envelope {
	return &fedclaimspb.Envelope{FederationId: f.opts.Federation}
}

// Status asks the aggregator for its status over a fresh admin connection.
func (f *Federation) Status(ctx context.Context) (*fedclaimspb.StatusResponse, error) {
	c, conn, err := f.Admin()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return c.Status(ctx, &fedclaimspb.StatusRequest{Envelope: f.Envelope()})
}

// Close stops every process still running: SIGTERM, then SIGKILL after a grace
// period. It is safe to call more than once.
func (f *Federation) Close() {
	for _, s := range f.Sites {
		if s.Process != nil {
			s.Process.Stop(5 * time.Second)
		}
	}
	if f.Aggregator != nil {
		f.Aggregator.Stop(5 * time.Second)
	}
}

// Wait polls the aggregator until the federation finishes, calling progress with
// every status it reads, then waits for every site agent to install the final model
// and exit. A site or the aggregator that exits with an error before then, the
// federation stopping, or ctx ending, is an error. Sites listed in down are
// expected not to be running (killed by a test) and are not waited for.
func (f *Federation) Wait(ctx context.Context, progress func(*fedclaimspb.StatusResponse), down ...string) (*fedclaimspb.StatusResponse, error) {
	c, conn, err := f.Admin()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var st *fedclaimspb.StatusResponse
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := c.Status(cctx, &fedclaimspb.StatusRequest{Envelope: f.Envelope()})
		cancel()
		if err == nil {
			st = s
			if progress != nil {
				progress(st)
			}
			switch st.GetState() {
			case fedclaimspb.StatusResponse_STATE_FINISHED:
				return st, f.waitSites(ctx, down)
			case fedclaimspb.StatusResponse_STATE_STOPPED:
				return st, errors.New("localfed: the federation was stopped before its last round")
			}
		}
		if f.Aggregator.exited() {
			return st, f.Aggregator.exitError()
		}
		for _, s := range f.Sites {
			if !slices.Contains(down, s.ID) && s.Process.exited() && s.Process.Err() != nil {
				return st, s.Process.exitError()
			}
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("localfed: waiting for the federation (state %v, round %d): %w", st.GetState(), st.GetRound(), ctx.Err())
		case <-tick.C:
		}
	}
}

func (f *Federation) waitSites(ctx context.Context, down []string) error {
	for _, s := range f.Sites {
		if slices.Contains(down, s.ID) {
			continue
		}
		select {
		case <-s.Process.Done():
			if s.Process.Err() != nil {
				return s.Process.exitError()
			}
		case <-ctx.Done():
			return fmt.Errorf("localfed: waiting for site %s to install the final model: %w (log %s)", s.ID, ctx.Err(), s.Process.Log)
		}
	}
	return nil
}

// Upload is one encrypted update the aggregator received, as its audit log
// records it.
type Upload struct {
	Round uint64
	Site  string
	Bytes uint64
}

// Uploads reads the encrypted updates received from the aggregator's audit log,
// after verifying the log's chain.
func (f *Federation) Uploads() ([]Upload, error) {
	file, err := os.Open(f.AggregatorAudit)
	if err != nil {
		return nil, fmt.Errorf("localfed: %w", err)
	}
	defer file.Close()
	if _, err := audit.Verify(file); err != nil {
		return nil, fmt.Errorf("localfed: %s: %w", f.AggregatorAudit, err)
	}
	if _, err := file.Seek(0, 0); err != nil {
		return nil, fmt.Errorf("localfed: %w", err)
	}
	var ups []Upload
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		e, err := audit.ParseLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("localfed: %s:%d: %w", f.AggregatorAudit, line, err)
		}
		if e.Type != audit.Upload || e.Round == 0 {
			continue
		}
		if kind := e.Fields["kind"]; kind != "" && kind != fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE.String() && kind != "encrypted_update" {
			continue
		}
		n, err := strconv.ParseUint(e.Fields["bytes"], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("localfed: %s:%d: upload entry without a byte count: %w", f.AggregatorAudit, line, err)
		}
		ups = append(ups, Upload{Round: e.Round, Site: e.Site, Bytes: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("localfed: %s: %w", f.AggregatorAudit, err)
	}
	return ups, nil
}

// Result is what a finished federation reports.
type Result struct {
	// Final is the aggregator's last status: its History holds every applied
	// round's contributors, mean training loss, duration and upload bytes.
	Final *fedclaimspb.StatusResponse
	// Uploads are the encrypted updates received, per round and site.
	Uploads []Upload
	// Wall is the time from starting the processes to the last site's exit.
	Wall time.Duration
}

// Run is Start, Wait and Close: it runs a prepared federation to its end and
// reports it. The processes are stopped whatever happens.
func (f *Federation) Run(ctx context.Context, progress func(*fedclaimspb.StatusResponse)) (*Result, error) {
	defer f.Close()
	start := time.Now()
	if err := f.Start(ctx); err != nil {
		return nil, err
	}
	st, err := f.Wait(ctx, progress)
	if err != nil {
		return nil, err
	}
	wall := time.Since(start)
	ups, err := f.Uploads()
	if err != nil {
		return nil, err
	}
	return &Result{Final: st, Uploads: ups, Wall: wall}, nil
}
