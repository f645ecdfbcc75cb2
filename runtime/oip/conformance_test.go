package oip_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference/onnxtest"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/oip"
)

// conformanceRoot holds the ONNX backend node tests as Debian's
// libonnx-testdata package installs them: one folder per case with
// model.onnx and test_data_set_N/{input,output}_M.pb TensorProto files.
const conformanceRoot = "/usr/share/libonnx-testdata/data/node"

// Tolerances for floating-point outputs: those of ONNX's own backend test
// runner (numpy.testing.assert_allclose with rtol=1e-3, atol=1e-7).
const (
	conformanceRTol = 1e-3
	conformanceATol = 1e-7
)

// readExcluded parses "case-name  reason" lines; # starts a comment.
func readExcluded(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, _ := strings.Cut(line, " ")
		if strings.TrimSpace(reason) == "" {
			t.Fatalf("%s: case %s is excluded without a reason", path, name)
		}
		out[name] = strings.TrimSpace(reason)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConformance runs every ONNX backend node test through the server:
// the model is loaded through the management API, inputs are posted to
// the infer route (JSON or binary tensors, alternating) and the outputs are
// compared with the expected ones.
func TestConformance(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(conformanceRoot, "test_*"))
	if len(dirs) == 0 {
		t.Skipf("ONNX backend node tests not found under %s: run make test or bash internal/tools/prereqs.sh debs (Debian package libonnx-testdata)", conformanceRoot)
	}
	excluded := readExcluded(t, filepath.Join("testdata", "conformance_excluded.txt"))
	e := newEnv(t, oip.Config{MaxRequestBytes: 512 << 20})
	var passed, skipped atomic.Int64
	t.Run("node", func(t *testing.T) {
		for i, dir := range dirs {
			name := filepath.Base(dir)
			if _, ok := excluded[name]; ok {
				skipped.Add(1)
				continue
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				if err := runConformanceCase(e, name, dir, i); err != nil {
					t.Error(err)
					return
				}
				passed.Add(1)
			})
		}
	})
	for name := range excluded {
		if _, err := os.Stat(filepath.Join(conformanceRoot, name)); err != nil {
			t.Errorf("excluded case %s does not exist under %s", name, conformanceRoot)
		}
	}
	t.Logf("ONNX backend node tests: %d passed, %d excluded (testdata/conformance_excluded.txt), %d failed, of %d cases",
		passed.Load(), skipped.Load(), int64(len(dirs))-passed.Load()-skipped.Load(), len(dirs))
}

func runConformanceCase(e *env, name, dir string, index int) error {
	model, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(model)
	body, _ := json.Marshal(oip.LoadRequest{Version: "1", Source: filepath.Join(dir, "model.onnx"), SHA256: hex.EncodeToString(sum[:]), Config: oip.ModelConfig{IntraOpThreads: 1}})
	code, _, resp := e.do("PUT", "/v1/models/"+name, body, nil)
	if code != 200 {
		return fmt.Errorf("load: HTTP %d: %s", code, resp)
	}
	defer e.do("DELETE", "/v1/models/"+name, nil, nil)
	var st oip.ModelStatus
	if err := json.Unmarshal(resp, &st); err != nil {
		return err
	}
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if len(sets) == 0 {
		return errors.New("no test_data_set folders")
	}
	for _, set := range sets {
		inputs := map[string]*inference.Tensor{}
		for i, in := range st.Signature.Inputs {
			t, err := readTensor(filepath.Join(set, fmt.Sprintf("input_%d.pb", i)))
			if err != nil {
				return fmt.Errorf("%s input %d: %w", filepath.Base(set), i, err)
			}
			inputs[in.Name] = t
		}
		binaryIn := index%2 == 1 || needsBinary(inputs)
		got, err := inferOnce(e, name, inputs, binaryIn, index%3 == 0)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(set), err)
		}
		for i, out := range st.Signature.Outputs {
			want, err := readTensor(filepath.Join(set, fmt.Sprintf("output_%d.pb", i)))
			if err != nil {
				return fmt.Errorf("%s output %d: %w", filepath.Base(set), i, err)
			}
			if err := compareTensor(got[out.Name], want); err != nil {
				return fmt.Errorf("%s output %q: %w", filepath.Base(set), out.Name, err)
			}
		}
	}
	return nil
}

func readTensor(path string) (*inference.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, t, err := onnxtest.UnmarshalTensor(b)
	return t, err
}

// needsBinary reports inputs that JSON cannot carry exactly: BYTES that are
// not valid UTF-8.
func needsBinary(inputs map[string]*inference.Tensor) bool {
	for _, t := range inputs {
		if d, ok := t.Data.([]string); ok {
			for _, s := range d {
				if !json.Valid([]byte(fmt.Sprintf("%q", s))) || strings.ToValidUTF8(s, "\uFFFD") != s {
					return true
				}
			}
		}
	}
	return false
}

func compareTensor(got, want *inference.Tensor) error {
	if got == nil {
		return errors.New("missing from the response")
	}
	if got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) {
		return fmt.Errorf("got %s%v, want %s%v", got.DType, got.Shape, want.DType, want.Shape)
	}
	floats := func(t *inference.Tensor) []float64 {
		switch d := t.Data.(type) {
		case []float32:
			out := make([]float64, len(d))
			for i, v := range d {
				out[i] = float64(v)
			}
			return out
		case []float64:
			return d
		case []uint16:
			out := make([]float64, len(d))
			for i, v := range d {
				out[i] = float64(inference.Float16ToFloat32(v))
			}
			return out
		}
		return nil
	}
	switch want.DType {
	case inference.FP16, inference.FP32, inference.FP64:
		g, w := floats(got), floats(want)
		var bad []int
		for i := range w {
			if !closeTo(g[i], w[i], conformanceRTol, conformanceATol) {
				bad = append(bad, i)
			}
		}
		if len(bad) > 0 {
			sort.Ints(bad)
			i := bad[0]
			return fmt.Errorf("%d of %d elements differ beyond rtol %g atol %g; first at %d: got %v, want %v",
				len(bad), len(w), conformanceRTol, conformanceATol, i, g[i], w[i])
		}
		return nil
	}
	if !reflect.DeepEqual(got.Data, want.Data) {
		return fmt.Errorf("got %v, want %v", clip(got.Data), clip(want.Data))
	}
	return nil
}

func clip(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
