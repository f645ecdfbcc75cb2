package train

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// lossOf runs a training-mode forward pass and returns the summed loss.
func lossOf(r *replica, lk lossKind, x []float32, y []int32, n int) float64 {
	out := r.forward(x, n, true, dropoutSeed{seed: 7, step: 3})
	l, _ := lk.eval(out, y, n, r.m.out.size(), 0, nil)
	return l
}

func TestGradientsFiniteDifference(t *testing.T) {
	img := []int{6, 6, 2}
	tests := []struct {
		name   string
		loss   string
		layers []LayerSpec
		input  []int
	}{
		{"conv valid relu, dense softmax, cross-entropy", "sparse_categorical_crossentropy", []LayerSpec{
			{Type: "conv2d", Filters: 3, KernelSize: []int{3, 3}, Activation: "relu"},
			{Type: "flatten"},
			{Type: "dense", Units: 4, Activation: "softmax"},
		}, img},
		{"conv same stride 2 sigmoid, linear dense, cross-entropy from logits", "sparse_categorical_crossentropy", []LayerSpec{
			{Type: "conv2d", Filters: 2, KernelSize: []int{3, 2}, Strides: []int{2}, Padding: "same", Activation: "sigmoid"},
			{Type: "flatten"},
			{Type: "dense", Units: 3},
		}, img},
		{"conv softmax over channels, max pool, mse", "mse", []LayerSpec{
			{Type: "conv2d", Filters: 3, KernelSize: []int{2, 2}, Activation: "softmax"},
			{Type: "max_pooling2d", PoolSize: []int{2, 2}},
			{Type: "flatten"},
			{Type: "dense", Units: 2, Activation: "sigmoid"},
		}, img},
		{"max pool 3x3 stride 1 then conv", "sparse_categorical_crossentropy", []LayerSpec{
			{Type: "max_pooling2d", PoolSize: []int{3}, Strides: []int{1}},
			{Type: "conv2d", Filters: 2, KernelSize: []int{2, 2}, Padding: "same"},
			{Type: "flatten"},
			{Type: "dense", Units: 3},
		}, img},
		{"dense, dropout, standalone relu, sigmoid and softmax", "sparse_categorical_crossentropy", []LayerSpec{
			{Type: "dense", Units: 8},
			{Type: "dropout", Rate: 0.3},
			{Type: "relu"},
			{Type: "dense", Units: 5},
			{Type: "sigmoid"},
			{Type: "dense", Units: 3},
			{Type: "softmax"},
		}, []int{7}},
		{"binary cross-entropy with sigmoid output", "binary_crossentropy", []LayerSpec{
			{Type: "conv2d", Filters: 2, KernelSize: []int{3, 3}, Activation: "relu"},
			{Type: "flatten"},
			{Type: "dense", Units: 1, Activation: "sigmoid"},
		}, img},
		{"binary cross-entropy from logits, several outputs", "binary_crossentropy", []LayerSpec{
			{Type: "dense", Units: 3},
		}, []int{5}},
		{"mse single output", "mse", []LayerSpec{
			{Type: "dense", Units: 4, Activation: "relu"},
			{Type: "dense", Units: 1},
		}, []int{5}},
	}
	for ti, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewModel(ModelSpec{InputShape: tt.input, Layers: tt.layers}, uint64(ti+1))
			if err != nil {
				t.Fatal(err)
			}
			lk, err := parseLoss(tt.loss)
			if err != nil {
				t.Fatal(err)
			}
			fused, err := lk.fuses(m.finalActivation(), m.out.size())
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(42, uint64(ti)))
			for i := range m.Params {
				m.Params[i] += float32(rng.NormFloat64() * 0.05) // non-zero biases too
			}
			const n = 3
			x := randSlice(rng, n*m.in.size())
			y := make([]int32, n)
			for i := range y {
				if k := m.out.size(); k > 1 {
					y[i] = int32(rng.IntN(k))
				} else {
					y[i] = int32(rng.IntN(2))
				}
			}
			r := newReplica(m, n, false, fused)
			r.inGrad = true
			out := r.forward(x, n, true, dropoutSeed{seed: 7, step: 3})
			dout := make([]float32, len(out))
			lk.eval(out, y, n, m.out.size(), 1, dout)
			clear(r.grad)
			r.backward(dout, n)
			grad := append([]float32(nil), r.grad...)
			dx := append([]float32(nil), r.dacts[0][:len(x)]...)

			// numeric is the central difference of the loss in v[i].
			numeric := func(v []float32, i int, eps float32) float64 {
				orig := v[i]
				v[i] = orig + eps
				lp := lossOf(r, lk, x, y, n)
				v[i] = orig - eps
				lm := lossOf(r, lk, x, y, n)
				v[i] = orig
				return (lp - lm) / float64(2*eps)
			}
			checked, kinks := 0, 0
			check := func(what string, v []float32, i int, analytic float32) {
				t.Helper()
				num := numeric(v, i, 1e-3)
				// A ReLU or max-pool switching inside the interval makes the
				// difference quotient depend on eps: such points are kinks, not
				// evidence either way. They are counted and must stay rare.
				if d := math.Abs(num - numeric(v, i, 2.5e-4)); d > 3e-3+1e-2*math.Abs(num) {
					kinks++
					return
				}
				checked++
				if d := math.Abs(num - float64(analytic)); d > 3e-3+2e-2*math.Abs(num) {
					t.Errorf("%s[%d]: analytic gradient %.6f, numeric %.6f", what, i, analytic, num)
				}
			}
			defer func() {
				t.Logf("%d points checked, %d kinks skipped", checked, kinks)
				if kinks*10 > checked {
					t.Errorf("%d of %d points sit on kinks: the check is not meaningful", kinks, kinks+checked)
				}
			}()
			for i := range m.Params {
				check("param", m.Params, i, grad[i])
			}
			for i := range x {
				check("input", x, i, dx[i])
			}
		})
	}
}

