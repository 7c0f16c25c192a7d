package inference

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
)

var testTask = tasks.Task{Name: "t2d", Kind: tasks.Disease, Prefixes: []string{"ICD10//E11"}, HorizonDays: 730, LookbackDays: 365}

func testEncoder(t *testing.T, seed uint64) *model.Model {
	t.Helper()
	m, err := model.New(model.Config{Vocab: 30, Hidden: 8, Layers: 1, Heads: 2, MaxLen: 16, Segments: 3, LNEps: 1e-5}, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testExamples labels a sequence positive when it holds the first code (about a
// third of them).
func testExamples(rng *rand.Rand, vocab, n int) []model.Example {
	ex := make([]model.Example, n)
	for i := range ex {
		l := 4 + rng.IntN(8)
		s := model.Sequence{Tokens: make([]int32, l), Segments: make([]int32, l), Positions: make([]int32, l), Ages: make([]float32, l)}
		s.Tokens[0] = model.CLS
		for j := 1; j < l; j++ {
			s.Tokens[j] = int32(model.FirstCode + 1 + rng.IntN(vocab-model.FirstCode-1))
			s.Positions[j] = int32(j)
			s.Ages[j] = 60
		}
		if rng.IntN(3) == 0 {
			s.Tokens[1+rng.IntN(l-1)] = model.FirstCode
			ex[i].Label = true
		}
		ex[i].Seq = s
	}
	return ex
}

func seqsOf(ex []model.Example) []model.Sequence {
	out := make([]model.Sequence, len(ex))
	for i, e := range ex {
		out[i] = e.Seq
	}
	return out
}

// trainHead fits a head on enc and returns it as a saved head would be made.
func trainHead(t *testing.T, enc *model.Model, frozen bool, pool model.Pooling) (*model.Classifier, *Head, []model.Sequence) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	train, valid, test := testExamples(rng, 30, 80), testExamples(rng, 30, 30), testExamples(rng, 30, 25)
	hc := model.DefaultHeadConfig()
	hc.Frozen, hc.Pooling, hc.Epochs, hc.Batch = frozen, pool, 2, 8
	c, err := model.FineTune(context.Background(), enc, train, valid, hc)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHead(c, testTask, 16, enc.WeightsHash(), "base-ckpt", tasks.DefaultSalt)
	if err != nil {
		t.Fatal(err)
	}
	return c, h, seqsOf(test)
}

func TestHeadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frozen bool
		pool   model.Pooling
	}{
		{"probe cls", true, model.PoolCLS},
		{"probe mean", true, model.PoolMean},
		{"probe both", true, model.PoolBoth},
		{"fine-tuned cls", false, model.PoolCLS},
		{"fine-tuned both", false, model.PoolBoth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := testEncoder(t, 1)
			c, h, test := trainHead(t, base, tc.frozen, tc.pool)
			dir := t.TempDir()
			if err := SaveHead(dir, h, []byte(`{"vocab":"bytes"}`)); err != nil {
				t.Fatal(err)
			}
			jp, wp := Files(dir, "t2d")
			for _, p := range []string{jp, wp} {
				if _, err := os.Stat(p); err != nil {
					t.Fatal(err)
				}
			}
			// Every name of the head loads the same head.
			for _, name := range []string{jp, wp, strings.TrimSuffix(jp, ".json")} {
				got, err := LoadHead(name)
				if err != nil {
					t.Fatalf("LoadHead(%s): %v", name, err)
				}
				if !reflect.DeepEqual(got.Info, h.Info) {
					t.Fatalf("info round trip:\n got %+v\nwant %+v", got.Info, h.Info)
				}
			}
			loaded, err := LoadHead(jp)
			if err != nil {
				t.Fatal(err)
			}
			enc, encDir := base, "base-ckpt"
			if !tc.frozen {
				if loaded.Info.BaseEncoderSHA256 != base.WeightsHash() || loaded.Info.EncoderSHA256 == base.WeightsHash() {
					t.Fatalf("fine-tuned head: base %s, encoder %s; the base encoder hashes %s", loaded.Info.BaseEncoderSHA256, loaded.Info.EncoderSHA256, base.WeightsHash())
				}
				encDir = loaded.EncoderDir()
				if encDir != filepath.Join(dir, "t2d.encoder") {
					t.Fatalf("fine-tuned encoder at %s", encDir)
				}
				if enc, err = model.Load(encDir); err != nil {
					t.Fatal(err)
				}
				if v, err := os.ReadFile(filepath.Join(encDir, model.VocabFile)); err != nil || string(v) != `{"vocab":"bytes"}` {
					t.Fatalf("fine-tuned encoder's vocabulary: %q, %v", v, err)
				}
			} else if loaded.Info.Standardization == nil || len(loaded.Info.Standardization.Mean) != tc.pool.Width(8) {
				t.Fatalf("probe standardisation %+v", loaded.Info.Standardization)
			}
			bound, err := loaded.Bind(enc, enc.WeightsHash(), encDir)
			if err != nil {
				t.Fatal(err)
			}
			want, got := c.PredictAll(test, 8), bound.PredictAll(test, 8)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("loaded head predicts %v, trained head %v", got, want)
			}
		})
	}
}

