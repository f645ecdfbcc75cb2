package train

import (
	"math/rand/v2"
	"testing"
)

// benchmarkSpec is the Fashion-MNIST benchmark CNN of the issue.
func benchmarkSpec() ModelSpec {
	return ModelSpec{InputShape: []int{28, 28, 1}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 32, KernelSize: []int{3, 3}, Activation: "relu"},
		{Type: "max_pooling2d"},
		{Type: "conv2d", Filters: 64, KernelSize: []int{3, 3}, Activation: "relu"},
		{Type: "max_pooling2d"},
		{Type: "conv2d", Filters: 128, KernelSize: []int{3, 3}, Activation: "relu"},
		{Type: "max_pooling2d"},
		{Type: "flatten"},
		{Type: "dense", Units: 512, Activation: "relu"},
		{Type: "dense", Units: 10},
	}}
}

// BenchmarkTrainStep measures one Adam step of the benchmark CNN on a batch
// of 64 with two workers; it reports samples per second.
func BenchmarkTrainStep(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(map[int]string{1: "workers1", 2: "workers2"}[workers], func(b *testing.B) {
			m, err := NewModel(benchmarkSpec(), 1)
			if err != nil {
				b.Fatal(err)
			}
			opt, _ := newOptimizer(OptimizerSpec{}, len(m.Params))
			tr, err := newTrainer(m, lossCE, opt, workers, 64, false, 1)
			if err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 1))
			x := make([]float32, 64*784)
			for i := range x {
				x[i] = r.Float32()
			}
			y := make([]int32, 64)
			for i := range y {
				y[i] = int32(r.IntN(10))
			}
			b.ResetTimer()
			for i := range b.N {
				tr.step(x, y, 64, uint64(i))
			}
			b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
