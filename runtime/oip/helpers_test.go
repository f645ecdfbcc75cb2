package oip_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference/onnxtest"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/oip"
)

const testToken = "s3cret-token"

// env is a server on a loopback httptest listener, behind the agent's
// token middleware, as the agent mounts it.
type env struct {
	t   *testing.T
	s   *oip.Server
	rt  *inference.Runtime
	url string
	dir string
}

func ortLibrary(t testing.TB) string {
	t.Helper()
	lib := os.Getenv("HADRON_ORT_LIBRARY")
	if lib == "" {
		t.Skip("ONNX Runtime not configured: run make test or export HADRON_ORT_LIBRARY=/path/to/libonnxruntime.so.1")
	}
	return lib
}

func newEnv(t *testing.T, cfg oip.Config) *env {
	t.Helper()
	rt, err := inference.NewRuntime(inference.Options{LibraryPath: ortLibrary(t), ExecutionProvider: "cpu", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	s, err := oip.New(cfg, oip.Deps{Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux, api.RequireToken(testToken))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		_ = s.Shutdown(t.Context())
	})
	return &env{t: t, s: s, rt: rt, url: srv.URL, dir: t.TempDir()}
}

// do sends a request with the token and returns status, headers and body.
func (e *env) do(method, path string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// writeModel stores an ONNX model in the test's folder and returns its path
// and sha256.
func (e *env) writeModel(name string, model []byte) (string, string) {
	e.t.Helper()
	path := filepath.Join(e.dir, name+".onnx")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256(model)
	return path, hex.EncodeToString(sum[:])
}

func marshal(t testing.TB, g *onnxtest.Graph) []byte {
	t.Helper()
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// load puts a model through the management API and fails the test unless
// it is served.
func (e *env) load(name, version string, model []byte, cfg oip.ModelConfig) oip.ModelStatus {
	e.t.Helper()
	path, sum := e.writeModel(name+"-"+version, model)
	body, _ := json.Marshal(oip.LoadRequest{Version: version, Source: path, SHA256: sum, Config: cfg})
	code, _, resp := e.do(http.MethodPut, "/v1/models/"+name, body, nil)
	if code != http.StatusOK {
		e.t.Fatalf("loading %s v%s: got %d %s, want 200", name, version, code, resp)
	}
	var st oip.ModelStatus
	if err := json.Unmarshal(resp, &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

type jsonTensor struct {
	Name       string         `json:"name"`
	Datatype   string         `json:"datatype"`
	Shape      []int64        `json:"shape"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

type inferResponse struct {
	ModelName    string       `json:"model_name"`
	ModelVersion string       `json:"model_version"`
	ID           string       `json:"id"`
	Outputs      []jsonTensor `json:"outputs"`
}

// cnnInput returns n deterministic images as an FP32 tensor.
func cnnInput(n int, seed int) *inference.Tensor {
	t, _ := inference.NewTensor(inference.FP32, []int64{int64(n), 1, 28, 28})
	for i := range t.Data.([]float32) {
		t.Data.([]float32)[i] = float32((i*7+seed*13)%256) / 255
	}
	return t
}

func cnnRequest(id string, t *inference.Tensor) []byte {
	b, _ := json.Marshal(map[string]any{
		"id":     id,
		"inputs": []jsonTensor{{Name: "image", Datatype: "FP32", Shape: t.Shape, Data: t.Data}},
	})
	return b
}

// jsonData converts tensor data to JSON-encodable values: FP16 as numbers,
// non-finite floats as the strings the server accepts.
func jsonData(t *inference.Tensor) any {
	fl := func(f float64) any {
		switch {
		case math.IsNaN(f):
			return "NaN"
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		return f
	}
	switch d := t.Data.(type) {
	case []float32:
		out := make([]any, len(d))
		for i, v := range d {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				out[i] = fl(float64(v))
			} else {
				out[i] = json.Number(strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
		}
		return out
	case []float64:
		out := make([]any, len(d))
		for i, v := range d {
			out[i] = fl(v)
		}
		return out
	case []uint16:
		if t.DType != inference.FP16 {
			return d
		}
		out := make([]any, len(d))
		for i, v := range d {
			f := inference.Float16ToFloat32(v)
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				out[i] = fl(float64(f))
			} else {
				out[i] = json.Number(strconv.FormatFloat(float64(f), 'g', -1, 32))
			}
		}
		return out
	case []uint8:
		out := make([]int, len(d)) // []byte would marshal as base64
		for i, v := range d {
			out[i] = int(v)
		}
		return out
	}
	return t.Data
}

// binaryBlob returns a tensor in the binary tensor data layout.
func binaryBlob(t *inference.Tensor) []byte {
	if d, ok := t.Data.([]string); ok {
		var b []byte
		for _, s := range d {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
		return b
	}
	return t.RawBytes()
}

// inferOnce sends inputs to a model, as JSON or binary tensors, asking for
// every output as JSON or binary, and decodes the answer.
func inferOnce(e *env, model string, inputs map[string]*inference.Tensor, binaryIn, binaryOut bool) (map[string]*inference.Tensor, error) {
	var ins []jsonTensor
	var blobs []byte
	for _, name := range inference.SortedNames(inputs) {
		t := inputs[name]
		jt := jsonTensor{Name: name, Datatype: string(t.DType), Shape: t.Shape}
		if binaryIn {
			b := binaryBlob(t)
			jt.Parameters = map[string]any{"binary_data_size": len(b)}
			blobs = append(blobs, b...)
		} else {
			jt.Data = jsonData(t)
		}
		ins = append(ins, jt)
	}
	header, err := json.Marshal(map[string]any{"inputs": ins, "parameters": map[string]any{"binary_data_output": binaryOut}})
	if err != nil {
		return nil, err
	}
	hdr := map[string]string{}
	body := header
	if binaryIn {
		hdr["Inference-Header-Content-Length"] = strconv.Itoa(len(header))
		body = append(append([]byte{}, header...), blobs...)
	}
	code, rh, resp := e.do("POST", "/v2/models/"+model+"/infer", body, hdr)
	if code != http.StatusOK {
		return nil, fmt.Errorf("infer %s: HTTP %d: %s", model, code, resp)
	}
	return decodeResponse(rh, resp)
}

func decodeResponse(h http.Header, body []byte) (map[string]*inference.Tensor, error) {
	header, rest := body, []byte(nil)
	if v := h.Get("Inference-Header-Content-Length"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n > len(body) {
			return nil, fmt.Errorf("bad Inference-Header-Content-Length %q", v)
		}
		header, rest = body[:n], body[n:]
	}
	var r struct {
		Outputs []struct {
			Name       string
			Datatype   string
			Shape      []int64
			Parameters map[string]any
			Data       []json.RawMessage
		}
	}
	if err := json.Unmarshal(header, &r); err != nil {
		return nil, fmt.Errorf("decoding response: %w", err)
	}
	out := map[string]*inference.Tensor{}
	for _, o := range r.Outputs {
		t, err := inference.NewTensor(inference.DType(o.Datatype), o.Shape)
		if err != nil {
			return nil, err
		}
		if size, ok := o.Parameters["binary_data_size"].(float64); ok {
			raw := rest[:int(size)]
			rest = rest[int(size):]
			if t.DType == inference.Bytes {
				var elems []string
				for len(raw) >= 4 {
					l := binary.LittleEndian.Uint32(raw)
					elems = append(elems, string(raw[4:4+l]))
					raw = raw[4+l:]
				}
				if elems == nil {
					elems = []string{}
				}
				t.Data = elems
			} else if err := t.SetRaw(raw); err != nil {
				return nil, fmt.Errorf("output %s: %w", o.Name, err)
			}
		} else {
			if len(o.Data) != t.Len() {
				return nil, fmt.Errorf("output %s: %d values for shape %v", o.Name, len(o.Data), o.Shape)
			}
			for i, raw := range o.Data {
				if err := setJSON(t, i, raw); err != nil {
					return nil, fmt.Errorf("output %s element %d: %w", o.Name, i, err)
				}
			}
		}
		out[o.Name] = t
	}
	return out, nil
}

func setJSON(t *inference.Tensor, i int, raw json.RawMessage) error {
	float := func() (float64, error) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			switch s {
			case "NaN":
				return math.NaN(), nil
			case "Infinity":
				return math.Inf(1), nil
			case "-Infinity":
				return math.Inf(-1), nil
			}
			return 0, fmt.Errorf("unexpected string %q", s)
		}
		return strconv.ParseFloat(string(raw), 64)
	}
	var err error
	switch d := t.Data.(type) {
	case []float32:
		var f float64
		f, err = float()
		d[i] = float32(f)
	case []float64:
		d[i], err = float()
	case []uint16:
		if t.DType == inference.FP16 {
			var f float64
			f, err = float()
			d[i] = inference.Float32ToFloat16(float32(f))
		} else {
			err = json.Unmarshal(raw, &d[i])
		}
	case []bool:
		err = json.Unmarshal(raw, &d[i])
	case []string:
		err = json.Unmarshal(raw, &d[i])
	case []uint8:
		err = json.Unmarshal(raw, &d[i])
	case []int8:
		err = json.Unmarshal(raw, &d[i])
	case []int16:
		err = json.Unmarshal(raw, &d[i])
	case []int32:
		err = json.Unmarshal(raw, &d[i])
	case []int64:
		err = json.Unmarshal(raw, &d[i])
	case []uint32:
		err = json.Unmarshal(raw, &d[i])
	case []uint64:
		err = json.Unmarshal(raw, &d[i])
	}
	return err
}
