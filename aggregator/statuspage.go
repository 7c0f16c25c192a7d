package aggregator

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// The coordinator's status page: a read-only view of what Admin Status answers,
// served on the metrics listener (loopback by default) next to /metrics. It needs
// nothing from outside the aggregator — no script, font or stylesheet to fetch — so
// that it renders inside a hospital network that reaches nothing else.

//go:embed statuspage.html
var statusFS embed.FS

// pageTimeout bounds how long a page request waits for the loop, which may be
// combining a round; the next refresh tries again.
const pageTimeout = 10 * time.Second

// refreshSeconds is how often the page reloads itself.
const refreshSeconds = 5

// StatusView is what the status page and /status.json show: the Admin Status answer
// in plain types, with what a page adds (the threshold, the time it was made).
type StatusView struct {
	Federation string `json:"federation"`
	// State is the Admin Status state in lower case ("key_setup"), Phase the step
	// within it in words.
	State string `json:"state"`
	Phase string `json:"phase"`
	// Round is the current (or last) round id, Rounds the rounds to apply,
	// Completed those applied so far and Current the open round's place among
	// them (Completed while none is open). Ids and places differ once a round was
	// aborted or restarted: each spends an id.
	Round     uint64 `json:"round"`
	Rounds    int    `json:"rounds"`
	Completed int    `json:"rounds_completed"`
	Current   int    `json:"round_number"`
	// Deadline is the open round's collection or decryption deadline.
	Deadline time.Time `json:"deadline,omitzero"`
	// Progress is the open round's collection so far; nil while no round is open.
	Progress  *ProgressView `json:"progress,omitempty"`
	MinSites  int           `json:"min_sites"`
	Threshold int           `json:"threshold"`
	// Online and Enrolled count the sites that are.
	Online    int         `json:"sites_online"`
	Enrolled  int         `json:"sites_enrolled"`
	Sites     []SiteView  `json:"sites"`
	History   []RoundView `json:"history"`
	AuditSeq  uint64      `json:"audit_seq"`
	AuditHead string      `json:"audit_head"`
	Generated time.Time   `json:"generated"`
}

// ProgressView is an open round's collection so far.
type ProgressView struct {
	Contributions int    `json:"contributions"`
	Expected      int    `json:"expected"`
	Bytes         uint64 `json:"bytes"`
}

