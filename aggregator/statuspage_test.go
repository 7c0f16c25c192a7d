package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// hostileVersion is what site a says it runs: HTML that must reach the page as text.
const hostileVersion = `<script>alert("x&y")</script><b onmouseover='z'>`

// get fetches url and returns its status, body and Content-Type.
func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

// TestStatusPage runs setup and two rounds over mutual TLS with the metrics listener
// on, and reads the coordinator's page in the middle of round 2 (two of three
// updates in, site c silent) and after the federation finished.
func TestStatusPage(t *testing.T) {
	metricsAddr := freeAddr(t)
	f := newTestFed(t, func(c *Config) { c.Metrics = metricsAddr })
	f.start()
	base := "http://" + metricsAddr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Losses that differ by site and version, so that the rows show the means of
	// exactly the contributors: round 1 (a, b, c) 3.0, round 2 (a, b) 3.5.
	lossOf := map[string]float64{"a": 2, "b": 3, "c": 4}
	sites := f.sites(ctx, map[string]float64{"a": 100, "b": 100, "c": 100}, func(site string, v uint64, g []float32) []float32 {
		if site == "c" && v == 1 {
			return nil
		}
		return randomDelta(site, v, len(g))
	}, func(s *testSite) {
		id := s.id
		s.loss = func(v uint64) float64 { return lossOf[id] + float64(v) }
		if id == "a" {
			s.software = hostileVersion
		}
	})
	for !(sites[0].hasUploaded(1) && sites[1].hasUploaded(1)) {
		if ctx.Err() != nil {
			t.Fatal("a and b never uploaded in round 2")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Mid-round: the page and the metrics show the round's progress so far.
	code, body, ctype := get(t, base+"/")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/html") {
		t.Fatalf("GET / mid-round: %d %s\n%s", code, ctype, body)
	}
	for _, want := range []string{`2 / 3 contributions`, `id="round">2 of 2<`, `id="round-1"`, "deadline "} {
		if !strings.Contains(body, want) {
			t.Errorf("mid-round page lacks %q", want)
		}
	}
	var mid StatusView
	_, js, _ := get(t, base+"/status.json")
	if err := json.Unmarshal([]byte(js), &mid); err != nil {
		t.Fatalf("status.json: %v\n%s", err, js)
	}
	if mid.State != "training" || mid.Round != 2 || mid.Progress == nil || mid.Progress.Contributions != 2 || mid.Progress.Expected != 3 || mid.Progress.Bytes == 0 {
		t.Fatalf("status.json mid-round: %+v", mid)
	}
	st, err := f.admin().Status(ctx, &fedclaimspb.StatusRequest{Envelope: &fedclaimspb.Envelope{FederationId: f.cfg.Federation}})
	if err != nil {
		t.Fatal(err)
	}
	if st.RoundContributions != 2 || st.RoundExpected != 3 || st.RoundBytes != mid.Progress.Bytes || st.MinSites != 2 {
		t.Fatalf("admin status mid-round: contributions %d/%d, %d bytes, min sites %d", st.RoundContributions, st.RoundExpected, st.RoundBytes, st.MinSites)
	}
	metrics := scrape(t, base)
	for name, want := range map[string]float64{
		"fedclaims_round": 2, "fedclaims_round_contributions": 2, "fedclaims_round_expected_contributions": 3,
		"fedclaims_round_received_bytes": float64(mid.Progress.Bytes), "fedclaims_rounds_completed_total": 1,
		"fedclaims_setup_phase": float64(SetupDone), "fedclaims_sites_enrolled": 3, "fedclaims_sites_online": 3,
	} {
		if got := metrics[name]; got != want {
			t.Errorf("mid-round %s = %v, want %v", name, got, want)
		}
	}

	f.clock.fire()
	waitFinal(t, ctx, sites)
	code, body, _ = get(t, base+"/status")
	if code != http.StatusOK {
		t.Fatalf("GET /status: %d\n%s", code, body)
	}
	rowOf := func(id string) string {
		t.Helper()
		m := regexp.MustCompile(`(?s)<tr class="[a-z]+" id="` + regexp.QuoteMeta(id) + `">(.*?)</tr>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("page has no row %s:\n%s", id, body)
		}
		return m[1]
	}
	for _, tc := range []struct {
		name string
		in   string // the page, or one of its rows
		want []string
	}{
		{"header", body, []string{`<span id="federation">fed-test</span>`, `id="state">finished<`, `<meta http-equiv="refresh" content="5">`}},
		{"plot", body, []string{`<svg id="loss-plot"`, `<polyline`, `round 1: loss 3`, `round 2: loss 3.5`}},
		{"site a", rowOf("site-a"), []string{"<strong>a</strong>", "online", "round 2",
			`&lt;script&gt;alert(&#34;x&amp;y&#34;)&lt;/script&gt;&lt;b onmouseover=&#39;z&#39;&gt;`}},
		{"site b", rowOf("site-b"), []string{"<strong>b</strong>", "online", "round 2", "<code>test</code>"}},
		{"site c", rowOf("site-c"), []string{"<strong>c</strong>", "online", "round 1"}},
		{"round 1", rowOf("round-1"), []string{"<td>a, b, c</td>", "3.0000", "KiB"}},
		// c sent nothing in round 2.
		{"round 2", rowOf("round-2"), []string{"<td>a, b</td>", "3.5000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.in, w) {
					t.Errorf("lacks %q in:\n%s", w, tc.in)
				}
			}
		})
	}
	// Nothing a site said is markup; the page runs no script of anyone's.
	if strings.Contains(body, "<script") || strings.Contains(body, "<b onmouseover") {
		t.Errorf("site-provided text reached the page unescaped:\n%s", body)
	}
	// The audit head shown is an entry of the aggregator's log.
	m := regexp.MustCompile(`id="audit-seq">(\d+)</span>.*?id="audit-head" title="([0-9a-f]{64})"`).FindStringSubmatch(strings.ReplaceAll(body, "\n", " "))
	if m == nil {
		t.Fatalf("page shows no audit head:\n%s", body)
	}
	log, err := os.ReadFile(filepath.Join(f.cfg.StateDir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"seq":` + m[1] + `,.*"hash":"` + m[2] + `"`).Match(log) {
		t.Errorf("audit head seq %s %s is no entry of the log", m[1], m[2])
	}
}

// scrape reads /metrics, which must parse as Prometheus text exposition, into the
// value of each unlabelled metric.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	code, body, ctype := get(t, base+"/metrics")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") {
		t.Fatalf("GET /metrics: %d %s", code, ctype)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			if len(m.GetLabel()) > 0 {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestMetricsListener checks /healthz, the exposition's names and the state set,
// while the aggregator serves and after it stopped.
func TestMetricsListener(t *testing.T) {
	metricsAddr := freeAddr(t)
	f := newTestFed(t, func(c *Config) { c.Metrics = metricsAddr })
	f.start()
	base := "http://" + metricsAddr
	// The loop may not have started when Run returns to the test: wait for it.
	for !f.srv.serving.Load() {
		time.Sleep(time.Millisecond)
	}
	for _, tc := range []struct {
		path, body, ctype string
	}{
		{"/healthz", "ok\n", "text/plain"},
		{"/", `id="state">enrolling<`, "text/html"},
		{"/status.json", `"state": "enrolling"`, "application/json"},
		{"/metrics", "# TYPE fedclaims_rounds_completed_total counter", "text/plain"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, body, ctype := get(t, base+tc.path)
			if code != http.StatusOK || !strings.HasPrefix(ctype, tc.ctype) || !strings.Contains(body, tc.body) {
				t.Fatalf("GET %s: %d %s, want 200 %s with %q:\n%s", tc.path, code, ctype, tc.ctype, tc.body, body)
			}
		})
	}
	if code, _, _ := get(t, base+"/nothing-here"); code != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", code)
	}
	metrics := scrape(t, base)
	for _, name := range []string{"fedclaims_rounds_completed_total", "fedclaims_rounds_aborted_total", "fedclaims_round_duration_seconds",
		"fedclaims_contributions_total", "fedclaims_received_bytes_total", "fedclaims_refusals_total", "fedclaims_sites_online",
		"fedclaims_train_loss", "fedclaims_round", "fedclaims_rounds_planned", "fedclaims_sites", "go_goroutines"} {
		if _, ok := metrics[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if metrics["fedclaims_sites"] != 3 || metrics["fedclaims_rounds_planned"] != 2 {
		t.Errorf("fedclaims_sites %v, fedclaims_rounds_planned %v", metrics["fedclaims_sites"], metrics["fedclaims_rounds_planned"])
	}
	_, body, _ := get(t, base+"/metrics")
	for _, want := range []string{`fedclaims_state{state="enrolling"} 1`, `fedclaims_state{state="training"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Stopped, the listener is gone; the handler itself says so too.
	f.stop()
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("/healthz still answers after the aggregator stopped")
	}
	h := f.srv.httpHandler()
	for _, tc := range []struct {
		path string
		code int
	}{{"/healthz", http.StatusServiceUnavailable}, {"/", http.StatusServiceUnavailable}, {"/status.json", http.StatusServiceUnavailable}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("stopped: GET %s: %d, want %d: %s", tc.path, rec.Code, tc.code, rec.Body)
		}
	}
}

// TestLossPlot lays out series of one point, a flat one and many rounds.
func TestLossPlot(t *testing.T) {
	rounds := func(losses ...float64) []RoundView {
		var h []RoundView
		for i, l := range losses {
			h = append(h, RoundView{Round: uint64(i + 1), TrainLoss: l})
		}
		return h
	}
	many := make([]float64, 30)
	for i := range many {
		many[i] = 10 / float64(i+1)
	}
	for _, tc := range []struct {
		name   string
		h      []RoundView
		points int
		xticks int
	}{
		{"none", nil, 0, 0},
		{"one", rounds(2.5), 1, 1},
		{"flat", rounds(1, 1, 1), 3, 3},
		{"many", rounds(many...), 30, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := lossPlotOf(tc.h)
			if tc.points == 0 {
				if p != nil {
					t.Fatalf("plot of no rounds: %+v", p)
				}
				return
			}
			pts := strings.Fields(p.Points)
			if len(pts) != tc.points || len(p.XTicks) != tc.xticks {
				t.Fatalf("%d points, %d x ticks; want %d, %d", len(pts), len(p.XTicks), tc.points, tc.xticks)
			}
			for _, d := range p.Dots {
				if d.X < p.Left || d.X > p.Right || d.Y < p.Top || d.Y > p.Base {
					t.Errorf("dot %s at (%g, %g) outside the plot area", d.Label, d.X, d.Y)
				}
			}
			if last := p.XTicks[len(p.XTicks)-1].Label; last != fmt.Sprint(len(tc.h)) {
				t.Errorf("last x tick %s, want the last round %d", last, len(tc.h))
			}
		})
	}
}
