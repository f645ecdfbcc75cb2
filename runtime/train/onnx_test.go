package train_test

import (
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/train"
)

// exportCases are models covering every exported operator: conv with valid
// and same padding and strides, pooling, flatten, dense, dropout, and each
// activation, fused or standalone.
var exportCases = []struct {
	name string
	spec train.ModelSpec
}{
	{"fashion benchmark cnn", train.ModelSpec{InputShape: []int{28, 28, 1}, Layers: []train.LayerSpec{
		{Type: "conv2d", Filters: 32, KernelSize: []int{3, 3}, Activation: "relu"},
		{Type: "max_pooling2d"},
		{Type: "conv2d", Filters: 64, KernelSize: []int{3, 3}, Activation: "relu"},
		{Type: "max_pooling2d"},
		{Type: "conv2d", Filters: 128, KernelSize: []int{3, 3}, Activation: "relu"},
		{Type: "max_pooling2d"},
		{Type: "flatten"},
		{Type: "dense", Units: 512, Activation: "relu"},
		{Type: "dense", Units: 10},
	}}},
	{"same padding, strides, rgb, sigmoid output", train.ModelSpec{InputShape: []int{9, 7, 3}, Layers: []train.LayerSpec{
		{Type: "conv2d", Filters: 4, KernelSize: []int{3, 2}, Strides: []int{2, 1}, Padding: "same", Activation: "sigmoid"},
		{Type: "max_pooling2d", PoolSize: []int{2, 3}, Strides: []int{1, 1}},
		{Type: "conv2d", Filters: 3, KernelSize: []int{2, 2}, Activation: "softmax"},
		{Type: "flatten"},
		{Type: "dropout", Rate: 0.5},
		{Type: "dense", Units: 6},
		{Type: "relu"},
		{Type: "dense", Units: 1, Activation: "sigmoid"},
	}}},
	{"flat input, softmax layer", train.ModelSpec{InputShape: []int{12}, Layers: []train.LayerSpec{
		{Type: "dense", Units: 8, Activation: "relu"},
		{Type: "sigmoid"},
		{Type: "dense", Units: 3},
		{Type: "softmax"},
	}}},
}

func exportTo(t *testing.T, m *train.Model) string {
	t.Helper()
	b, err := m.ExportONNX("test")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestONNXChecker(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		t.Skipf("%s cannot import onnx (%v): run make test, which installs python3-onnx, or apt-get install python3-onnx", py, err)
	}
	for i, c := range exportCases {
		t.Run(c.name, func(t *testing.T) {
			m, err := train.NewModel(c.spec, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			path := exportTo(t, m)
			script := `import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
assert m.opset_import[0].version >= 13
d = m.graph.input[0].type.tensor_type.shape.dim[0]
assert d.dim_param == "batch", d`
			out, err := exec.Command(py, "-c", script, path).CombinedOutput()
			if err != nil {
				t.Fatalf("onnx checker rejected the export: %v\n%s", err, out)
			}
		})
	}
}

func TestONNXMatchesORT(t *testing.T) {
	lib := os.Getenv("HADRON_ORT_LIBRARY")
	if lib == "" {
		t.Skip("ONNX Runtime not configured: run make test or export HADRON_ORT_LIBRARY=/path/to/libonnxruntime.so.1")
	}
	rt, err := inference.NewRuntime(inference.Options{LibraryPath: lib, ExecutionProvider: "cpu", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	for i, c := range exportCases {
		t.Run(c.name, func(t *testing.T) {
			m, err := train.NewModel(c.spec, uint64(i+10))
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(5, uint64(i)))
			for j := range m.Params {
				m.Params[j] += float32(r.NormFloat64() * 0.01)
			}
			s, err := rt.Load(exportTo(t, m), inference.SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			const n = 5 // any batch size: the batch dimension is dynamic
			x := make([]float32, n*m.InputSize())
			for j := range x {
				x[j] = r.Float32()
			}
			shape := []int64{n}
			for _, d := range m.InputShape() {
				shape = append(shape, int64(d))
			}
			res, err := s.Run(map[string]*inference.Tensor{"input": {DType: inference.FP32, Shape: shape, Data: x}}, []string{"output"})
			if err != nil {
				t.Fatal(err)
			}
			got := res["output"].Data.([]float32)
			want := m.Predict(x, n)
			if len(got) != len(want) {
				t.Fatalf("ORT returned %d values, Go %d", len(got), len(want))
			}
			var worst float64
			for j := range got {
				worst = math.Max(worst, math.Abs(float64(got[j]-want[j])))
			}
			if worst > 1e-4 {
				t.Fatalf("max abs difference between ORT and the Go forward pass = %g, want <= 1e-4", worst)
			}
		})
	}
}