func TestBindRefusesAnotherEncoder(t *testing.T) {
	base := testEncoder(t, 1)
	other := testEncoder(t, 2)
	for _, tc := range []struct {
		name   string
		frozen bool
		enc    *model.Model
		want   string // in the error besides both hashes and files
	}{
		{"probe on another encoder", true, other, "score with the encoder it was trained on (base-ckpt)"},
		{"fine-tuned head on another encoder", false, other, "t2d.encoder"},
		{"fine-tuned head on its base encoder", false, base, "this is the base encoder the head was fine-tuned from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, h, _ := trainHead(t, base, tc.frozen, model.PoolCLS)
			dir := t.TempDir()
			if err := SaveHead(dir, h, nil); err != nil {
				t.Fatal(err)
			}
			loaded, err := LoadHead(filepath.Join(dir, "t2d.json"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = loaded.Bind(tc.enc, tc.enc.WeightsHash(), "/ckpts/other")
			if !errors.Is(err, ErrEncoderMismatch) {
				t.Fatalf("Bind: %v, want ErrEncoderMismatch", err)
			}
			for _, s := range []string{loaded.Info.EncoderSHA256, tc.enc.WeightsHash(), filepath.Join(dir, "t2d.json"),
				filepath.Join("/ckpts/other", model.ModelFile), tc.want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
		})
	}
}

func TestLoadHeadRefusesBrokenFiles(t *testing.T) {
	base := testEncoder(t, 1)
	_, h, _ := trainHead(t, base, true, model.PoolCLS)
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, jp, wp string)
		want   string
	}{
		{"weights missing", func(t *testing.T, jp, wp string) { os.Remove(wp) }, "t2d.safetensors"},
		{"json missing", func(t *testing.T, jp, wp string) { os.Remove(jp) }, "t2d.json"},
		{"weights of another head", func(t *testing.T, jp, wp string) {
			other := *h
			other.Info.EncoderSHA256 = strings.Repeat("0", 64)
			if err := SaveHead(filepath.Join(filepath.Dir(jp), "x"), &other, nil); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(filepath.Join(filepath.Dir(jp), "x", "t2d.safetensors"))
			os.WriteFile(wp, raw, 0o644)
		}, "the two files are not one head"},
		{"width mismatch", func(t *testing.T, jp, wp string) {
			edit(t, jp, func(m map[string]any) {
				m["pooling"] = "both"
				m["width"] = 16.0
				s := m["standardization"].(map[string]any)
				s["mean"] = append(s["mean"].([]any), s["mean"].([]any)...)
				s["scale"] = append(s["scale"].([]any), s["scale"].([]any)...)
			})
		}, "want tensors weight [16]"},
		{"unknown field", func(t *testing.T, jp, wp string) {
			edit(t, jp, func(m map[string]any) { m["thresold"] = 0.5 })
		}, `unknown field "thresold"`},
		{"task name escapes", func(t *testing.T, jp, wp string) {
			edit(t, jp, func(m map[string]any) { m["task"].(map[string]any)["name"] = "../x" })
		}, "field task.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveHead(dir, h, nil); err != nil {
				t.Fatal(err)
			}
			jp, wp := Files(dir, "t2d")
			tc.break_(t, jp, wp)
			_, err := LoadHead(jp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadHead: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// edit rewrites the JSON file p through fn.
func edit(t *testing.T, p string, fn func(map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

const validHeadJSON = `{"format":"fedclaims-head","version":1,"task":{"name":"t2d","kind":"disease","prefixes":["ICD10//E11"],"horizon_days":730,"lookback_days":365},
"pooling":"cls","hidden":2,"width":2,"seq":16,"frozen":true,"lambda":0.01,"valid_log_loss":0.2,
"standardization":{"mean":[0.5,-1],"scale":[2,1]},"test_calibration":{"slope":1,"intercept":0,"n":10,"positives":2},
"encoder_sha256":"` + "66a61a353c594ddf69515340b6bc0ba62d60d9412c7d40b8630379b313644fd5" + `","encoder":"ckpt"}`

func FuzzParseHeadInfo(f *testing.F) {
	f.Add([]byte(validHeadJSON))
	f.Add([]byte(strings.Replace(validHeadJSON, `"frozen":true`, `"frozen":false`, 1)))
	f.Add([]byte(`{"format":"fedclaims-head","version":1,"task":{"name":"a"},"pooling":"both","hidden":1,"width":2,"seq":2,"frozen":false,` +
		`"encoder_sha256":"` + strings.Repeat("a", 64) + `","base_encoder_sha256":"` + strings.Repeat("b", 64) + `","encoder":"a.encoder"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"fedclaims-head"} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		hi, err := ParseHeadInfo(data)
		if err != nil {
			return
		}
		if err := hi.Validate(); err != nil {
			t.Fatalf("parsed head does not validate: %v", err)
		}
		if hi.Width != model.Pooling(hi.Pooling).Width(hi.Hidden) {
			t.Fatalf("width %d for pooling %s of %d", hi.Width, hi.Pooling, hi.Hidden)
		}
		if !hi.Frozen && !filepath.IsLocal(hi.Encoder) {
			t.Fatalf("fine-tuned encoder %q outside the heads directory", hi.Encoder)
		}
		raw, err := json.Marshal(hi)
		if err != nil {
			t.Fatalf("a parsed head does not marshal: %v", err)
		}
		again, err := ParseHeadInfo(raw)
		if err != nil {
			t.Fatalf("a parsed head's JSON does not parse: %v\n%s", err, raw)
		}
		if !reflect.DeepEqual(again, hi) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, hi)
		}
	})
}
