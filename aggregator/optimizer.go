package aggregator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Optimizer is the server optimizer: it applies a round's decrypted mean delta to the
// global model. Its state (FedAdam's moments) is checkpointed with the model, so a
// restarted aggregator continues the same trajectory.
type Optimizer interface {
	// Apply updates global in place by the round's mean delta (local minus global).
	Apply(global, mean []float32) error
	// MarshalBinary and UnmarshalBinary save and restore the optimizer's state.
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// NewOptimizer returns the optimizer a configuration names.
func NewOptimizer(c ServerConfig) (Optimizer, error) {
	if !(c.LearningRate > 0) || math.IsInf(c.LearningRate, 0) {
		return nil, fmt.Errorf("learning_rate %v is not a positive number", c.LearningRate)
	}
	switch c.Optimizer {
	case "fedavg":
		return &FedAvg{LR: c.LearningRate}, nil
	case "fedadam":
		switch {
		case !(c.Beta1 >= 0 && c.Beta1 < 1):
			return nil, fmt.Errorf("beta1 %v is outside [0, 1)", c.Beta1)
		case !(c.Beta2 >= 0 && c.Beta2 < 1):
			return nil, fmt.Errorf("beta2 %v is outside [0, 1)", c.Beta2)
		case !(c.Epsilon > 0):
			return nil, fmt.Errorf("epsilon %v is not positive", c.Epsilon)
		}
		return &FedAdam{LR: c.LearningRate, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Epsilon}, nil
	}
	return nil, fmt.Errorf("optimizer %q: want fedavg or fedadam", c.Optimizer)
}

// FedAvg is federated averaging with a server learning rate (McMahan et al. 2017;
// Reddi et al. 2021 write it as SGD on the pseudo-gradient): global += LR * mean.
// LR 1 is plain FedAvg.
type FedAvg struct{ LR float64 }

// Apply implements Optimizer.
func (o *FedAvg) Apply(global, mean []float32) error {
	if len(global) != len(mean) {
		return fmt.Errorf("fedavg: model has %d values, mean has %d", len(global), len(mean))
	}
	lr := float32(o.LR)
	for i, d := range mean {
		global[i] += lr * d
	}
	return nil
}

// MarshalBinary implements Optimizer; FedAvg has no state.
func (o *FedAvg) MarshalBinary() ([]byte, error) { return nil, nil }

// UnmarshalBinary implements Optimizer.
func (o *FedAvg) UnmarshalBinary(b []byte) error {
	if len(b) != 0 {
		return fmt.Errorf("fedavg: %d bytes of state, want none", len(b))
	}
	return nil
}

// FedAdam is Adam at the server on the pseudo-gradient g = -mean (Reddi et al.,
// "Adaptive Federated Optimization", ICLR 2021, Algorithm 2, with bias correction):
// m = b1 m + (1-b1) g, v = b2 v + (1-b2) g², global -= LR m̂ / (sqrt(v̂) + Eps).
type FedAdam struct {
	LR, Beta1, Beta2, Eps float64

	step uint64
	m, v []float64
}

// Apply implements Optimizer.
func (o *FedAdam) Apply(global, mean []float32) error {
	if len(global) != len(mean) {
		return fmt.Errorf("fedadam: model has %d values, mean has %d", len(global), len(mean))
	}
	if o.m == nil {
		o.m, o.v = make([]float64, len(global)), make([]float64, len(global))
	}
	if len(o.m) != len(global) {
		return fmt.Errorf("fedadam: state has %d values, model %d", len(o.m), len(global))
	}
	o.step++
	c1 := 1 - math.Pow(o.Beta1, float64(o.step))
	c2 := 1 - math.Pow(o.Beta2, float64(o.step))
	for i, d := range mean {
		g := -float64(d)
		o.m[i] = o.Beta1*o.m[i] + (1-o.Beta1)*g
		o.v[i] = o.Beta2*o.v[i] + (1-o.Beta2)*g*g
		global[i] -= float32(o.LR * (o.m[i] / c1) / (math.Sqrt(o.v[i]/c2) + o.Eps))
	}
	return nil
}

// MarshalBinary implements Optimizer: step, length, then m and v as float64s,
// little-endian.
func (o *FedAdam) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(16 + 16*len(o.m))
	_ = binary.Write(&buf, binary.LittleEndian, o.step)
	_ = binary.Write(&buf, binary.LittleEndian, uint64(len(o.m)))
	_ = binary.Write(&buf, binary.LittleEndian, o.m)
	_ = binary.Write(&buf, binary.LittleEndian, o.v)
	return buf.Bytes(), nil
}

// UnmarshalBinary implements Optimizer.
func (o *FedAdam) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		o.step, o.m, o.v = 0, nil, nil
		return nil
	}
	if len(b) < 16 {
		return errors.New("fedadam: state truncated")
	}
	step := binary.LittleEndian.Uint64(b)
	n := binary.LittleEndian.Uint64(b[8:])
	if n > uint64(len(b)) || uint64(len(b)-16) != 16*n {
		return fmt.Errorf("fedadam: state of %d bytes does not hold 2 x %d values", len(b), n)
	}
	m, v := make([]float64, n), make([]float64, n)
	r := bytes.NewReader(b[16:])
	_ = binary.Read(r, binary.LittleEndian, m)
	_ = binary.Read(r, binary.LittleEndian, v)
	o.step, o.m, o.v = step, m, v
	return nil
}
