package site

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/internal/config"
)

const goodYAML = `site_id: a
federation_id: fed
aggregator:
  address: localhost:7443
certs_dir: /etc/fedclaims/certs
data: [/data/meds]
state_dir: /var/lib/fedclaims
train:
  batch_size: 8
backoff:
  min: 250ms
`

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadFile loads path as `fedclaims site --config path` does (the environment
// included) and validates it.
func loadFile(path string) (Config, error) {
	c := DefaultConfig()
	if err := config.Load(path, &c, config.Options{}); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

func TestLoadConfig(t *testing.T) {
	c, err := loadFile(writeYAML(t, goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.SiteID != "a" || c.Aggregator.Address != "localhost:7443" || c.Train.BatchSize != 8 || c.Train.MaxLen != 256 ||
		c.Backoff.Min != 250*time.Millisecond || c.Backoff.Max != 30*time.Second || !c.ExitOnFinal ||
		c.AuditLogPath() != "/var/lib/fedclaims/audit.jsonl" || c.serverName() != "localhost" || len(c.Data) != 1 {
		t.Fatalf("loaded %+v", c)
	}
}

func TestLoadConfigEnvironmentOverrides(t *testing.T) {
	t.Setenv("FEDCLAIMS_AGGREGATOR_ADDRESS", "agg.example:9000")
	t.Setenv("FEDCLAIMS_DATA", "/x, /y")
	c, err := loadFile(writeYAML(t, goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Aggregator.Address != "agg.example:9000" || len(c.Data) != 2 || c.Data[1] != "/y" {
		t.Fatalf("environment did not override: %+v", c)
	}
}

// TestConfigErrorsNameTheKey: every bad configuration fails at load with the key in
// the message.
func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, edit, key string
	}{
		{"unknown key", "lerning_rate: 3\n", "lerning_rate"},
		{"unknown nested key", strings.Replace(goodYAML, "batch_size", "batch_sise", 1), "train.batch_sise"},
		{"scalar for a map", strings.Replace(goodYAML, "aggregator:\n  address: localhost:7443\n", "aggregator: localhost:7443\n", 1), "aggregator"},
		{"bad integer", strings.Replace(goodYAML, "batch_size: 8", "batch_size: eight", 1), "train.batch_size"},
		{"negative integer", strings.Replace(goodYAML, "batch_size: 8", "batch_size: -1", 1), "train.batch_size"},
		{"bad duration", strings.Replace(goodYAML, "min: 250ms", "min: soon", 1), "backoff.min"},
		{"bad bool", goodYAML + "exit_on_final: maybe\n", "exit_on_final"},
		{"missing federation", strings.Replace(goodYAML, "federation_id: fed\n", "", 1), "federation_id"},
		{"missing site", strings.Replace(goodYAML, "site_id: a\n", "", 1), "site_id"},
		{"bad site id", strings.Replace(goodYAML, "site_id: a", "site_id: a/b", 1), "site_id"},
		{"missing address", strings.Replace(goodYAML, "  address: localhost:7443\n", "  server_name: x\n", 1), "aggregator.address"},
		{"address without port", strings.Replace(goodYAML, "localhost:7443", "localhost", 1), "aggregator.address"},
		{"no data", strings.Replace(goodYAML, "data: [/data/meds]", "data: []", 1), "data"},
		{"no state", strings.Replace(goodYAML, "state_dir: /var/lib/fedclaims\n", "", 1), "state_dir"},
		{"max below min", goodYAML[:len(goodYAML)-1] + "\n  max: 1ms\n", "backoff.max"},
		{"bad bootstrap", goodYAML + "eval:\n  bootstrap: -1\n", "eval.bootstrap"},
		{"short max_len", strings.Replace(goodYAML, "batch_size: 8", "max_len: 1", 1), "train.max_len"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.edit
			if !strings.Contains(body, "site_id") && !strings.Contains(body, "aggregator") {
				body = goodYAML + tt.edit
			}
			_, err := loadFile(writeYAML(t, body))
			if err == nil {
				t.Fatal("accepted")
			}
			// The loader's errors name the file and the key; Validate's are ErrConfig.
			if !strings.Contains(err.Error(), "key "+tt.key) {
				t.Fatalf("error %q does not name key %s", err, tt.key)
			}
		})
	}
}

func TestLoadConfigBadFile(t *testing.T) {
	if _, err := loadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: %v", err)
	}
	p := writeYAML(t, "site_id: [\n")
	if _, err := loadFile(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("broken YAML: %v", err)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := loadFile("../configs/site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.SiteID == "" {
		t.Fatal("example names no site")
	}
}

// TestPretrainOnlyConfig: pretrain_only defaults to off, and a site that pretrains
// on every patient may not also evaluate locally on them.
func TestPretrainOnlyConfig(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       bool
		err        []string // every string the refusal names; nil for accepted
	}{
		{"default", "", false, nil},
		{"on", "pretrain_only: true\n", true, nil},
		{"off with a local evaluation", "pretrain_only: false\neval:\n  out: /var/lib/fedclaims/eval\n", false, nil},
		{"on with a local evaluation", "pretrain_only: true\neval:\n  out: /var/lib/fedclaims/eval\n", false,
			[]string{"key pretrain_only", "eval.out", "/var/lib/fedclaims/eval"}},
		{"not a bool", "pretrain_only: sometimes\n", false, []string{"key pretrain_only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadFile(writeYAML(t, goodYAML+tt.yaml))
			if tt.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.PretrainOnly != tt.want {
					t.Fatalf("pretrain_only %v, want %v", c.PretrainOnly, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, s := range tt.err {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
		})
	}
}
