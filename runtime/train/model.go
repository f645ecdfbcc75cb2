package train

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Model is a resolved Sequential model with its parameters. All weights and
// biases live in one flat float32 vector (Params) so that optimizers and
// checkpoints handle them as a whole. Convolution weights are stored
// [kernel_h][kernel_w][in_channels][filters] and dense weights [in][out];
// activations are NHWC, and Flatten keeps the (h, w, c) order, as in Keras.
type Model struct {
	Spec   ModelSpec
	Params []float32

	layers []*layer
	in     shape
	out    shape
}

// NewModel resolves spec and initialises its parameters from seed.
func NewModel(spec ModelSpec, seed uint64) (*Model, error) {
	layers, in, err := spec.resolve()
	if err != nil {
		return nil, err
	}
	n := 0
	for _, l := range layers {
		n += l.wLen + l.bLen
	}
	m := &Model{Spec: spec, Params: make([]float32, n), layers: layers, in: in, out: layers[len(layers)-1].out}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for _, l := range layers {
		if l.wLen == 0 {
			continue
		}
		w := m.Params[l.wOff : l.wOff+l.wLen]
		fanIn, fanOut := float64(l.fanIn()), float64(l.fanOut())
		switch l.init {
		case "he_uniform":
			lim := math.Sqrt(6 / fanIn)
			for i := range w {
				w[i] = float32((rng.Float64()*2 - 1) * lim)
			}
		case "he_normal":
			sd := math.Sqrt(2 / fanIn)
			for i := range w {
				w[i] = float32(truncNormal(rng) * sd)
			}
		case "glorot_uniform":
			lim := math.Sqrt(6 / (fanIn + fanOut))
			for i := range w {
				w[i] = float32((rng.Float64()*2 - 1) * lim)
			}
		case "glorot_normal":
			sd := math.Sqrt(2 / (fanIn + fanOut))
			for i := range w {
				w[i] = float32(truncNormal(rng) * sd)
			}
		}
	}
	return m, nil
}

func truncNormal(r *rand.Rand) float64 {
	for {
		v := r.NormFloat64()
		if v > -2 && v < 2 {
			return v / 0.87962566103423978 // keep the variance of the untruncated normal
		}
	}
}

// InputShape returns the per-sample input shape (height, width, channels, or
// a single feature count).
func (m *Model) InputShape() []int {
	if m.in.flat {
		return []int{m.in.c}
	}
	return []int{m.in.h, m.in.w, m.in.c}
}

// InputSize is the number of values in one input sample.
func (m *Model) InputSize() int { return m.in.size() }

// OutputSize is the number of values in one output sample.
func (m *Model) OutputSize() int { return m.out.size() }

// Summary describes each layer and its output shape, one line per layer.
func (m *Model) Summary() []string {
	var s []string
	for _, l := range m.layers {
		line := fmt.Sprintf("%-16s %-14s params=%d", l.name, l.out, l.wLen+l.bLen)
		if l.act != actLinear {
			line += " activation=" + l.act.String()
		}
		s = append(s, line)
	}
	return s
}

// finalActivation is the activation applied last by the model.
func (m *Model) finalActivation() activation {
	last := m.layers[len(m.layers)-1]
	if last.kind == kindConv || last.kind == kindDense || last.kind == kindAct {
		return last.act
	}
	return actLinear
}

// replica is one worker's view of a model: activation, gradient and scratch
// buffers for up to maxBatch samples, its own gemm and its own gradient
// vector. Parameters are shared, read-only during a step.
type replica struct {
	m        *Model
	maxBatch int
	g        *gemm
	skipLast bool // the last activation is fused into the loss
	acts     [][]float32
	dacts    [][]float32
	cols     [][]float32
	idx      [][]int32
	masks    [][]float32
	dcol     []float32
	grad     []float32
	inGrad   bool // compute the gradient of the input too (tests)
	simd     bool // use the AVX2 kernels
}

