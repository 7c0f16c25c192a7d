package e2e

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fedclaims/fedclaims/site"
)

// The compose file as the deployment checks read it: healthchecks, dependency
// conditions, published ports and the features older compose implementations lack.
type composeDeploy struct {
	Name     string `yaml:"name"`
	Services map[string]struct {
		Command     []string `yaml:"command"`
		Ports       []string `yaml:"ports"`
		Healthcheck *struct {
			Test        []string `yaml:"test"`
			Interval    string   `yaml:"interval"`
			Timeout     string   `yaml:"timeout"`
			Retries     int      `yaml:"retries"`
			StartPeriod string   `yaml:"start_period"`
		} `yaml:"healthcheck"`
		DependsOn map[string]dep `yaml:"depends_on"`
		Volumes   []mount        `yaml:"volumes"`
	} `yaml:"services"`
}

// yamlKey reads one top-level string key of a mounted configuration file.
func yamlKey(t *testing.T, file, key string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	s, _ := m[key].(string)
	return s
}

// flagValue is the value after flag in args, "" when absent.
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestComposeDeployment: the aggregator and every site have a `fedclaims health`
// healthcheck that reaches what it probes, sites wait for a healthy aggregator, the
// plain-HTTP metrics port is published on the host's loopback only, and the file
// uses nothing that Compose v1.29 (Debian 12's docker-compose) rejects.
func TestComposeDeployment(t *testing.T) {
	_, root := loadCompose(t)
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeDeploy
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if c.Name != "" {
		t.Errorf("top-level name %q: Compose v1 rejects it; .env sets COMPOSE_PROJECT_NAME", c.Name)
	}
	for name, s := range c.Services {
		for _, m := range s.Volumes {
			if m.Subpath != "" {
				t.Errorf("%s mounts %s with volume.subpath, which needs Compose 2.23+ and Engine 26+", name, m.Target)
			}
		}
	}

	agg := c.Services["aggregator"]
	aggFile := bindFile(t, root, composeService{Volumes: agg.Volumes}, agg.Command[2])
	metrics, listen := yamlKey(t, aggFile, "metrics"), yamlKey(t, aggFile, "listen")
	mhost, mport, err := net.SplitHostPort(metrics)
	if err != nil {
		t.Fatalf("%s: metrics %q: %v", aggFile, metrics, err)
	}
	_, lport, _ := net.SplitHostPort(listen)
	hc := agg.Healthcheck
	if hc == nil || len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[1] != "fedclaims" || hc.Test[2] != "health" {
		t.Fatalf("aggregator healthcheck %+v: want [CMD, fedclaims, health, --addr, 127.0.0.1:PORT]", hc)
	}
	if got, want := flagValue(hc.Test, "--addr"), "127.0.0.1:"+mport; got != want {
		t.Errorf("aggregator healthcheck probes %q, want %q (metrics: %s in %s)", got, want, metrics, aggFile)
	}
	if mhost != "0.0.0.0" && mhost != "127.0.0.1" {
		t.Errorf("metrics %s: the healthcheck on the container's 127.0.0.1 cannot reach it", metrics)
	}
	for _, p := range agg.Ports {
		parts := strings.Split(p, ":")
		container := parts[len(parts)-1]
		switch {
		case container == lport:
			// The federation's mTLS port: remote sites dial it.
		case container == mport:
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("aggregator publishes the plain-HTTP metrics port as %q: want 127.0.0.1:%s:%s, the host's loopback only", p, mport, mport)
			}
			if mhost == "127.0.0.1" {
				t.Errorf("metrics %s is bound to the container's loopback: the publish %q never reaches it", metrics, p)
			}
		default:
			t.Errorf("aggregator publishes %q, neither the federation's port %s nor metrics %s", p, lport, mport)
		}
	}

	for _, id := range []string{"h01", "h02", "h03"} {
		s := c.Services["site-"+id]
		if d := s.DependsOn["aggregator"]; d.Condition != "service_healthy" {
			t.Errorf("site-%s: depends_on aggregator condition %q, want service_healthy", id, d.Condition)
		}
		stateDir := yamlKey(t, bindFile(t, root, composeService{Volumes: s.Volumes}, s.Command[2]), "state_dir")
		hc := s.Healthcheck
		if hc == nil || len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[1] != "fedclaims" || hc.Test[2] != "health" {
			t.Fatalf("site-%s healthcheck %+v: want [CMD, fedclaims, health, --site-state, DIR, ...]", id, hc)
		}
		if got := flagValue(hc.Test, "--site-state"); got != stateDir {
			t.Errorf("site-%s healthcheck reads %q, the site's state_dir is %q", id, got, stateDir)
		}
		maxAge, err := time.ParseDuration(flagValue(hc.Test, "--max-age"))
		if err != nil || maxAge < 2*site.HeartbeatEvery {
			t.Errorf("site-%s healthcheck --max-age %q: want at least two heartbeats (%s)", id, flagValue(hc.Test, "--max-age"), 2*site.HeartbeatEvery)
		}
		if interval, err := time.ParseDuration(hc.Interval); err != nil || interval < 10*time.Second {
			t.Errorf("site-%s healthcheck interval %q", id, hc.Interval)
		}
	}
}
