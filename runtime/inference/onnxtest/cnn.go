package onnxtest

import (
	"math"
	"math/rand/v2"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// CNN returns the seed image classifier with fixed pseudo-random weights:
// image [N,1,28,28] FP32 -> Conv 32 -> MaxPool -> Conv 64 -> MaxPool ->
// Conv 128 -> MaxPool -> Flatten -> Dense 512 -> Dense 10 -> logits [N,10].
func CNN(seed uint64) *Graph { return CNNWidth(seed, 32, 64, 128, 512) }

// Linear returns a linear classifier with the CNN's signature, image
// [N,1,28,28] FP32 -> Flatten -> Dense 10 -> logits [N,10]: about 16 kFLOP
// per image, so that serving it measures the cost of everything but compute.
func Linear(seed uint64) *Graph {
	g := CNNWidth(seed, 1, 1, 1, 1)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w, _ := inference.NewTensor(inference.FP32, []int64{784, 10})
	for i := range w.Data.([]float32) {
		w.Data.([]float32)[i] = float32((rng.Float64()*2 - 1) / 28)
	}
	b, _ := inference.NewTensor(inference.FP32, []int64{10})
	g.Name = "linear"
	g.Initializers = map[string]*inference.Tensor{"dense.w": w, "dense.b": b}
	g.Nodes = []Node{
		{Op: "Flatten", Inputs: []string{"image"}, Outputs: []string{"flat"}, Attrs: []Attr{{"axis", int64(1)}}},
		{Op: "Gemm", Inputs: []string{"flat", "dense.w", "dense.b"}, Outputs: []string{"logits"}},
	}
	return g
}

// CNNWidth is CNN with the given channel counts and dense width.
func CNNWidth(seed uint64, c1, c2, c3, dense int64) *Graph {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	init := map[string]*inference.Tensor{}
	param := func(name string, fanIn int, shape ...int64) string {
		t, _ := inference.NewTensor(inference.FP32, shape)
		lim := math.Sqrt(6 / float64(fanIn))
		for i := range t.Data.([]float32) {
			t.Data.([]float32)[i] = float32((rng.Float64()*2 - 1) * lim)
		}
		init[name] = t
		return name
	}
	conv := func(i int, in string, cin, cout int64) []Node {
		c := "conv" + string(rune('0'+i))
		return []Node{
			{Op: "Conv", Inputs: []string{in, param(c+".w", int(cin*9), cout, cin, 3, 3), param(c+".b", int(cin*9), cout)},
				Outputs: []string{c}, Attrs: []Attr{{"kernel_shape", []int64{3, 3}}, {"pads", []int64{1, 1, 1, 1}}}},
			{Op: "Relu", Inputs: []string{c}, Outputs: []string{c + ".relu"}},
			{Op: "MaxPool", Inputs: []string{c + ".relu"}, Outputs: []string{c + ".pool"},
				Attrs: []Attr{{"kernel_shape", []int64{2, 2}}, {"strides", []int64{2, 2}}}},
		}
	}
	var nodes []Node
	nodes = append(nodes, conv(1, "image", 1, c1)...)
	nodes = append(nodes, conv(2, "conv1.pool", c1, c2)...)
	nodes = append(nodes, conv(3, "conv2.pool", c2, c3)...)
	flat := c3 * 3 * 3
	nodes = append(nodes,
		Node{Op: "Flatten", Inputs: []string{"conv3.pool"}, Outputs: []string{"flat"}, Attrs: []Attr{{"axis", int64(1)}}},
		Node{Op: "Gemm", Inputs: []string{"flat", param("dense1.w", int(flat), flat, dense), param("dense1.b", int(flat), dense)}, Outputs: []string{"dense1"}},
		Node{Op: "Relu", Inputs: []string{"dense1"}, Outputs: []string{"dense1.relu"}},
		Node{Op: "Gemm", Inputs: []string{"dense1.relu", param("dense2.w", int(dense), dense, 10), param("dense2.b", int(dense), 10)}, Outputs: []string{"logits"}},
	)
	return &Graph{
		Name:         "cnn",
		Nodes:        nodes,
		Initializers: init,
		Inputs:       []Value{{Name: "image", DType: inference.FP32, Shape: []int64{-1, 1, 28, 28}}},
		Outputs:      []Value{{Name: "logits", DType: inference.FP32, Shape: []int64{-1, 10}}},
	}
}