func newReplica(m *Model, maxBatch int, portable, skipLast bool) *replica {
	r := &replica{m: m, maxBatch: maxBatch, g: newGemm(portable), skipLast: skipLast, simd: !portable && haveFMA()}
	n := len(m.layers)
	r.acts = make([][]float32, n+1)
	r.dacts = make([][]float32, n+1)
	r.cols = make([][]float32, n)
	r.idx = make([][]int32, n)
	r.masks = make([][]float32, n)
	r.dacts[0] = make([]float32, maxBatch*m.in.size())
	dcol := 0
	for i, l := range m.layers {
		r.acts[i+1] = make([]float32, maxBatch*l.out.size())
		r.dacts[i+1] = make([]float32, maxBatch*l.out.size())
		switch l.kind {
		case kindConv:
			sz := maxBatch * l.out.h * l.out.w * l.kh * l.kw * l.in.c
			r.cols[i] = make([]float32, sz)
			dcol = max(dcol, sz)
		case kindPool:
			r.idx[i] = make([]int32, maxBatch*l.out.size())
		case kindDropout:
			r.masks[i] = make([]float32, maxBatch*l.out.size())
		}
	}
	r.dcol = make([]float32, dcol)
	r.grad = make([]float32, len(m.Params))
	return r
}

// dropoutSeed identifies the random stream of one sample in one step, so
// that masks do not depend on how the batch is split between workers.
type dropoutSeed struct {
	seed   uint64
	step   uint64
	sample int // index of the first sample of this shard in the batch
}

// forward runs n samples x through the model and returns the output buffer
// (n * OutputSize values). train enables dropout.
func (r *replica) forward(x []float32, n int, train bool, ds dropoutSeed) []float32 {
	r.acts[0] = x[:n*r.m.in.size()]
	p := r.m.Params
	for i, l := range r.m.layers {
		in := r.acts[i][:n*l.in.size()]
		out := r.acts[i+1][:n*l.out.size()]
		act := l.act
		if r.skipLast && i == len(r.m.layers)-1 {
			act = actLinear
		}
		switch l.kind {
		case kindConv:
			col := r.cols[i][:n*l.out.h*l.out.w*l.kh*l.kw*l.in.c]
			im2col(l, in, n, col)
			rows := n * l.out.h * l.out.w
			k := l.kh * l.kw * l.in.c
			r.g.mul(false, false, rows, l.out.c, k, col, k, p[l.wOff:l.wOff+l.wLen], l.out.c, false, out, l.out.c)
			biasActivate(act, out, p[l.bOff:l.bOff+l.bLen])
		case kindDense:
			r.g.mul(false, false, n, l.out.c, l.in.c, in, l.in.c, p[l.wOff:l.wOff+l.wLen], l.out.c, false, out, l.out.c)
			biasActivate(act, out, p[l.bOff:l.bOff+l.bLen])
		case kindPool:
			if r.simd && fastPool(l) {
				maxPool2x2(l, in, n, out)
				continue
			}
			maxPool(l, in, n, out, r.idx[i][:len(out)])
		case kindFlatten:
			copy(out, in)
		case kindDropout:
			if !train || l.rate == 0 {
				copy(out, in)
				continue
			}
			mask := r.masks[i][:len(out)]
			per := l.out.size()
			scale := 1 / (1 - l.rate)
			for s := 0; s < n; s++ {
				rng := rand.New(rand.NewPCG(ds.seed^uint64(i+1)*0xbf58476d1ce4e5b9, ds.step<<20|uint64(ds.sample+s)))
				for j := s * per; j < (s+1)*per; j++ {
					if rng.Float32() < l.rate {
						mask[j] = 0
					} else {
						mask[j] = scale
					}
					out[j] = in[j] * mask[j]
				}
			}
		case kindAct:
			copy(out, in)
			activate(act, out, l.out.c)
		}
	}
	return r.acts[len(r.m.layers)][:n*r.m.out.size()]
}