// SiteView is one site's row.
type SiteView struct {
	ID       string    `json:"id"`
	Enrolled bool      `json:"enrolled"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// LastContribution is the last applied round the site contributed to; 0 none.
	LastContribution uint64 `json:"last_contribution_round"`
	// Software is the site's own words at enrolment; the page escapes it.
	Software string `json:"software_version,omitempty"`
}

// RoundView is one applied round's row.
type RoundView struct {
	Round        uint64        `json:"round"`
	Contributors []string      `json:"contributors"`
	TrainLoss    float64       `json:"train_loss"`
	UploadBytes  uint64        `json:"upload_bytes"`
	Duration     time.Duration `json:"duration_ns"`
	Finished     time.Time     `json:"finished"`
}

// statusView assembles the page's data on the loop, from status(), the very answer
// Admin Status gives, so that the page and `fedclaims admin status` never disagree.
func (s *Server) statusView() StatusView {
	return newStatusView(s.status(), s.cfg.Threshold, s.clock.Now())
}

// newStatusView converts an Admin Status answer into the page's view.
func newStatusView(st *fedclaimspb.StatusResponse, threshold int, now time.Time) StatusView {
	v := StatusView{
		Federation: st.GetEnvelope().GetFederationId(), State: StateName(st.GetState()), Phase: st.GetPhase(),
		Round: st.GetRound(), Rounds: int(st.GetRounds()), Completed: len(st.GetHistory()),
		MinSites: int(st.GetMinSites()), Threshold: threshold,
		AuditSeq: st.GetAuditSeq(), AuditHead: st.GetAuditHead(), Generated: now.UTC(),
		Sites: []SiteView{}, History: []RoundView{},
	}
	if st.GetDeadline() != nil {
		v.Deadline = st.GetDeadline().AsTime()
	}
	v.Current = v.Completed
	if st.GetRoundExpected() > 0 {
		v.Progress = &ProgressView{Contributions: int(st.GetRoundContributions()), Expected: int(st.GetRoundExpected()), Bytes: st.GetRoundBytes()}
		v.Current = min(v.Completed+1, v.Rounds)
	}
	for _, ss := range st.GetSites() {
		sv := SiteView{ID: ss.GetSiteId(), Enrolled: ss.GetEnrolled(), Online: ss.GetOnline(),
			LastContribution: ss.GetLastContributionRound(), Software: ss.GetSoftwareVersion()}
		if ss.GetLastSeen() != nil {
			sv.LastSeen = ss.GetLastSeen().AsTime()
		}
		v.Sites = append(v.Sites, sv)
		if sv.Online {
			v.Online++
		}
		if sv.Enrolled {
			v.Enrolled++
		}
	}
	for _, h := range st.GetHistory() {
		// Sorted: the record keeps arrival order, which says nothing to a reader.
		v.History = append(v.History, RoundView{Round: h.GetRound(), Contributors: slices.Sorted(slices.Values(h.GetContributors())), TrainLoss: h.GetTrainLoss(),
			UploadBytes: h.GetUploadBytes(), Duration: h.GetDuration().AsDuration(), Finished: h.GetFinished().AsTime()})
	}
	return v
}

// httpHandler serves the metrics listener: /metrics, the status page at / and
// /status, its data at /status.json, and /healthz.
func (s *Server) httpHandler() http.Handler {
	tmpl := template.Must(template.New("statuspage.html").Funcs(pageFuncs()).ParseFS(statusFS, "statuspage.html"))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET /healthz", s.serveHealth)
	page := func(w http.ResponseWriter, r *http.Request) { s.servePage(w, r, tmpl) }
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /status", page)
	mux.HandleFunc("GET /status.json", s.serveStatusJSON)
	return mux
}

// serveHealth answers 200 "ok" while the loop runs and has not halted. It does not
// wait for the loop: a loop busy combining a large model's round for a while is
// working, not unhealthy, and a probe must not time out on it.
func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !s.serving.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not serving\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// view asks the loop for the page's data, waiting at most pageTimeout.
func (s *Server) view(ctx context.Context) (StatusView, error) {
	ctx, cancel := context.WithTimeout(ctx, pageTimeout)
	defer cancel()
	var v StatusView
	if err := s.call(ctx, func() error { v = s.statusView(); return nil }); err != nil {
		return StatusView{}, fmt.Errorf("the aggregator did not answer within %v (it may be combining a round): %w", pageTimeout, err)
	}
	return v, nil
}

// secureHeaders keep the page inert: no script may run, nothing may be fetched, and
// no other site may frame it.
func secureHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request, tmpl *template.Template) {
	secureHeaders(w)
	v, err := s.view(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	// Rendered into a buffer first: a template error then becomes a 500, not half
	// a page with a 200.
	var b bytes.Buffer
	if err := tmpl.Execute(&b, page{StatusView: v, Refresh: refreshSeconds, Plot: lossPlotOf(v.History)}); err != nil {
		s.log.Error("status page", "err", err)
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func (s *Server) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	secureHeaders(w)
	v, err := s.view(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// page is the template's data: the view and how it is drawn.
type page struct {
	StatusView
	Refresh int
	Plot    *lossPlot
}

// lossPlot is the loss-per-round chart, laid out here so that the template only
// places numbers: an inline SVG the server draws, with no script behind it.
type lossPlot struct {
	Width, Height          int
	Left, Right, Top, Base float64 // the plot area's edges
	Points                 string  // the polyline's "x,y x,y ..."
	Dots                   []plotDot
	YTicks, XTicks         []plotTick
}

type plotDot struct {
	X, Y  float64
	Label string // the round and its loss, the dot's tooltip
}

type plotTick struct {
	At    float64
	Label string
}

// lossPlotOf lays out the mean training loss of each applied round; nil before the
// first.
func lossPlotOf(h []RoundView) *lossPlot {
	if len(h) == 0 {
		return nil
	}
	p := &lossPlot{Width: 1160, Height: 260, Left: 64, Right: 1144, Top: 16, Base: 220}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range h {
		lo, hi = min(lo, r.TrainLoss), max(hi, r.TrainLoss)
	}
	// A flat or one-point series still needs a span to place its points in.
	if pad := (hi - lo) * 0.1; pad > 0 {
		lo, hi = lo-pad, hi+pad
	} else {
		lo, hi = lo-0.5, hi+0.5
	}
	first, last := float64(h[0].Round), float64(h[len(h)-1].Round)
	x := func(round uint64) float64 {
		if last == first {
			return (p.Left + p.Right) / 2
		}
		return p.Left + (float64(round)-first)/(last-first)*(p.Right-p.Left)
	}
	y := func(loss float64) float64 { return p.Base - (loss-lo)/(hi-lo)*(p.Base-p.Top) }
	pts := make([]string, 0, len(h))
	for _, r := range h {
		px, py := x(r.Round), y(r.TrainLoss)
		pts = append(pts, strconv.FormatFloat(px, 'f', 1, 64)+","+strconv.FormatFloat(py, 'f', 1, 64))
		p.Dots = append(p.Dots, plotDot{X: px, Y: py, Label: fmt.Sprintf("round %d: loss %.4g", r.Round, r.TrainLoss)})
	}
	p.Points = strings.Join(pts, " ")
	for i := range 5 {
		loss := lo + (hi-lo)*float64(i)/4
		p.YTicks = append(p.YTicks, plotTick{At: y(loss), Label: strconv.FormatFloat(loss, 'g', 4, 64)})
	}
	// Every round when they fit, else about eight evenly spaced ones.
	step := max(1, (len(h)+7)/8)
	for i := 0; i < len(h); i += step {
		p.XTicks = append(p.XTicks, plotTick{At: x(h[i].Round), Label: strconv.FormatUint(h[i].Round, 10)})
	}
	if (len(h)-1)%step != 0 {
		p.XTicks = append(p.XTicks, plotTick{At: x(h[len(h)-1].Round), Label: strconv.FormatUint(h[len(h)-1].Round, 10)})
	}
	return p
}

// pageFuncs format the view's values for people.
func pageFuncs() template.FuncMap {
	return template.FuncMap{
		"bytes": formatBytes,
		"dur": func(d time.Duration) string {
			if d >= time.Minute {
				return d.Round(time.Second).String()
			}
			return d.Round(10 * time.Millisecond).String()
		},
		"clock": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		// ago says how long before now t was, or how long after now it is ("in 42s").
		"ago": func(t, now time.Time) string {
			d := now.Sub(t).Round(time.Second)
			switch {
			case d < 0:
				return "in " + (-d).String()
			case d < time.Second:
				return "just now"
			}
			return d.String() + " ago"
		},
		"loss": func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) },
		"join": strings.Join,
		"pct": func(n, d int) int {
			if d <= 0 {
				return 0
			}
			return min(100, n*100/d)
		},
		"short": func(h string) string {
			if len(h) > 16 {
				return h[:16] + "…"
			}
			return h
		},
		"f1": func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	}
}

// formatBytes writes n in binary units, as the demo's reports do.
func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
