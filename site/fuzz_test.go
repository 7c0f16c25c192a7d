package site

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/model/safetensors"
	"github.com/fedclaims/fedclaims/secureagg"
)

// FuzzConfig: no YAML makes Load panic, and whatever it accepts validates.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(goodYAML))
	f.Add([]byte("site_id: [\n"))
	f.Add([]byte("aggregator: x\n"))
	f.Add([]byte(goodYAML + "train:\n  max_len: -3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "site.yaml")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadFile(p)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted a config that does not validate: %v", err)
		}
	})
}

// FuzzOpenShare: relayed bytes never make openShare panic, and never open under a
// key they were not sealed to.
func FuzzOpenShare(f *testing.F) {
	tk, err := secureagg.NewTransportKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Add([]byte{secureagg.Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		if sh, err := openShare(b, tk, "fed", 0, 1); err == nil {
			t.Fatalf("random bytes opened as a share %s", sh.Header)
		}
	})
}

// FuzzInstallCheckpoint: a model blob from the aggregator never makes the site
// panic; what installs is a model of the config it carries.
func FuzzInstallCheckpoint(f *testing.F) {
	m := tinyModel(f, 8, 1)
	dir := f.TempDir()
	if err := m.Save(dir, nil); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, model.ModelFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	var empty bytes.Buffer
	if err := safetensors.Write(&empty, nil, map[string]string{"config": tinyModelConfig()}); err != nil {
		f.Fatal(err)
	}
	f.Add(empty.Bytes())
	f.Add([]byte{})
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := installCheckpoint(filepath.Join(t.TempDir(), "ckpt"), b, nil)
		if err != nil {
			return
		}
		if len(got.Params()) != got.Config().Params() {
			t.Fatalf("installed %d parameters for a config of %d", len(got.Params()), got.Config().Params())
		}
	})
}

// FuzzStateRecords: a damaged state file is an error, never a panic or a silent
// reset of the once-per-round rule.
func FuzzStateRecords(f *testing.F) {
	f.Add([]byte(`{"federation":"fed","rounds":[1,2]}`))
	f.Add([]byte(`{"federation":"fed","seq":3}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := openState(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{releasedFile, seqFile} {
			if err := os.WriteFile(st.path(name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = st.lastSeq("fed")
		rounds, err := st.releasedRounds("fed")
		if err != nil {
			if rerr := st.release("fed", 1, audit.Head{}); rerr == nil {
				t.Fatal("release went ahead over an unreadable record")
			}
			return
		}
		for _, r := range rounds {
			if err := st.release("fed", r, audit.Head{}); !errors.Is(err, ErrReleased) {
				t.Fatalf("round %d is recorded but release allowed it: %v", r, err)
			}
		}
	})
}

func tinyModelConfig() string {
	return `{"vocab_size": 8, "hidden": 4, "layers": 0, "heads": 1, "max_len": 4, "segments": 3, "dropout": 0, "ln_eps": 1e-5}`
}
