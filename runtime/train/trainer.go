package train

import (
	"fmt"
	"sync"
)

// trainer runs data-parallel steps: each worker owns a replica and takes a
// contiguous shard of the batch; gradients are summed in worker order, so a
// fixed seed and worker count give bit-identical results run to run.
type trainer struct {
	m       *Model
	loss    lossKind
	opt     *optimizer
	workers []*replica
	fused   bool
	seed    uint64
	grad    []float32
}

func newTrainer(m *Model, loss lossKind, opt *optimizer, workers, batch int, portable bool, seed uint64) (*trainer, error) {
	if workers < 1 {
		workers = 1
	}
	if batch < 1 {
		return nil, fmt.Errorf("batch size must be positive, got %d", batch)
	}
	fused, err := loss.fuses(m.finalActivation(), m.out.size())
	if err != nil {
		return nil, err
	}
	workers = min(workers, batch)
	per := (batch + workers - 1) / workers
	t := &trainer{m: m, loss: loss, opt: opt, fused: fused, seed: seed, grad: make([]float32, len(m.Params))}
	for range workers {
		t.workers = append(t.workers, newReplica(m, per, portable, fused))
	}
	return t, nil
}

// checkLabels rejects labels the loss cannot use.
func (t *trainer) checkLabels(y []int32) error {
	k := t.m.out.size()
	for i, v := range y {
		bad := v < 0
		switch {
		case t.loss == lossCE || (k > 1):
			bad = bad || int(v) >= k
		case t.loss == lossBCE:
			bad = bad || v > 1
		}
		if bad {
			return fmt.Errorf("sample %d has label %d, which the model's %d output(s) and loss %s cannot represent", i, v, k, t.loss)
		}
	}
	return nil
}

// step trains on n samples (x, y) and returns the summed loss and the number
// of correct predictions before the update.
func (t *trainer) step(x []float32, y []int32, n int, step uint64) (float64, int) {
	W := len(t.workers)
	in, k := t.m.in.size(), t.m.out.size()
	losses := make([]float64, W)
	correct := make([]int, W)
	scale := 1 / float32(n)
	var wg sync.WaitGroup
	for w, r := range t.workers {
		lo, hi := w*n/W, (w+1)*n/W
		wg.Go(func() {
			clear(r.grad)
			if hi == lo {
				return
			}
			out := r.forward(x[lo*in:hi*in], hi-lo, true, dropoutSeed{seed: t.seed, step: step, sample: lo})
			dout := r.dacts[len(t.m.layers)][:(hi-lo)*k]
			losses[w], correct[w] = t.loss.eval(out, y[lo:hi], hi-lo, k, scale, dout)
			r.backward(dout, hi-lo)
		})
	}
	wg.Wait()
	copy(t.grad, t.workers[0].grad)
	for _, r := range t.workers[1:] {
		for i, v := range r.grad {
			t.grad[i] += v
		}
	}
	t.opt.step(t.m.Params, t.grad)
	var ls float64
	var c int
	for w := range W {
		ls += losses[w]
		c += correct[w]
	}
	return ls, c
}

// evaluate returns the summed loss and number of correct predictions over n
// samples without changing the model.
func (t *trainer) evaluate(x []float32, y []int32, n int) (float64, int) {
	W := len(t.workers)
	chunk := t.workers[0].maxBatch
	chunks := (n + chunk - 1) / chunk
	losses := make([]float64, chunks)
	correct := make([]int, chunks)
	in, k := t.m.in.size(), t.m.out.size()
	var wg sync.WaitGroup
	for w, r := range t.workers {
		wg.Go(func() {
			for c := w; c < chunks; c += W {
				lo, hi := c*chunk, min((c+1)*chunk, n)
				out := r.forward(x[lo*in:hi*in], hi-lo, false, dropoutSeed{})
				losses[c], correct[c] = t.loss.eval(out, y[lo:hi], hi-lo, k, 0, nil)
			}
		})
	}
	wg.Wait()
	var ls float64
	var c int
	for i := range chunks {
		ls += losses[i]
		c += correct[i]
	}
	return ls, c
}

// Predict runs the model on n samples of x (NHWC, InputSize values each)
// and returns n*OutputSize outputs, final activation included, as the
// exported ONNX graph computes them.
func (m *Model) Predict(x []float32, n int) []float32 {
	const chunk = 64
	r := newReplica(m, min(chunk, max(n, 1)), false, false)
	out := make([]float32, 0, n*m.out.size())
	in := m.in.size()
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		out = append(out, r.forward(x[lo*in:hi*in], hi-lo, false, dropoutSeed{})...)
	}
	return out
}
