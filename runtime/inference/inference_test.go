package inference_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference/onnxtest"
)

func newRuntime(t *testing.T) *inference.Runtime {
	t.Helper()
	lib := os.Getenv("HADRON_ORT_LIBRARY")
	if lib == "" {
		t.Skip("ONNX Runtime not configured: run make test or export HADRON_ORT_LIBRARY=/path/to/libonnxruntime.so.1")
	}
	rt, err := inference.NewRuntime(inference.Options{LibraryPath: lib, ExecutionProvider: "cpu", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

func load(t *testing.T, rt *inference.Runtime, g *onnxtest.Graph) *inference.Session {
	t.Helper()
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := rt.LoadBytes(b, inference.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestCNNSignatureAndBatchInvariance(t *testing.T) {
	rt := newRuntime(t)
	s, err := rt.Load(filepath.Join("testdata", "cnn.onnx"), inference.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := inference.Signature{
		Inputs:  []inference.TensorInfo{{Name: "image", DType: inference.FP32, Shape: []int64{-1, 1, 28, 28}}},
		Outputs: []inference.TensorInfo{{Name: "logits", DType: inference.FP32, Shape: []int64{-1, 10}}},
	}
	if got := s.Signature(); !reflect.DeepEqual(got, want) {
		t.Fatalf("signature: got %+v, want %+v", got, want)
	}
	if got := s.Provider(); got != "cpu" {
		t.Errorf("provider: got %q, want cpu", got)
	}
	const n = 4
	batch, _ := inference.NewTensor(inference.FP32, []int64{n, 1, 28, 28})
	for i := range batch.Data.([]float32) {
		batch.Data.([]float32)[i] = float32(i%255) / 255
	}
	out, err := s.Run(map[string]*inference.Tensor{"image": batch}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logits := out["logits"]
	if !reflect.DeepEqual(logits.Shape, []int64{n, 10}) {
		t.Fatalf("logits shape: got %v, want [%d 10]", logits.Shape, n)
	}
	rows, _ := inference.SplitRows(batch, []int64{1, 1, 1, 1})
	for i, r := range rows {
		o, err := s.Run(map[string]*inference.Tensor{"image": r}, []string{"logits"})
		if err != nil {
			t.Fatal(err)
		}
		got := o["logits"].Data.([]float32)
		want := logits.Data.([]float32)[i*10 : i*10+10]
		for j := range got {
			if d := math.Abs(float64(got[j] - want[j])); d > 1e-4*(1+math.Abs(float64(want[j]))) {
				t.Errorf("row %d logit %d: alone %g, batched %g", i, j, got[j], want[j])
			}
		}
	}
}

func TestIdentityEveryDType(t *testing.T) {
	rt := newRuntime(t)
	samples := map[inference.DType]any{
		inference.Bool:   []bool{true, false, true, true, false, false},
		inference.Uint8:  []uint8{0, 1, 2, 253, 254, 255},
		inference.Uint16: []uint16{0, 1, 65535, 4, 5, 6},
		inference.Uint32: []uint32{0, 1, 1 << 31, 4, 5, 6},
		inference.Uint64: []uint64{0, 1, 1 << 63, 4, 5, 6},
		inference.Int8:   []int8{-128, -1, 0, 1, 2, 127},
		inference.Int16:  []int16{-32768, -1, 0, 1, 2, 32767},
		inference.Int32:  []int32{math.MinInt32, -1, 0, 1, 2, math.MaxInt32},
		inference.Int64:  []int64{math.MinInt64, -1, 0, 1, 2, math.MaxInt64},
		inference.FP16:   []uint16{0x3c00, 0xbc00, 0x7c00, 0x0001, 0x7bff, 0},
		inference.FP32:   []float32{-1.5, 0, 1e-30, 3.25, float32(math.Inf(1)), 7},
		inference.FP64:   []float64{-1.5, 0, 1e-300, 3.25, math.Inf(-1), 7},
		inference.Bytes:  []string{"", "a", "héllo", "\x01\xff", "x", "longer string"},
	}
	for _, dt := range inference.DTypes {
		t.Run(string(dt), func(t *testing.T) {
			g := &onnxtest.Graph{
				Name:    "identity",
				Nodes:   []onnxtest.Node{{Op: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
				Inputs:  []onnxtest.Value{{Name: "x", DType: dt, Shape: []int64{-1, 3}}},
				Outputs: []onnxtest.Value{{Name: "y", DType: dt, Shape: []int64{-1, 3}}},
			}
			if dt == inference.FP16 {
				// onnxruntime_go can only return FP16 outputs of static shape.
				g.Inputs[0].Shape, g.Outputs[0].Shape = []int64{2, 3}, []int64{2, 3}
			}
			s := load(t, rt, g)
			in := &inference.Tensor{DType: dt, Shape: []int64{2, 3}, Data: samples[dt]}
			out, err := s.Run(map[string]*inference.Tensor{"x": in}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := out["y"]; !reflect.DeepEqual(got, in) {
				t.Errorf("got %+v, want %+v", got, in)
			}
		})
	}
}

func TestScalarAndEmptyOutputs(t *testing.T) {
	rt := newRuntime(t)
	g := &onnxtest.Graph{
		Name: "reduce",
		Nodes: []onnxtest.Node{
			{Op: "ReduceSum", Inputs: []string{"x"}, Outputs: []string{"sum"}, Attrs: []onnxtest.Attr{{Name: "keepdims", Value: int64(0)}}},
			{Op: "Identity", Inputs: []string{"x"}, Outputs: []string{"same"}},
		},
		Inputs:  []onnxtest.Value{{Name: "x", DType: inference.FP32, Shape: []int64{-1}}},
		Outputs: []onnxtest.Value{{Name: "sum", DType: inference.FP32, Shape: []int64{}}, {Name: "same", DType: inference.FP32, Shape: []int64{-1}}},
	}
	s := load(t, rt, g)
	tests := []struct {
		in      []float32
		wantSum float32
	}{
		{[]float32{1, 2, 3.5}, 6.5},
		{[]float32{}, 0},
	}
	for _, tt := range tests {
		x := &inference.Tensor{DType: inference.FP32, Shape: []int64{int64(len(tt.in))}, Data: tt.in}
		out, err := s.Run(map[string]*inference.Tensor{"x": x}, nil)
		if err != nil {
			t.Fatalf("input %v: %v", tt.in, err)
		}
		sum := out["sum"]
		if len(sum.Shape) != 0 || sum.Data.([]float32)[0] != tt.wantSum {
			t.Errorf("input %v: sum got %v %v, want [] [%g]", tt.in, sum.Shape, sum.Data, tt.wantSum)
		}
		if got := out["same"].Data.([]float32); len(got) != len(tt.in) {
			t.Errorf("input %v: identity got %v", tt.in, got)
		}
	}
}

func TestRunRejectsBadInputs(t *testing.T) {
	rt := newRuntime(t)
	s, err := rt.Load(filepath.Join("testdata", "cnn.onnx"), inference.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	good, _ := inference.NewTensor(inference.FP32, []int64{1, 1, 28, 28})
	tests := []struct {
		name    string
		inputs  map[string]*inference.Tensor
		outputs []string
		want    string
	}{
		{"missing", map[string]*inference.Tensor{}, nil, `missing input "image" (FP32 [-1 1 28 28])`},
		{"unknown", map[string]*inference.Tensor{"image": good, "x": good}, nil, `unknown input "x": model inputs are image`},
		{"dtype", map[string]*inference.Tensor{"image": {DType: inference.FP64, Shape: []int64{1, 1, 28, 28}, Data: make([]float64, 784)}}, nil, `input "image": datatype FP64, expected FP32`},
		{"shape", map[string]*inference.Tensor{"image": {DType: inference.FP32, Shape: []int64{1, 1, 28, 27}, Data: make([]float32, 756)}}, nil, `input "image": shape [1 1 28 27], expected [-1 1 28 28] (-1 is any size)`},
		{"count", map[string]*inference.Tensor{"image": {DType: inference.FP32, Shape: []int64{1, 1, 28, 28}, Data: make([]float32, 3)}}, nil, `input "image": shape [1 1 28 28] needs 784 elements, got 3`},
		{"output", map[string]*inference.Tensor{"image": good}, []string{"probs"}, `unknown output "probs": model outputs are logits`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Run(tt.inputs, tt.outputs)
			var ie *inference.InputError
			if !errors.As(err, &ie) || err.Error() != tt.want {
				t.Errorf("got %v, want InputError %q", err, tt.want)
			}
		})
	}
}

func TestProviderSelection(t *testing.T) {
	rt := newRuntime(t)
	b, _ := onnxtest.CNN(1).Marshal()
	s, err := rt.LoadBytes(b, inference.SessionOptions{ExecutionProvider: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := "cpu"
	if rt.CUDAAvailable() {
		want = "cuda"
	}
	if got := s.Provider(); got != want {
		t.Errorf("auto provider: got %q, want %q", got, want)
	}
	_, err = rt.LoadBytes(b, inference.SessionOptions{ExecutionProvider: "cuda"})
	if rt.CUDAAvailable() == (err != nil) {
		t.Errorf("cuda provider with CUDAAvailable=%v: got error %v", rt.CUDAAvailable(), err)
	}
	if _, err := rt.LoadBytes(b, inference.SessionOptions{ExecutionProvider: "tpu"}); err == nil {
		t.Error("provider tpu: got no error")
	}
}

func TestFloat16RoundTrip(t *testing.T) {
	tests := []struct {
		f    float32
		bits uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {float32(math.Inf(1)), 0x7c00},
		{5.960464477539063e-08, 0x0001}, {0.333251953125, 0x3555}, {1e6, 0x7c00},
	}
	for _, tt := range tests {
		if got := inference.Float32ToFloat16(tt.f); got != tt.bits {
			t.Errorf("Float32ToFloat16(%g): got %#04x, want %#04x", tt.f, got, tt.bits)
		}
		if tt.f != 1e6 {
			if got := inference.Float16ToFloat32(tt.bits); got != tt.f {
				t.Errorf("Float16ToFloat32(%#04x): got %g, want %g", tt.bits, got, tt.f)
			}
		}
	}
	if got := inference.Float16ToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("Float16ToFloat32(NaN): got %g", got)
	}
}

func TestNewRuntimeRejects(t *testing.T) {
	rt := newRuntime(t)
	lib := os.Getenv("HADRON_ORT_LIBRARY")
	tests := []struct {
		name string
		opts inference.Options
		want string
	}{
		{"no library", inference.Options{}, "creating ONNX Runtime: library path is empty"},
		{"provider", inference.Options{LibraryPath: lib, ExecutionProvider: "tpu"}, `execution provider "tpu" is not one of auto, cpu, cuda`},
		{"threads", inference.Options{LibraryPath: lib, IntraOpThreads: -1}, "intra_op_threads -1 is negative"},
		{"second library", inference.Options{LibraryPath: lib + ".other"}, "already loaded from " + lib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := inference.NewRuntime(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if got := rt.Version(); got == "" {
		t.Error("Version: got empty")
	}
}

func TestCloseRuntimeClosesSessions(t *testing.T) {
	lib := ortLib(t)
	rt, err := inference.NewRuntime(inference.Options{LibraryPath: lib, ExecutionProvider: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := rt.Load(filepath.Join("testdata", "cnn.onnx"), inference.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	in, _ := inference.NewTensor(inference.FP32, []int64{1, 1, 28, 28})
	if _, err := s.Run(map[string]*inference.Tensor{"image": in}, nil); err == nil || !strings.Contains(err.Error(), "session is closed") {
		t.Errorf("Run after Close: got %v, want session is closed", err)
	}
	if _, err := rt.Load(filepath.Join("testdata", "cnn.onnx"), inference.SessionOptions{}); err == nil {
		t.Error("Load after Close: got no error")
	}
}

func ortLib(t *testing.T) string {
	lib := os.Getenv("HADRON_ORT_LIBRARY")
	if lib == "" {
		t.Skip("ONNX Runtime not configured: run make test or export HADRON_ORT_LIBRARY=/path/to/libonnxruntime.so.1")
	}
	return lib
}

// TestProbeModelIsCurrent checks that the CUDA probe's embedded model is the
// one onnxtest builds and that it runs.
func TestProbeModelIsCurrent(t *testing.T) {
	rt := newRuntime(t)
	g := &onnxtest.Graph{Name: "probe", Nodes: []onnxtest.Node{{Op: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Inputs:  []onnxtest.Value{{Name: "x", DType: inference.FP32, Shape: []int64{1}}},
		Outputs: []onnxtest.Value{{Name: "y", DType: inference.FP32, Shape: []int64{1}}}}
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := inference.ProbeModel(); got != string(b) {
		t.Fatalf("probe model: got %q, want %q", got, b)
	}
	s, err := rt.LoadBytes(b, inference.SessionOptions{ExecutionProvider: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(map[string]*inference.Tensor{"x": {DType: inference.FP32, Shape: []int64{1}, Data: []float32{4}}}, nil)
	if err != nil || out["y"].Data.([]float32)[0] != 4 {
		t.Fatalf("probe model run: got %v, %v", out, err)
	}
}