// backward propagates dOut (the loss gradient with respect to the output of
// the last forward call) and accumulates parameter gradients into r.grad.
// dOut is overwritten.
func (r *replica) backward(dOut []float32, n int) {
	p := r.m.Params
	L := len(r.m.layers)
	copy(r.dacts[L], dOut)
	for i := L - 1; i >= 0; i-- {
		l := r.m.layers[i]
		in := r.acts[i][:n*l.in.size()]
		out := r.acts[i+1][:n*l.out.size()]
		dy := r.dacts[i+1][:n*l.out.size()]
		var dx []float32
		if i > 0 || r.inGrad {
			dx = r.dacts[i][:n*l.in.size()]
		}
		act := l.act
		if r.skipLast && i == L-1 {
			act = actLinear
		}
		switch l.kind {
		case kindConv:
			activateBackward(act, out, dy, l.out.c)
			rows := n * l.out.h * l.out.w
			db := r.grad[l.bOff : l.bOff+l.bLen]
			for j := 0; j < rows; j++ {
				row := dy[j*l.out.c : (j+1)*l.out.c]
				for c, v := range row {
					db[c] += v
				}
			}
			k := l.kh * l.kw * l.in.c
			col := r.cols[i][:rows*k]
			r.g.mul(true, false, k, l.out.c, rows, col, k, dy, l.out.c, true, r.grad[l.wOff:l.wOff+l.wLen], l.out.c)
			if dx != nil {
				dcol := r.dcol[:rows*k]
				r.g.mul(false, true, rows, k, l.out.c, dy, l.out.c, p[l.wOff:l.wOff+l.wLen], l.out.c, false, dcol, k)
				col2im(l, dcol, n, dx)
			}
		case kindDense:
			activateBackward(act, out, dy, l.out.c)
			db := r.grad[l.bOff : l.bOff+l.bLen]
			for j := 0; j < n; j++ {
				row := dy[j*l.out.c : (j+1)*l.out.c]
				for c, v := range row {
					db[c] += v
				}
			}
			r.g.mul(true, false, l.in.c, l.out.c, n, in, l.in.c, dy, l.out.c, true, r.grad[l.wOff:l.wOff+l.wLen], l.out.c)
			if dx != nil {
				r.g.mul(false, true, n, l.in.c, l.out.c, dy, l.out.c, p[l.wOff:l.wOff+l.wLen], l.out.c, false, dx, l.in.c)
			}
		case kindPool:
			if dx != nil && r.simd && fastPool(l) {
				maxPool2x2Back(l, in, n, out, dy, dx)
				continue
			}
			if dx != nil {
				clear(dx)
				for j, src := range r.idx[i][:len(dy)] {
					dx[src] += dy[j]
				}
			}
		case kindFlatten:
			if dx != nil {
				copy(dx, dy)
			}
		case kindDropout:
			if dx == nil {
				continue
			}
			if l.rate == 0 {
				copy(dx, dy)
				continue
			}
			mask := r.masks[i][:len(dy)]
			for j := range dx {
				dx[j] = dy[j] * mask[j]
			}
		case kindAct:
			if dx != nil {
				activateBackward(act, out, dy, l.out.c)
				copy(dx, dy)
			}
		}
	}
}

// im2col lays out the receptive field of every output pixel as one row of
// kh*kw*c values (kernel row, kernel column, channel), zero where the field
// overlaps the padding.
func im2col(l *layer, x []float32, n int, col []float32) {
	ih, iw, c := l.in.h, l.in.w, l.in.c
	oh, ow := l.out.h, l.out.w
	k := l.kh * l.kw * c
	for s := 0; s < n; s++ {
		img := x[s*ih*iw*c : (s+1)*ih*iw*c]
		for y := 0; y < oh; y++ {
			for xx := 0; xx < ow; xx++ {
				row := col[((s*oh+y)*ow+xx)*k : ((s*oh+y)*ow+xx+1)*k]
				y0 := y*l.sh - l.padT
				x0 := xx*l.sw - l.padL
				for ky := 0; ky < l.kh; ky++ {
					yy := y0 + ky
					dst := row[ky*l.kw*c : (ky+1)*l.kw*c]
					if yy < 0 || yy >= ih {
						clear(dst)
						continue
					}
					if x0 >= 0 && x0+l.kw <= iw {
						copy(dst, img[(yy*iw+x0)*c:(yy*iw+x0+l.kw)*c])
						continue
					}
					for kx := 0; kx < l.kw; kx++ {
						xi := x0 + kx
						d := dst[kx*c : (kx+1)*c]
						if xi < 0 || xi >= iw {
							clear(d)
						} else {
							copy(d, img[(yy*iw+xi)*c:(yy*iw+xi+1)*c])
						}
					}
				}
			}
		}
	}
}

// col2im is the adjoint of im2col: it sums the rows of dcol back into the
// image gradient dx, which it overwrites.
func col2im(l *layer, dcol []float32, n int, dx []float32) {
	ih, iw, c := l.in.h, l.in.w, l.in.c
	oh, ow := l.out.h, l.out.w
	k := l.kh * l.kw * c
	clear(dx[:n*ih*iw*c])
	for s := 0; s < n; s++ {
		img := dx[s*ih*iw*c : (s+1)*ih*iw*c]
		for y := 0; y < oh; y++ {
			for xx := 0; xx < ow; xx++ {
				row := dcol[((s*oh+y)*ow+xx)*k : ((s*oh+y)*ow+xx+1)*k]
				y0 := y*l.sh - l.padT
				x0 := xx*l.sw - l.padL
				for ky := 0; ky < l.kh; ky++ {
					yy := y0 + ky
					if yy < 0 || yy >= ih {
						continue
					}
					for kx := 0; kx < l.kw; kx++ {
						xi := x0 + kx
						if xi < 0 || xi >= iw {
							continue
						}
						src := row[(ky*l.kw+kx)*c : (ky*l.kw+kx+1)*c]
						dst := img[(yy*iw+xi)*c : (yy*iw+xi+1)*c]
						for j, v := range src {
							dst[j] += v
						}
					}
				}
			}
		}
	}
}

