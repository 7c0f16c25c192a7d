package localfed

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/secureagg"
)

// One round of the scale benchmark at three sites, against a freshly built
// aggregator binary: every site contributes, and the figures are there.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the fedclaims binary")
	}
	bin := filepath.Join(t.TempDir(), "fedclaims")
	args := []string{"build", "-o", bin}
	if benchBuildTags != "" {
		args = append(args, "-tags", benchBuildTags)
	}
	if out, err := exec.Command("go", append(args, "github.com/fedclaims/fedclaims/cmd/fedclaims")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Bench(ctx, BenchOptions{Dir: filepath.Join(t.TempDir(), "fed"), Binary: bin, Sites: 3, Rounds: 1, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	switch {
	case res.Name != "federation" || res.Sites != 3 || res.Threshold != 2 || res.MinSites != 3:
		t.Errorf("name %q, sites %d, threshold %d, min_sites %d: want federation, 3, 2, 3", res.Name, res.Sites, res.Threshold, res.MinSites)
	case res.Rounds != 1 || res.Contributors != 3:
		t.Errorf("rounds %d, fewest contributors %d: want 1 round from all 3 sites", res.Rounds, res.Contributors)
	case res.Params <= 0 || res.Preset != string(secureagg.PresetN12Q60):
		t.Errorf("params %d, preset %q", res.Params, res.Preset)
	case !(res.AggregatorPeakRSSMB > 1) || res.AggregatorSetupPeakRSSMB > res.AggregatorPeakRSSMB:
		t.Errorf("aggregator peak RSS %v MiB, at setup %v MiB", res.AggregatorPeakRSSMB, res.AggregatorSetupPeakRSSMB)
	case !(res.AggregatorSetupHeapMB > 0) || !(res.AggregatorRoundsHeapMB > 0):
		t.Errorf("heap peaks %v, %v MiB: want gctrace's figures", res.AggregatorSetupHeapMB, res.AggregatorRoundsHeapMB)
	case !(res.RoundSeconds > 0) || !(res.UploadBytesPerRound > 0):
		t.Errorf("round %v s, %v bytes", res.RoundSeconds, res.UploadBytesPerRound)
	}
}

func TestBenchRefusesSites(t *testing.T) {
	for _, n := range []int{0, 2, secureagg.MaxSites + 1} {
		_, err := Bench(context.Background(), BenchOptions{Dir: t.TempDir(), Binary: "x", Sites: n})
		if err == nil || !strings.Contains(err.Error(), "sites") {
			t.Errorf("%d sites: %v, want a refusal", n, err)
		}
	}
}

func TestPeakRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	n, err := PeakRSS(os.Getpid())
	if err != nil || n < 1<<20 {
		t.Fatalf("PeakRSS(self) = %d, %v", n, err)
	}
	if _, err := PeakRSS(0); err == nil {
		t.Error("PeakRSS(0): no error")
	}
}

func TestHeapPeaks(t *testing.T) {
	log := filepath.Join(t.TempDir(), "aggregator.log")
	text := `gc 1 @0.01s 1%: 0.01+1+0.01 ms clock, 0.02+0/1/0+0.02 ms cpu, 3->4->2 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P
{"msg":"setup step"}
gc 2 @0.5s 1%: 0.01+1+0.01 ms clock, 0.02+0/1/0+0.02 ms cpu, 71->72->70 MB, 140 MB goal, 0 MB stacks, 0 MB globals, 2 P
{"level":"INFO","msg":"round started","round":1}
gc 3 @1s 1%: 0.01+1+0.01 ms clock, 0.02+0/1/0+0.02 ms cpu, 20->25->9 MB, 40 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 4 @2s 1%: 0.01+1+0.01 ms clock, 0.02+0/1/0+0.02 ms cpu, 12->11->9 MB, 18 MB goal, 0 MB stacks, 0 MB globals, 2 P
`
	if err := os.WriteFile(log, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	setup, rounds, err := heapPeaks(log)
	if err != nil || setup != 72 || rounds != 25 {
		t.Fatalf("heapPeaks = %v, %v, %v; want 72, 25", setup, rounds, err)
	}
}
