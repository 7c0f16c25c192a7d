package aggregator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/internal/config"
)

const goodYAML = `
federation: fed
certs: /tmp/certs
sites: [a, b, c]
min_sites: 3
threshold: 2
rounds: 3
round_deadline: 90s
model:
  preset: 2m
  hidden: 16
local:
  steps: 5
server:
  optimizer: fedadam
  learning_rate: 0.01
`

// loadYAML loads doc as `fedclaims aggregator --config` does, with env as the
// environment.
func loadYAML(t *testing.T, doc string, env map[string]string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aggregator.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.Load(path, &c, config.Options{LookupEnv: lookup}); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

func TestLoadConfig(t *testing.T) {
	c, err := loadYAML(t, goodYAML, map[string]string{"FEDCLAIMS_LOCAL_STEPS": "7", "FEDCLAIMS_ROUNDS": "4"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Federation != "fed" || c.RoundDeadline != 90*time.Second || c.DecryptDeadline != 5*time.Minute ||
		c.Model.Hidden != 16 || c.Model.Preset != "2m" || c.Server.Optimizer != "fedadam" || c.Server.Beta1 != 0.9 {
		t.Fatalf("config %+v", c)
	}
	if c.Local.Steps != 7 || c.Rounds != 4 || c.Local.BatchSize != 16 {
		t.Fatalf("environment did not override: local %+v rounds %d", c.Local, c.Rounds)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, edit, key string
	}{
		{"unknown top-level key", "federaton: x\n", "federaton"},
		{"unknown nested key", "model:\n  preset: 2m\n  hiden: 3\n", "hiden"},
		{"bad threshold", "threshold: 5\n", "threshold"},
		{"bad min_sites", "min_sites: 1\n", "min_sites"},
		{"bad duration", "round_deadline: soon\n", "round_deadline"},
		{"bad optimizer", "server:\n  optimizer: sgd\n", "server"},
		{"bad preset", "secureagg:\n  preset: N99\n", "secureagg.preset"},
		{"bad site id", "sites: [A, b]\n", "sites"},
		{"no steps", "local:\n  steps: 0\n", "local.steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := goodYAML
			// Later keys replace earlier ones; nested maps replace whole.
			for _, line := range strings.Split(tc.edit, "\n") {
				if k, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
					doc = dropKey(doc, k)
				}
			}
			_, err := loadYAML(t, doc+tc.edit, nil)
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("err = %v, want one naming %s", err, tc.key)
			}
		})
	}
}

// dropKey removes a top-level key and its indented block from a YAML document.
func dropKey(doc, key string) string {
	var out []string
	skipping := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, key+":") {
			skipping = true
			continue
		}
		if skipping && strings.HasPrefix(line, " ") {
			continue
		}
		skipping = false
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
