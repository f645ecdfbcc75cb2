package train

import (
	"fmt"
	"math"
	"strings"
)

// OptimizerSpec selects and configures the optimizer.
type OptimizerSpec struct {
	// Type is adam or sgd.
	Type         string  `hcl:"type,optional" json:"type,omitempty"`
	LearningRate float64 `hcl:"learning_rate,optional" json:"learning_rate,omitempty"`
	// Momentum for sgd (0 disables it).
	Momentum float64 `hcl:"momentum,optional" json:"momentum,omitempty"`
	// Beta1, Beta2 and Epsilon for adam (defaults 0.9, 0.999, 1e-7).
	Beta1   float64 `hcl:"beta1,optional" json:"beta1,omitempty"`
	Beta2   float64 `hcl:"beta2,optional" json:"beta2,omitempty"`
	Epsilon float64 `hcl:"epsilon,optional" json:"epsilon,omitempty"`
}

// optimizer updates parameters from gradients. Its whole state is the
// step count and two moment vectors, which checkpoints save.
type optimizer struct {
	adam   bool
	lr     float64
	mom    float64
	b1, b2 float64
	eps    float64
	t      int64
	m, v   []float32
}

func newOptimizer(s OptimizerSpec, nParams int) (*optimizer, error) {
	o := &optimizer{lr: s.LearningRate, mom: s.Momentum, b1: s.Beta1, b2: s.Beta2, eps: s.Epsilon}
	switch strings.ToLower(s.Type) {
	case "", "adam":
		o.adam = true
		if o.lr == 0 {
			o.lr = 0.001
		}
		if o.b1 == 0 {
			o.b1 = 0.9
		}
		if o.b2 == 0 {
			o.b2 = 0.999
		}
		if o.eps == 0 {
			o.eps = 1e-7
		}
		if o.b1 < 0 || o.b1 >= 1 || o.b2 < 0 || o.b2 >= 1 || o.eps < 0 {
			return nil, fmt.Errorf("adam needs 0 <= beta1, beta2 < 1 and epsilon >= 0, got %v, %v, %v", o.b1, o.b2, o.eps)
		}
		o.v = make([]float32, nParams)
	case "sgd":
		if o.lr == 0 {
			o.lr = 0.01
		}
		if o.mom < 0 || o.mom >= 1 {
			return nil, fmt.Errorf("sgd momentum must be in [0, 1), got %v", o.mom)
		}
	default:
		return nil, fmt.Errorf("unknown optimizer %q (want adam or sgd)", s.Type)
	}
	if o.lr <= 0 {
		return nil, fmt.Errorf("learning_rate must be positive, got %v", o.lr)
	}
	o.m = make([]float32, nParams)
	return o, nil
}

// step applies one update of p from gradient g.
func (o *optimizer) step(p, g []float32) {
	o.t++
	if !o.adam {
		lr, mom := float32(o.lr), float32(o.mom)
		if mom == 0 {
			for i := range p {
				p[i] -= lr * g[i]
			}
			return
		}
		for i := range p {
			o.m[i] = mom*o.m[i] - lr*g[i]
			p[i] += o.m[i]
		}
		return
	}
	b1, b2 := float32(o.b1), float32(o.b2)
	c1 := 1 - math.Pow(o.b1, float64(o.t))
	c2 := 1 - math.Pow(o.b2, float64(o.t))
	// p -= lr * (m / c1) / (sqrt(v / c2) + eps)
	lr := float32(o.lr / c1)
	inv2 := float32(1 / math.Sqrt(c2))
	eps := float32(o.eps)
	m, v := o.m[:len(p)], o.v[:len(p)]
	g = g[:len(p)]
	for i := range p {
		gi := g[i]
		mi := b1*m[i] + (1-b1)*gi
		vi := b2*v[i] + (1-b2)*gi*gi
		m[i], v[i] = mi, vi
		p[i] -= lr * mi / (float32(math.Sqrt(float64(vi)))*inv2 + eps)
	}
}
