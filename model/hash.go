package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
)

// WeightsHash is the encoder's identity as saved heads record it: the lower-case
// hex SHA-256 of its parameters as little-endian float32 values in Flatten's
// order (Config.layout's, the order of model.safetensors' tensors). Save writes
// exactly these bytes, unpadded, after the safetensors header, so the hash of a
// checkpoint is also SHA-256 of model.safetensors minus its first 8+N bytes (N
// the header length the first 8 give), which any tool can compute without
// fedclaims. It covers the weights only, not config.json: two configs that differ
// only in the number of attention heads hash alike.
func (m *Model) WeightsHash() string {
	h := sha256.New()
	buf := make([]byte, 0, 1<<16)
	for _, v := range m.params {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if len(buf) == cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))
}
