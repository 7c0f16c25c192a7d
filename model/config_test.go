package model

import (
	"math"
	"strings"
	"testing"
)

func TestPresets(t *testing.T) {
	study := map[string]float64{"2m": 2.2e6, "11m": 11e6, "32m": 32e6, "57m": 57e6, "101m": 101e6}
	names := Presets()
	if len(names) != len(study) {
		t.Fatalf("presets %v, want %d", names, len(study))
	}
	prev := 0
	for _, name := range names {
		cfg, err := Preset(name, StudyVocab)
		if err != nil {
			t.Fatal(err)
		}
		n := cfg.Params()
		if dev := math.Abs(float64(n)-study[name]) / study[name]; dev > 0.05 {
			t.Errorf("preset %s: %d parameters, %.1f%% from the study's %.0f", name, n, 100*dev, study[name])
		}
		if n <= prev {
			t.Errorf("preset %s (%d parameters) not larger than the one before (%d)", name, n, prev)
		}
		prev = n
		t.Logf("%s: layers %d hidden %d heads %d params %d flops/token@512 %.3g", name, cfg.Layers, cfg.Hidden, cfg.Heads, n, cfg.FLOPsPerToken(512))
	}
	if _, err := Preset("7m", StudyVocab); err == nil {
		t.Error("unknown preset accepted")
	}
}

// TestParamsFormula checks the layout's count against the closed form
// (V+P+S+2·TB)·H + 2H + L·(12H² + 13H) + 2H + V.
func TestParamsFormula(t *testing.T) {
	timed := tinyConfig()
	timed.TimeBuckets = DefaultTimeBuckets
	for _, c := range []Config{tinyConfig(), timed, {Vocab: 11000, Hidden: 256, Layers: 10, Heads: 4, MaxLen: 512, Segments: 3, LNEps: 1e-5}} {
		h := c.Hidden
		want := (c.Vocab+c.MaxLen+c.Segments+2*c.TimeBuckets)*h + 2*h + c.Layers*(12*h*h+13*h) + 2*h + c.Vocab
		if got := c.Params(); got != want {
			t.Errorf("%+v: Params() = %d, want %d", c, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := tinyConfig()
	bad := []func(*Config){
		func(c *Config) { c.Vocab = 3 },
		func(c *Config) { c.Heads = 3 },
		func(c *Config) { c.Hidden = 0 },
		func(c *Config) { c.Dropout = 1 },
		func(c *Config) { c.MaxLen = 0 },
		func(c *Config) { c.Segments = 0 },
		func(c *Config) { c.LNEps = 0 },
		func(c *Config) { c.TimeBuckets = -1 },
		func(c *Config) { c.TimeBuckets = 1 },
		func(c *Config) { c.TimeBuckets = 65 },
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, f := range bad {
		c := good
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: %+v accepted", i, c)
		}
	}
}

func TestParseConfig(t *testing.T) {
	good, err := tinyConfig().marshal()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ParseConfig(good); err != nil || c != tinyConfig() {
		t.Fatalf("ParseConfig(marshal(c)) = %+v, %v", c, err)
	}
	for _, bad := range []struct{ doc, want string }{
		{`{"vocab_size": 30, "hidden": 8, "layers": 1, "heads": 3, "max_len": 8, "segments": 3, "ln_eps": 1e-5}`, "heads"},
		{`{"vocab_size": 30, "colour": "red"}`, "colour"},
		{`{"vocab_size": "many"}`, "vocab_size"},
		{`{} {}`, "more than one"},
	} {
		if _, err := ParseConfig([]byte(bad.doc)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseConfig(%s): error %v, want one naming %q", bad.doc, err, bad.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	good, _ := tinyConfig().marshal()
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		// Whatever parses is valid and survives a round trip.
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid config: %v", err)
		}
		again, err := c.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if c2, err := ParseConfig(again); err != nil || c2 != c {
			t.Fatalf("round trip: %+v, %v; want %+v", c2, err, c)
		}
	})
}
