package localfed

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/aggregator"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/internal/config"
)

// Prepare writes a federation whose every configuration the real loaders accept,
// with each site pointed at its own data and the aggregator at the consortium.
func TestPrepare(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fed")
	f, err := Prepare(context.Background(), Options{
		Dir: dir, Binary: "/nonexistent/fedclaims", Hospitals: 3, Patients: 60, Seed: 7, Rounds: 4, LocalSteps: 3,
		Aggregator: map[string]any{"model.hidden": 32, "round_deadline": "30s"},
		Site:       map[string]any{"threads": 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	ac := loadAggregatorConfig(t, f.AggregatorConfig)
	want := []string{"h01", "h02", "h03"}
	switch {
	case !slices.Equal(ac.Sites, want):
		t.Errorf("sites %v, want %v", ac.Sites, want)
	case ac.Listen != f.Addr || !strings.HasPrefix(f.Addr, "127.0.0.1:"):
		t.Errorf("listen %q, address %q: want the same loopback address", ac.Listen, f.Addr)
	case ac.Rounds != 4 || ac.Local.Steps != 3 || ac.Model.Seed != 7:
		t.Errorf("rounds %d, local steps %d, model seed %d: want 4, 3, 7", ac.Rounds, ac.Local.Steps, ac.Model.Seed)
	case ac.Threshold != 2 || ac.MinSites != 3:
		t.Errorf("threshold %d, min_sites %d: want half the sites rounded up, 2, and threshold + 1", ac.Threshold, ac.MinSites)
	case ac.Model.Hidden != 32 || ac.RoundDeadline != 30*time.Second:
		t.Errorf("overrides lost: hidden %d, round_deadline %v", ac.Model.Hidden, ac.RoundDeadline)
	case !ac.AutoStart:
		t.Error("auto_start is off")
	}
	if _, err := certs.ServerTLS(certs.AggregatorFiles(ac.Certs)); err != nil {
		t.Errorf("aggregator certificate: %v", err)
	}

	archetypes := map[string]bool{}
	for _, s := range f.Sites {
		sc, err := LoadSiteConfig(s.Config)
		if err != nil {
			t.Fatalf("%s: %v", s.Config, err)
		}
		if sc.SiteID != s.ID || sc.Aggregator.Address != f.Addr || sc.Federation != ac.Federation || sc.Threads != 2 {
			t.Errorf("site %s config: %+v", s.ID, sc)
		}
		if !slices.Equal(sc.Data, []string{s.Data}) || sc.StateDir != s.StateDir || sc.AuditLogPath() != s.AuditLog {
			t.Errorf("site %s: data %v state %s audit %s", s.ID, sc.Data, sc.StateDir, sc.AuditLog)
		}
		if _, err := certs.ClientTLS(certs.SiteFiles(sc.CertsDir, s.ID), sc.Aggregator.ServerName); err != nil {
			t.Errorf("site %s certificate: %v", s.ID, err)
		}
		src, err := claims.Open(s.Data)
		if err != nil {
			t.Fatalf("site %s data: %v", s.ID, err)
		}
		src.Close()
		archetypes[s.Archetype] = true
	}
	if len(archetypes) != 3 {
		t.Errorf("archetypes %v: want three kinds of hospital", archetypes)
	}

	if _, err := Prepare(context.Background(), Options{Dir: dir, Binary: "x", Hospitals: 1, Patients: 10}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Prepare into a used directory: %v, want a refusal", err)
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{Hospitals: 1, Patients: 1},
		{Dir: t.TempDir(), Patients: 1},
		{Dir: t.TempDir(), Hospitals: 1},
	} {
		if _, err := Prepare(context.Background(), o); err == nil {
			t.Errorf("Prepare(%+v) succeeded", o)
		}
	}
}

func TestWriteYAMLNests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := writeYAML(path, "test", map[string]any{"a.b.c": 1, "a.b.d": "x", "a.e": true, "f": []string{"g"}}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		A struct {
			B struct {
				C int    `yaml:"c"`
				D string `yaml:"d"`
			} `yaml:"b"`
			E bool `yaml:"e"`
		} `yaml:"a"`
		F []string `yaml:"f"`
	}
	if err := config.Load(path, &got, config.Options{}); err != nil {
		t.Fatal(err)
	}
	if got.A.B.C != 1 || got.A.B.D != "x" || !got.A.E || !slices.Equal(got.F, []string{"g"}) {
		t.Errorf("read back %+v", got)
	}
	if m, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".c.yaml.tmp*")); err != nil || len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// Kill ends the whole process group: a child's own children go too.
func TestProcessKillReachesGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	p := &Process{Name: "sh", Log: filepath.Join(dir, "sh.log"), bin: "/bin/sh",
		args: []string{"-c", "sleep 60 & echo $! > " + pidFile + "; wait"}}
	if err := p.start(); err != nil {
		t.Skip(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var gpid string
	for gpid == "" {
		b, _ := os.ReadFile(pidFile)
		gpid = strings.TrimSpace(string(b))
		if time.Now().After(deadline) {
			t.Fatal("the shell did not start its child")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Kill()
	select {
	case <-p.Done():
	default:
		t.Fatal("Kill returned before the process was reaped")
	}
	if p.Err() == nil {
		t.Error("a killed process reported success")
	}
	// The grandchild is gone once it is no longer in /proc (or is a zombie of init).
	deadline = time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + gpid + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %s outlived the kill", gpid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.Tail(1024), "localfed: starting /bin/sh") {
		t.Errorf("log lacks the start line: %q", p.Tail(1024))
	}
}

// SiteAggregator points each site at the address it returns (a proxy), asked with
// the aggregator's own address.
func TestPrepareSiteAggregator(t *testing.T) {
	var asked []string
	f, err := Prepare(context.Background(), Options{
		Dir: filepath.Join(t.TempDir(), "fed"), Binary: "/nonexistent/fedclaims", Hospitals: 2, Patients: 60, Seed: 7,
		SiteAggregator: func(site, addr string) (string, error) {
			asked = append(asked, site+"->"+addr)
			return "127.0.0.1:1" + site[1:], nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"h01->" + f.Addr, "h02->" + f.Addr}; !slices.Equal(asked, want) {
		t.Errorf("asked %v, want %v", asked, want)
	}
	for _, s := range f.Sites {
		b, err := os.ReadFile(s.Config)
		if err != nil {
			t.Fatal(err)
		}
		if want := "address: 127.0.0.1:1" + s.ID[1:]; !strings.Contains(string(b), want) {
			t.Errorf("site %s config lacks %q:\n%s", s.ID, want, b)
		}
	}
}

// loadAggregatorConfig loads path the way fedclaims aggregator does.
func loadAggregatorConfig(t *testing.T, path string) aggregator.Config {
	t.Helper()
	ac, err := LoadAggregatorConfig(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ac
}
