package train

import (
	"fmt"
	"math"
	"strings"
)

// lossKind is a training loss. Cross-entropy losses take the logits of the
// last layer: when the model ends in softmax (or sigmoid for binary
// cross-entropy) that activation is fused into the loss during training, which
// is exact and numerically stable.
type lossKind int

const (
	lossCE lossKind = iota + 1
	lossBCE
	lossMSE
)

func parseLoss(s string) (lossKind, error) {
	switch strings.ToLower(strings.ReplaceAll(s, "-", "_")) {
	case "sparse_categorical_crossentropy", "categorical_crossentropy", "softmax_cross_entropy", "cross_entropy", "crossentropy":
		return lossCE, nil
	case "binary_crossentropy", "binary_cross_entropy", "bce":
		return lossBCE, nil
	case "mse", "mean_squared_error":
		return lossMSE, nil
	}
	return 0, fmt.Errorf("unknown loss %q (want sparse_categorical_crossentropy, binary_crossentropy or mse)", s)
}

func (k lossKind) String() string {
	return map[lossKind]string{lossCE: "sparse_categorical_crossentropy", lossBCE: "binary_crossentropy", lossMSE: "mse"}[k]
}

// fuses reports whether the model's final activation is folded into the loss
// and checks that the pairing makes sense.
func (k lossKind) fuses(final activation, outputs int) (bool, error) {
	switch k {
	case lossCE:
		if outputs < 2 {
			return false, fmt.Errorf("loss %s needs at least two outputs, the model has %d (use binary_crossentropy for one sigmoid output)", k, outputs)
		}
		switch final {
		case actSoftmax:
			return true, nil
		case actLinear:
			return false, nil
		}
		return false, fmt.Errorf("loss %s needs a softmax or linear last layer, got %s", k, final)
	case lossBCE:
		switch final {
		case actSigmoid:
			return true, nil
		case actLinear:
			return false, nil
		}
		return false, fmt.Errorf("loss %s needs a sigmoid or linear last layer, got %s", k, final)
	}
	return false, nil
}

// eval computes the loss of n samples (k outputs each) against integer
// labels. It returns the sum of per-sample losses and the number of correct
// predictions, and when dout is not nil writes scale * d(sum)/d(out) into it.
func (lk lossKind) eval(out []float32, labels []int32, n, k int, scale float32, dout []float32) (sum float64, correct int) {
	for s := 0; s < n; s++ {
		z := out[s*k : (s+1)*k]
		y := int(labels[s])
		var d []float32
		if dout != nil {
			d = dout[s*k : (s+1)*k]
		}
		switch lk {
		case lossCE:
			m := z[0]
			for _, v := range z {
				m = max(m, v)
			}
			var se float64
			for _, v := range z {
				se += math.Exp(float64(v - m))
			}
			lse := math.Log(se) + float64(m)
			sum += lse - float64(z[y])
			if argmax(z) == y {
				correct++
			}
			for j := range d {
				p := math.Exp(float64(z[j]) - lse)
				if j == y {
					p--
				}
				d[j] = float32(p) * scale
			}
		case lossBCE:
			for j, v := range z {
				t := 0.0
				if (k == 1 && y == 1) || (k > 1 && j == y) {
					t = 1
				}
				x := float64(v)
				sum += (math.Max(x, 0) - x*t + math.Log1p(math.Exp(-math.Abs(x)))) / float64(k)
				if d != nil {
					d[j] = (float32(1/(1+math.Exp(-x))) - float32(t)) * scale / float32(k)
				}
			}
			if (k == 1 && (z[0] > 0) == (y == 1)) || (k > 1 && argmax(z) == y) {
				correct++
			}
		case lossMSE:
			for j, v := range z {
				t := float32(0)
				if k == 1 {
					t = float32(y)
				} else if j == y {
					t = 1
				}
				e := v - t
				sum += float64(e) * float64(e) / float64(k)
				if d != nil {
					d[j] = 2 * e * scale / float32(k)
				}
			}
			if (k == 1 && int(math.Round(float64(z[0]))) == y) || (k > 1 && argmax(z) == y) {
				correct++
			}
		}
	}
	return sum, correct
}

func argmax(z []float32) int {
	best := 0
	for i, v := range z {
		if v > z[best] {
			best = i
		}
	}
	return best
}
