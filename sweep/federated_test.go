package sweep

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestFederatedMiniature runs the miniature sweep through a real local federation:
// the aggregator and two site agents as processes of a freshly built fedclaims
// binary, mutual TLS on loopback, threshold-encrypted updates. It builds the binary
// and takes about a minute on two cores, so it runs only with
// FEDCLAIMS_SWEEP_FEDERATED=1.
func TestFederatedMiniature(t *testing.T) {
	if os.Getenv("FEDCLAIMS_SWEEP_FEDERATED") == "" {
		t.Skip("set FEDCLAIMS_SWEEP_FEDERATED=1 to build fedclaims and sweep through a local federation")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	bin := filepath.Join(t.TempDir(), "fedclaims")
	build := exec.Command("go", "build", "-tags", os.Getenv("TAGS"), "-o", bin, "./cmd/fedclaims")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c, err := parse("miniature.yaml", []byte(strings.Replace(miniature, "mode: central", "mode: federated\nfederated: {local_steps: 3}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), c, t.TempDir(), Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Presets {
		if len(p.BytesSent) != 2 {
			t.Errorf("preset %s: bytes sent by %d sites, want 2: %v", p.Name, len(p.BytesSent), p.BytesSent)
		}
		for site, n := range p.BytesSent {
			if n <= 0 {
				t.Errorf("preset %s: site %s sent %d bytes", p.Name, site, n)
			}
		}
		if p.CPUSeconds <= 0 || !(p.FinalLoss() > 0) || !p.TokensEstimated {
			t.Errorf("preset %s: cpu %g s, final loss %g, tokens estimated %v", p.Name, p.CPUSeconds, p.FinalLoss(), p.TokensEstimated)
		}
	}
	if got := res.Presets[0].Steps; got != 6 {
		t.Errorf("tiny: %d local steps, want 2 rounds of 3", got)
	}
	if len(res.Recommendations) == 0 {
		t.Error("no recommendations")
	}
}
