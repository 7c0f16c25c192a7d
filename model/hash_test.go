package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// TestWeightsHash checks that the hash is SHA-256 of model.safetensors' data
// section, that it survives Save and Load, and that a changed weight changes it.
func TestWeightsHash(t *testing.T) {
	m, err := New(tinyConfig(), 7)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	sum := sha256.Sum256(raw[8+n:])
	if got, want := m.WeightsHash(), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("WeightsHash %s, data section of %s hashes to %s", got, ModelFile, want)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.WeightsHash() != m.WeightsHash() {
		t.Fatal("hash changed across Save and Load")
	}
	v := loaded.Flatten()
	v[len(v)/2] += 1e-3
	if err := loaded.Unflatten(v); err != nil {
		t.Fatal(err)
	}
	if loaded.WeightsHash() == m.WeightsHash() {
		t.Fatal("a changed weight kept the hash")
	}
}