func TestExactForward(t *testing.T) {
	tests := []struct {
		name   string
		spec   ModelSpec
		params []float32
		x      []float32
		want   []float32
	}{
		{
			// 3x3 single-channel image, 2x2 kernel [[1,0],[0,-1]] (stored kh,kw,c,f), bias 0.5.
			name:   "conv2d valid",
			spec:   ModelSpec{InputShape: []int{3, 3, 1}, Layers: []LayerSpec{{Type: "conv2d", Filters: 1, KernelSize: []int{2, 2}}}},
			params: []float32{1, 0, 0, -1, 0.5},
			x:      []float32{1, 2, 3, 4, 5, 6, 7, 8, 9},
			// out[y][x] = in[y][x] - in[y+1][x+1] + 0.5 = -4 + 0.5
			want: []float32{-3.5, -3.5, -3.5, -3.5},
		},
		{
			// 2x2 image, 3x3 kernel of ones, same padding: every output sums its neighbourhood.
			name:   "conv2d same relu",
			spec:   ModelSpec{InputShape: []int{2, 2, 1}, Layers: []LayerSpec{{Type: "conv2d", Filters: 1, KernelSize: []int{3, 3}, Padding: "same", Activation: "relu"}}},
			params: []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, -5},
			x:      []float32{1, 2, 3, 4},
			want:   []float32{5, 5, 5, 5},
		},
		{
			name: "conv2d two channels two filters",
			spec: ModelSpec{InputShape: []int{1, 1, 2}, Layers: []LayerSpec{{Type: "conv2d", Filters: 2, KernelSize: []int{1, 1}}}},
			// w[c][f]: c0 -> (1, 2), c1 -> (3, 4); bias (0, 1)
			params: []float32{1, 2, 3, 4, 0, 1},
			x:      []float32{10, 100},
			want:   []float32{310, 421},
		},
		{
			name: "max pooling 2x2",
			spec: ModelSpec{InputShape: []int{4, 4, 1}, Layers: []LayerSpec{{Type: "max_pooling2d"}}},
			x:    []float32{1, 5, 2, 0, 3, 4, 8, 1, -1, -2, 0, 0, -3, -4, 0, 9},
			want: []float32{5, 8, -1, 9},
		},
		{
			name:   "dense",
			spec:   ModelSpec{InputShape: []int{2}, Layers: []LayerSpec{{Type: "dense", Units: 3}}},
			params: []float32{1, 2, 3, 4, 5, 6, 0.5, -0.5, 1},
			x:      []float32{1, -1},
			want:   []float32{-2.5, -3.5, -2},
		},
		{
			name: "softmax",
			spec: ModelSpec{InputShape: []int{3}, Layers: []LayerSpec{{Type: "softmax"}}},
			x:    []float32{1, 2, 3},
			want: []float32{0.09003057, 0.24472847, 0.66524096},
		},
		{
			name: "sigmoid and relu",
			spec: ModelSpec{InputShape: []int{2}, Layers: []LayerSpec{{Type: "relu"}, {Type: "sigmoid"}}},
			x:    []float32{-3, 0.5},
			want: []float32{0.5, 0.62245935},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewModel(tt.spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.params) != len(m.Params) {
				t.Fatalf("model has %d params, test gives %d", len(m.Params), len(tt.params))
			}
			copy(m.Params, tt.params)
			got := m.Predict(tt.x, 1)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d outputs %v, want %v", len(got), got, tt.want)
			}
			for i := range got {
				if math.Abs(float64(got[i]-tt.want[i])) > 1e-6 {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestExactLosses(t *testing.T) {
	tests := []struct {
		name  string
		loss  lossKind
		out   []float32
		label int32
		want  float64
		grad  []float32
	}{
		{"cross-entropy", lossCE, []float32{0, 0}, 1, math.Log(2), []float32{0.5, -0.5}},
		{"binary cross-entropy", lossBCE, []float32{0}, 1, math.Log(2), []float32{-0.5}},
		{"mse one output", lossMSE, []float32{3}, 1, 4, []float32{4}},
		{"mse one-hot", lossMSE, []float32{1, 1}, 0, 0.5, []float32{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := make([]float32, len(tt.out))
			got, _ := tt.loss.eval(tt.out, []int32{tt.label}, 1, len(tt.out), 1, d)
			if math.Abs(got-tt.want) > 1e-6 {
				t.Errorf("loss = %v, want %v", got, tt.want)
			}
			for i := range d {
				if math.Abs(float64(d[i]-tt.grad[i])) > 1e-6 {
					t.Errorf("grad = %v, want %v", d, tt.grad)
				}
			}
		})
	}
}

func TestOptimizersOneStep(t *testing.T) {
	tests := []struct {
		name string
		spec OptimizerSpec
		want []float32 // after two steps with gradient (1, -2)
	}{
		// v1 = -0.1*g; p1 = p0 + v1; v2 = 0.9*v1 - 0.1*g; p2 = p1 + v2.
		{"sgd momentum", OptimizerSpec{Type: "sgd", LearningRate: 0.1, Momentum: 0.9}, []float32{1 - 0.1 - 0.19, 2 + 0.2 + 0.38}},
		{"sgd", OptimizerSpec{Type: "sgd", LearningRate: 0.1}, []float32{0.8, 2.4}},
		// With bias correction each Adam step moves by lr*sign(g) for a constant gradient.
		{"adam", OptimizerSpec{Type: "adam", LearningRate: 0.01, Epsilon: 1e-12}, []float32{0.98, 2.02}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := newOptimizer(tt.spec, 2)
			if err != nil {
				t.Fatal(err)
			}
			p := []float32{1, 2}
			o.step(p, []float32{1, -2})
			o.step(p, []float32{1, -2})
			for i := range p {
				if math.Abs(float64(p[i]-tt.want[i])) > 1e-5 {
					t.Fatalf("params = %v, want %v", p, tt.want)
				}
			}
		})
	}
}

func TestSpecErrorsNameTheLayer(t *testing.T) {
	tests := []struct {
		name string
		spec ModelSpec
		want string
	}{
		{"dense on image", ModelSpec{InputShape: []int{4, 4, 1}, Layers: []LayerSpec{{Type: "dense", Units: 2}}}, "layer 1 (dense): needs a flat input, got (4, 4, 1)"},
		{"kernel too big", ModelSpec{InputShape: []int{4, 4, 1}, Layers: []LayerSpec{{Type: "max_pooling2d"}, {Type: "Conv2D", Filters: 1, KernelSize: []int{3, 3}}}}, "layer 2 (Conv2D): kernel 3x3 does not fit input (2, 2, 1)"},
		{"unknown type", ModelSpec{InputShape: []int{4}, Layers: []LayerSpec{{Type: "lstm"}}}, "layer 1 (lstm): unknown layer type"},
		{"missing filters", ModelSpec{InputShape: []int{4, 4, 1}, Layers: []LayerSpec{{Type: "conv2d", KernelSize: []int{3, 3}}}}, "layer 1 (conv2d): filters must be set"},
		{"bad activation", ModelSpec{InputShape: []int{4}, Layers: []LayerSpec{{Type: "dense", Units: 1, Activation: "tanhh"}}}, `layer 1 (dense): unknown activation "tanhh"`},
		{"no input shape", ModelSpec{Layers: []LayerSpec{{Type: "flatten"}}}, "input_shape must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewModel(tt.spec, 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSeedRecipeShapes(t *testing.T) {
	spec := ModelSpec{Layers: []LayerSpec{
		{Type: "Conv2D", Filters: 32, KernelSize: []int{3, 3}, Activation: "relu", InputShape: []int{150, 150, 3}},
		{Type: "MaxPooling2D", PoolSize: []int{2, 2}},
		{Type: "Conv2D", Filters: 64, KernelSize: []int{3, 3}, Activation: "relu"},
		{Type: "MaxPooling2D", PoolSize: []int{2, 2}},
		{Type: "Conv2D", Filters: 128, KernelSize: []int{3, 3}, Activation: "relu"},
		{Type: "MaxPooling2D", PoolSize: []int{2, 2}},
		{Type: "Flatten"},
		{Type: "Dense", Units: 512, Activation: "relu"},
		{Type: "Dense", Units: 1, Activation: "sigmoid"},
	}}
	m, err := NewModel(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Keras reports 19,034,177 parameters for this model (17x17x128 = 36992 flattened).
	if got, want := len(m.Params), 19034177; got != want {
		t.Errorf("parameters = %d, want %d", got, want)
	}
	if got, want := m.layers[6].out.c, 36992; got != want {
		t.Errorf("flatten size = %d, want %d", got, want)
	}
}