// maxPool computes the window maxima and records, for each output, the
// index into x of the winning input (the first one on ties).
func maxPool(l *layer, x []float32, n int, out []float32, idx []int32) {
	ih, iw, c := l.in.h, l.in.w, l.in.c
	oh, ow := l.out.h, l.out.w
	for s := 0; s < n; s++ {
		base := s * ih * iw * c
		for y := 0; y < oh; y++ {
			for xx := 0; xx < ow; xx++ {
				o := ((s*oh+y)*ow + xx) * c
				first := base + (y*l.sh*iw+xx*l.sw)*c
				copy(out[o:o+c], x[first:first+c])
				for ch := 0; ch < c; ch++ {
					idx[o+ch] = int32(first + ch)
				}
				for ky := 0; ky < l.kh; ky++ {
					for kx := 0; kx < l.kw; kx++ {
						if ky == 0 && kx == 0 {
							continue
						}
						src := base + ((y*l.sh+ky)*iw+xx*l.sw+kx)*c
						for ch := 0; ch < c; ch++ {
							if v := x[src+ch]; v > out[o+ch] {
								out[o+ch] = v
								idx[o+ch] = int32(src + ch)
							}
						}
					}
				}
			}
		}
	}
}

// biasActivate adds bias to every row of y (rows of len(bias) values) and
// applies a, in one pass for ReLU.
func biasActivate(a activation, y, bias []float32) {
	c := len(bias)
	if a == actReLU {
		for j := 0; j+c <= len(y); j += c {
			row := y[j : j+c]
			for i, b := range bias {
				v := math.Float32bits(row[i] + b)
				row[i] = math.Float32frombits(v &^ uint32(int32(v)>>31))
			}
		}
		return
	}
	for j := 0; j+c <= len(y); j += c {
		row := y[j : j+c]
		for i, b := range bias {
			row[i] += b
		}
	}
	activate(a, y, c)
}

// activate applies a in place; softmax works over each run of c values.
func activate(a activation, y []float32, c int) {
	switch a {
	case actReLU:
		// Branch-free: clear values whose sign bit is set (random signs
		// defeat the branch predictor).
		for i, v := range y {
			b := math.Float32bits(v)
			y[i] = math.Float32frombits(b &^ uint32(int32(b)>>31))
		}
	case actSigmoid:
		for i, v := range y {
			y[i] = sigmoid(v)
		}
	case actSoftmax:
		for j := 0; j+c <= len(y); j += c {
			softmaxRow(y[j : j+c])
		}
	}
}

// activateBackward turns dy (gradient with respect to the activation's
// output y) into the gradient with respect to its input, in place.
func activateBackward(a activation, y, dy []float32, c int) {
	switch a {
	case actReLU:
		// y >= 0 after ReLU; keep dy where y > 0, branch-free.
		dy = dy[:len(y)]
		for i, v := range y {
			keep := uint32(int32(math.Float32bits(v)-1) >> 31) // all ones when y == 0
			dy[i] = math.Float32frombits(math.Float32bits(dy[i]) &^ keep)
		}
	case actSigmoid:
		for i, v := range y {
			dy[i] *= v * (1 - v)
		}
	case actSoftmax:
		for j := 0; j+c <= len(y); j += c {
			yr, dr := y[j:j+c], dy[j:j+c]
			var dot float32
			for k := range yr {
				dot += yr[k] * dr[k]
			}
			for k := range yr {
				dr[k] = yr[k] * (dr[k] - dot)
			}
		}
	}
}

func sigmoid(v float32) float32 {
	if v >= 0 {
		return float32(1 / (1 + math.Exp(-float64(v))))
	}
	e := math.Exp(float64(v))
	return float32(e / (1 + e))
}

func softmaxRow(z []float32) {
	m := z[0]
	for _, v := range z {
		m = max(m, v)
	}
	var sum float64
	for i, v := range z {
		e := math.Exp(float64(v - m))
		z[i] = float32(e)
		sum += e
	}
	inv := float32(1 / sum)
	for i := range z {
		z[i] *= inv
	}
}
