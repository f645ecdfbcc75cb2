package oip_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference/onnxtest"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/oip"
)

func cnnModel(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "inference", "testdata", "cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInferCNNJSONAndBinary(t *testing.T) {
	e := newEnv(t, oip.Config{})
	st := e.load("cnn", "1", cnnModel(t), oip.ModelConfig{})
	if st.State != oip.StateReady || st.ExecutionProvider != "cpu" || st.Signature == nil || len(st.SHA256) != 64 {
		t.Fatalf("status: got %+v", st)
	}
	sess, err := e.rt.LoadBytes(cnnModel(t), inference.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	in := cnnInput(3, 1)
	want, err := sess.Run(map[string]*inference.Tensor{"image": in}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantLogits := want["logits"].Data.([]float32)

	t.Run("json", func(t *testing.T) {
		code, hdr, body := e.do("POST", "/v2/models/cnn/infer", cnnRequest("req-42", in), nil)
		if code != 200 {
			t.Fatalf("got %d %s", code, body)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content type: got %q", ct)
		}
		var resp inferResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.ID != "req-42" || resp.ModelName != "cnn" || resp.ModelVersion != "1" {
			t.Errorf("got id %q model %q version %q, want req-42 cnn 1", resp.ID, resp.ModelName, resp.ModelVersion)
		}
		o := resp.Outputs[0]
		if o.Name != "logits" || o.Datatype != "FP32" || !reflect.DeepEqual(o.Shape, []int64{3, 10}) {
			t.Fatalf("output: got %+v", o)
		}
		for i, v := range o.Data.([]any) {
			if float32(v.(float64)) != wantLogits[i] {
				t.Fatalf("logit %d: got %v, want %v", i, v, wantLogits[i])
			}
		}
	})
	t.Run("binary", func(t *testing.T) {
		header, _ := json.Marshal(map[string]any{
			"inputs":  []jsonTensor{{Name: "image", Datatype: "FP32", Shape: in.Shape, Parameters: map[string]any{"binary_data_size": 4 * 3 * 784}}},
			"outputs": []map[string]any{{"name": "logits", "parameters": map[string]any{"binary_data": true}}},
		})
		body := append(append([]byte{}, header...), in.RawBytes()...)
		code, hdr, resp := e.do("POST", "/v2/models/cnn/versions/1/infer", body, map[string]string{
			"Inference-Header-Content-Length": strconv.Itoa(len(header)),
			"Content-Type":                    "application/octet-stream",
		})
		if code != 200 {
			t.Fatalf("got %d %s", code, resp)
		}
		hl, err := strconv.Atoi(hdr.Get("Inference-Header-Content-Length"))
		if err != nil {
			t.Fatalf("response header length: %v", err)
		}
		var r inferResponse
		if err := json.Unmarshal(resp[:hl], &r); err != nil {
			t.Fatal(err)
		}
		if got := r.Outputs[0].Parameters["binary_data_size"]; got != float64(120) {
			t.Errorf("binary_data_size: got %v, want 120", got)
		}
		raw := resp[hl:]
		for i := range wantLogits {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != wantLogits[i] {
				t.Fatalf("logit %d: got %v, want %v", i, got, wantLogits[i])
			}
		}
	})
}

// TestEveryDTypeRoundTrip sends each tensor type through an Identity model,
// once as JSON and once as binary tensor data.
func TestEveryDTypeRoundTrip(t *testing.T) {
	e := newEnv(t, oip.Config{})
	samples := map[inference.DType]any{
		inference.Bool:   []bool{true, false, true, true},
		inference.Uint8:  []uint8{0, 1, 254, 255},
		inference.Uint16: []uint16{0, 1, 65534, 65535},
		inference.Uint32: []uint32{0, 1, 1 << 31, math.MaxUint32},
		inference.Uint64: []uint64{0, 1, 1 << 63, math.MaxUint64},
		inference.Int8:   []int8{-128, -1, 0, 127},
		inference.Int16:  []int16{-32768, -1, 0, 32767},
		inference.Int32:  []int32{math.MinInt32, -1, 0, math.MaxInt32},
		inference.Int64:  []int64{math.MinInt64, -1, 0, math.MaxInt64},
		inference.FP16:   []uint16{0x3c00, 0xc000, 0x7bff, 0x0001},
		inference.FP32:   []float32{-1.5, 1e-30, 3.4028235e38, float32(math.Inf(-1))},
		inference.FP64:   []float64{-1.5, 1e-300, math.MaxFloat64, math.NaN()},
		inference.Bytes:  []string{"", "a", "héllo \"quoted\"", "\x01\xff binary"},
	}
	for _, dt := range inference.DTypes {
		g := &onnxtest.Graph{
			Name:    "identity",
			Nodes:   []onnxtest.Node{{Op: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
			Inputs:  []onnxtest.Value{{Name: "x", DType: dt, Shape: []int64{2, 2}}},
			Outputs: []onnxtest.Value{{Name: "y", DType: dt, Shape: []int64{2, 2}}},
		}
		name := "id-" + strings.ToLower(string(dt))
		e.load(name, "1", marshal(t, g), oip.ModelConfig{})
		in := &inference.Tensor{DType: dt, Shape: []int64{2, 2}, Data: samples[dt]}
		for _, mode := range []string{"json", "binary"} {
			t.Run(string(dt)+"/"+mode, func(t *testing.T) {
				t.Parallel()
				got, err := inferOnce(e, name, map[string]*inference.Tensor{"x": in}, mode == "binary", mode == "binary")
				if err != nil {
					t.Fatal(err)
				}
				want := in
				if dt == inference.Bytes && mode == "json" {
					// JSON strings carry UTF-8 only; invalid bytes become U+FFFD.
					want = &inference.Tensor{DType: dt, Shape: in.Shape, Data: []string{"", "a", "héllo \"quoted\"", "\x01\ufffd binary"}}
				}
				if !sameTensor(got["y"], want) {
					t.Errorf("got %+v, want %+v", got["y"], want)
				}
			})
		}
	}
}

func sameTensor(a, b *inference.Tensor) bool {
	if a == nil || b == nil || a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) {
		return false
	}
	if a.DType == inference.FP64 || a.DType == inference.FP32 {
		return bytes.Equal(a.RawBytes(), b.RawBytes())
	}
	return reflect.DeepEqual(a.Data, b.Data)
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, oip.Config{MaxRequestBytes: 64 << 10})
	e.load("cnn", "1", cnnModel(t), oip.ModelConfig{})
	good := cnnRequest("", cnnInput(1, 0))
	tensorReq := func(name, dtype string, shape []int64, data any) []byte {
		b, _ := json.Marshal(map[string]any{"inputs": []jsonTensor{{Name: name, Datatype: dtype, Shape: shape, Data: data}}})
		return b
	}
	const binHeader = `{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"parameters":{"binary_data_size":8}}]}`
	tests := []struct {
		name     string
		method   string
		path     string
		body     []byte
		hdr      map[string]string
		wantCode int
		wantMsg  string
	}{
		{"wrong dtype", "POST", "/v2/models/cnn/infer", tensorReq("image", "FP64", []int64{1, 1, 28, 28}, make([]float64, 784)), nil, 400, `input "image": datatype FP64, expected FP32`},
		{"wrong shape", "POST", "/v2/models/cnn/infer", tensorReq("image", "FP32", []int64{1, 28, 28}, make([]float32, 784)), nil, 400, `input "image": shape [1 28 28] has rank 3, expected rank 4 (shape [-1 1 28 28])`},
		{"element count", "POST", "/v2/models/cnn/infer", tensorReq("image", "FP32", []int64{1, 1, 28, 28}, make([]float32, 783)), nil, 400, `input "image": shape [1 1 28 28] needs 784 elements, data has 783`},
		{"missing input", "POST", "/v2/models/cnn/infer", tensorReq("pixels", "FP32", []int64{1}, []float32{1}), nil, 400, `missing input "image" (FP32 [-1 1 28 28])`},
		{"unknown output", "POST", "/v2/models/cnn/infer", []byte(`{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"data":` + strings.Repeat("0,", 783)[:0] + zeros(784) + `}],"outputs":[{"name":"probs"}]}`), nil, 400, `unknown output "probs": model outputs are logits`},
		{"non-number element", "POST", "/v2/models/cnn/infer", tensorReq("image", "FP32", []int64{1, 1, 28, 28}, append([]any{"x"}, make([]any, 783)...)), nil, 400, `input "image" (FP32): element 0: got string "x", expected a number`},
		{"unknown datatype", "POST", "/v2/models/cnn/infer", tensorReq("image", "FP8", []int64{1}, []int{1}), nil, 400, `input "image": unknown datatype "FP8"`},
		{"garbage JSON", "POST", "/v2/models/cnn/infer", []byte(`{"inputs": [ {"name": "image",`), nil, 400, `invalid JSON in request`},
		{"no inputs", "POST", "/v2/models/cnn/infer", []byte(`{"inputs": []}`), nil, 400, `request has no inputs`},
		{"bad header length", "POST", "/v2/models/cnn/infer", good, map[string]string{"Inference-Header-Content-Length": "-3"}, 400, `Inference-Header-Content-Length "-3" is not a non-negative integer`},
		{"binary size mismatch", "POST", "/v2/models/cnn/infer", append([]byte(binHeader), make([]byte, 8)...), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(binHeader))}, 400, `input "image": shape [1 1 28 28] of FP32 needs 3136 bytes of binary data, got 8`},
		{"oversize body", "POST", "/v2/models/cnn/infer", bytes.Repeat([]byte(" "), 65<<10), nil, 413, `request body exceeds the 65536 byte limit`},
		{"unknown model", "POST", "/v2/models/nope/infer", good, nil, 404, `model "nope" not found`},
		{"unknown version", "POST", "/v2/models/cnn/versions/7/infer", good, nil, 404, `model "cnn" version "7" not found (serving version "1")`},
		{"no token", "POST", "/v2/models/cnn/infer", good, map[string]string{"Authorization": ""}, 401, `missing bearer token`},
		{"wrong token", "POST", "/v2/models/cnn/infer", good, map[string]string{"Authorization": "Bearer nope"}, 401, `invalid bearer token`},
		{"management without token", "GET", "/v1/models", nil, map[string]string{"Authorization": ""}, 401, `missing bearer token`},
		{"metadata unknown model", "GET", "/v2/models/nope", nil, nil, 404, `model "nope" not found`},
		{"unknown route", "GET", "/v2/models/cnn/infer", nil, nil, 404, `no route GET /v2/models/cnn/infer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, body := e.do(tt.method, tt.path, tt.body, tt.hdr)
			var got struct{ Error string }
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q is not a JSON error: %v", body, err)
			}
			if code != tt.wantCode || !strings.Contains(got.Error, tt.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", code, got.Error, tt.wantCode, tt.wantMsg)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type: got %q, want application/json", ct)
			}
			// The server keeps serving.
			if code, _, body := e.do("POST", "/v2/models/cnn/infer", good, nil); code != 200 {
				t.Fatalf("good request after %s: got %d %s", tt.name, code, body)
			}
		})
	}
}

func zeros(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]"
}

func TestPublicInference(t *testing.T) {
	e := newEnv(t, oip.Config{PublicInference: true})
	e.load("cnn", "1", cnnModel(t), oip.ModelConfig{})
	noToken := map[string]string{"Authorization": ""}
	if code, _, body := e.do("POST", "/v2/models/cnn/infer", cnnRequest("", cnnInput(1, 0)), noToken); code != 200 {
		t.Errorf("public infer: got %d %s, want 200", code, body)
	}
	if code, _, _ := e.do("PUT", "/v1/models/cnn", []byte(`{}`), noToken); code != 401 {
		t.Errorf("management stays protected: got %d, want 401", code)
	}
}

func TestModelManagement(t *testing.T) {
	e := newEnv(t, oip.Config{})
	v1 := marshal(t, addModel(1))
	v2 := marshal(t, addModel(2))
	e.load("add", "1", v1, oip.ModelConfig{})
	check := func(wantVersion string, wantOffset float32) {
		t.Helper()
		out, err := inferOnce(e, "add", map[string]*inference.Tensor{"x": {DType: inference.FP32, Shape: []int64{1, 2}, Data: []float32{1, 2}}}, false, false)
		if err != nil {
			t.Fatalf("infer: %v", err)
		}
		if got := out["y"].Data.([]float32); got[0] != 1+wantOffset {
			t.Errorf("serving: got y=%v, want offset %g (version %s)", got, wantOffset, wantVersion)
		}
	}
	check("1", 1)

	path2, sum2 := e.writeModel("add-2", v2)
	put := func(req oip.LoadRequest) (int, string) {
		b, _ := json.Marshal(req)
		code, _, body := e.do("PUT", "/v1/models/add", b, nil)
		return code, string(body)
	}
	tests := []struct {
		name     string
		req      oip.LoadRequest
		wantCode int
		wantMsg  string
	}{
		{"sha256 mismatch", oip.LoadRequest{Version: "2", Source: path2, SHA256: strings.Repeat("0", 64)}, 422, "sha256 mismatch"},
		{"missing file", oip.LoadRequest{Version: "2", Source: path2 + ".missing", SHA256: sum2}, 422, "no such file"},
		{"relative path", oip.LoadRequest{Version: "2", Source: "model.onnx", SHA256: sum2}, 400, "neither an absolute path nor an http(s) URL"},
		{"bad sha", oip.LoadRequest{Version: "2", Source: path2, SHA256: "abc"}, 400, "must be 64 hex digits"},
		{"bad config", oip.LoadRequest{Version: "2", Source: path2, SHA256: sum2, Config: oip.ModelConfig{MaxQueueDelay: "soon"}}, 400, "max_queue_delay"},
		{"bad provider", oip.LoadRequest{Version: "2", Source: path2, SHA256: sum2, Config: oip.ModelConfig{ExecutionProvider: "tpu"}}, 400, "execution_provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := put(tt.req)
			if code != tt.wantCode || !strings.Contains(body, tt.wantMsg) {
				t.Errorf("got %d %s, want %d containing %q", code, body, tt.wantCode, tt.wantMsg)
			}
			check("1", 1) // nothing replaced
		})
	}
	t.Run("invalid model keeps old", func(t *testing.T) {
		p, sum := e.writeModel("garbage", []byte("not an onnx model"))
		code, body := put(oip.LoadRequest{Version: "2", Source: p, SHA256: sum})
		if code != 422 || !strings.Contains(body, `loading model \"add\" version \"2\"`) {
			t.Errorf("got %d %s, want 422 naming the model", code, body)
		}
		check("1", 1)
		_, _, b := e.do("GET", "/v1/models/add", nil, nil)
		var st oip.ModelStatus
		_ = json.Unmarshal(b, &st)
		if st.Version != "1" || st.State != oip.StateReady || st.LastError == "" {
			t.Errorf("status after failed load: got %+v, want version 1 READY with last_error", st)
		}
	})
	t.Run("http source", func(t *testing.T) {
		files := httptest.NewServer(http.FileServer(http.Dir(e.dir)))
		defer files.Close()
		code, body := put(oip.LoadRequest{Version: "2", Source: files.URL + "/add-2.onnx", SHA256: sum2})
		if code != 200 {
			t.Fatalf("got %d %s", code, body)
		}
		check("2", 2)
		code, body = put(oip.LoadRequest{Version: "3", Source: files.URL + "/missing.onnx", SHA256: sum2})
		if code != 502 || !strings.Contains(body, "404") {
			t.Errorf("missing URL: got %d %s, want 502 naming HTTP 404", code, body)
		}
	})
	t.Run("several models, list, unload", func(t *testing.T) {
		e.load("cnn", "a", cnnModel(t), oip.ModelConfig{MaxBatchSize: 8, MaxQueueDelay: "1ms"})
		_, _, b := e.do("GET", "/v1/models", nil, nil)
		var list struct{ Models []oip.ModelStatus }
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range list.Models {
			got = append(got, m.Name+"@"+m.Version+"/"+m.State+"/"+m.ExecutionProvider+"/"+strconv.FormatBool(m.DynamicBatching))
		}
		want := []string{"add@2/READY/cpu/false", "cnn@a/READY/cpu/true"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("list: got %v, want %v", got, want)
		}
		if code, _, body := e.do("GET", "/v2/models/cnn", nil, nil); code != 200 || !strings.Contains(string(body), `"platform":"onnxruntime_onnx"`) {
			t.Errorf("metadata: got %d %s", code, body)
		}
		if code, _, _ := e.do("GET", "/v2/models/cnn/versions/a/ready", nil, nil); code != 200 {
			t.Errorf("ready: got %d, want 200", code)
		}
		if code, _, body := e.do("DELETE", "/v1/models/add", nil, nil); code != 200 {
			t.Fatalf("unload: got %d %s", code, body)
		}
		for _, path := range []string{"/v1/models/add", "/v2/models/add/ready"} {
			if code, _, _ := e.do("GET", path, nil, nil); code != 404 {
				t.Errorf("%s after unload: got %d, want 404", path, code)
			}
		}
		if code, _, _ := e.do("DELETE", "/v1/models/add", nil, nil); code != 404 {
			t.Errorf("second unload: got %d, want 404", code)
		}
		if code, _, _ := e.do("GET", "/v2/models/cnn/ready", nil, nil); code != 200 {
			t.Errorf("other model after unload: got %d, want 200", code)
		}
	})
}

// addModel returns y = x + offset for x of shape [-1, 2].
func addModel(offset float32) *onnxtest.Graph {
	return &onnxtest.Graph{
		Name:         "add",
		Nodes:        []onnxtest.Node{{Op: "Add", Inputs: []string{"x", "offset"}, Outputs: []string{"y"}}},
		Initializers: map[string]*inference.Tensor{"offset": {DType: inference.FP32, Shape: []int64{1}, Data: []float32{offset}}},
		Inputs:       []onnxtest.Value{{Name: "x", DType: inference.FP32, Shape: []int64{-1, 2}}},
		Outputs:      []onnxtest.Value{{Name: "y", DType: inference.FP32, Shape: []int64{-1, 2}}},
	}
}

func TestNotReadyWhileLoading(t *testing.T) {
	e := newEnv(t, oip.Config{})
	model := marshal(t, addModel(1))
	release := make(chan struct{})
	requested := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(requested)
		<-release
		_, _ = w.Write(model)
	}))
	defer slow.Close()
	_, sum := e.writeModel("add", model)
	done := make(chan int)
	go func() {
		b, _ := json.Marshal(oip.LoadRequest{Version: "1", Source: slow.URL + "/add.onnx", SHA256: sum})
		code, _, _ := e.do("PUT", "/v1/models/add", b, nil)
		done <- code
	}()
	<-requested
	if e.s.Ready() {
		t.Error("server Ready while a model loads its first version")
	}
	for _, c := range []struct{ method, path string }{{"GET", "/v2/models/add/ready"}, {"POST", "/v2/models/add/infer"}} {
		code, _, body := e.do(c.method, c.path, []byte(`{}`), nil)
		if code != 503 || !strings.Contains(string(body), `model \"add\" is not ready (state LOADING)`) {
			t.Errorf("%s %s while loading: got %d %s, want 503", c.method, c.path, code, body)
		}
	}
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("load: got %d, want 200", code)
	}
	if !e.s.Ready() {
		t.Error("server not Ready after the load")
	}
	if code, _, _ := e.do("GET", "/v2/models/add/ready", nil, nil); code != 200 {
		t.Errorf("ready after load: got %d, want 200", code)
	}
}

// TestHotSwapUnderLoad loads version 2 while clients keep sending
// requests: no request may fail, and traffic ends on version 2.
func TestHotSwapUnderLoad(t *testing.T) {
	e := newEnv(t, oip.Config{})
	e.load("add", "1", marshal(t, addModel(1)), oip.ModelConfig{MaxBatchSize: 4, Instances: 2})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		seen     = map[string]int{}
		stop     = make(chan struct{})
	)
	req := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[10,20]}]}`)
	client := &http.Client{}
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				hr, _ := http.NewRequest("POST", e.url+"/v2/models/add/infer", bytes.NewReader(req))
				hr.Header.Set("Authorization", "Bearer "+testToken)
				resp, err := client.Do(hr)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				var r inferResponse
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				mu.Lock()
				switch {
				case resp.StatusCode != 200 || err != nil:
					failures = append(failures, fmt.Sprintf("status %d: %v", resp.StatusCode, err))
				default:
					y := r.Outputs[0].Data.([]any)[0].(float64)
					if want := map[string]float64{"1": 11, "2": 12}[r.ModelVersion]; y != want {
						failures = append(failures, fmt.Sprintf("version %s answered %v, want %v", r.ModelVersion, y, want))
					}
					seen[r.ModelVersion]++
				}
				mu.Unlock()
			}
		}()
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return seen["1"] >= 20 })
	e.load("add", "2", marshal(t, addModel(2)), oip.ModelConfig{MaxBatchSize: 4, Instances: 2})
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return seen["2"] >= 20 })
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failed requests during the swap, first: %s", len(failures), failures[0])
	}
	t.Logf("requests answered: v1 %d, v2 %d, failures 0", seen["1"], seen["2"])
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBatchingNeverChangesResults sends concurrent requests of different
// batch sizes to a batching model and compares each answer with the same
// request run alone in-process. All requests are held half-sent until every
// one has reached the server, so that they are batched together.
func TestBatchingNeverChangesResults(t *testing.T) {
	e := newEnv(t, oip.Config{})
	e.load("cnn", "1", cnnModel(t), oip.ModelConfig{MaxBatchSize: 16, MaxQueueDelay: "10s", Instances: 2})
	sess, err := e.rt.LoadBytes(cnnModel(t), inference.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	const requests = 12
	type answer struct {
		i    int
		code int
		body []byte
		hdr  http.Header
	}
	answers := make(chan answer, requests)
	inputs := make([]*inference.Tensor, requests)
	rests := make([]func(), requests)
	for i := range requests {
		inputs[i] = cnnInput(1+i%3, i)
		body := cnnRequest("", inputs[i])
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", e.url+"/v2/models/cnn/infer", pr)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.ContentLength = int64(len(body))
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{i: i}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{i, resp.StatusCode, b, resp.Header}
		}()
		if _, err := pw.Write(body[:10]); err != nil {
			t.Fatal(err)
		}
		rests[i] = func() { _, _ = pw.Write(body[10:]) }
	}
	waitFor(t, func() bool {
		return scrape(t, e)[`nv_inference_pending_request_count{model="cnn",version="1"}`] == requests
	})
	for _, rest := range rests {
		go rest()
	}
	for range requests {
		a := <-answers
		if a.code != 200 {
			t.Errorf("request %d: got HTTP %d %s", a.i, a.code, a.body)
			continue
		}
		got, err := decodeResponse(a.hdr, a.body)
		if err != nil {
			t.Fatal(err)
		}
		want, err := sess.Run(map[string]*inference.Tensor{"image": inputs[a.i]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got["logits"].Shape, want["logits"].Shape) {
			t.Errorf("request %d: shape %v, want %v", a.i, got["logits"].Shape, want["logits"].Shape)
			continue
		}
		g, w := got["logits"].Data.([]float32), want["logits"].Data.([]float32)
		for k := range w {
			if !closeTo(float64(g[k]), float64(w[k]), batchRTol, batchATol) {
				t.Errorf("request %d logit %d: batched %v, alone %v", a.i, k, g[k], w[k])
				break
			}
		}
	}
	m := scrape(t, e)
	execs, reqs := m[`nv_inference_exec_count{model="cnn",version="1"}`], m[`nv_inference_request_success{model="cnn",version="1"}`]
	if reqs != requests || execs >= reqs {
		t.Errorf("got %v executions for %v requests, want fewer executions than %d requests", execs, reqs, requests)
	}
	if got, want := m[`nv_inference_count{model="cnn",version="1"}`], float64(requests/3*(1+2+3)); got != want {
		t.Errorf("nv_inference_count: got %v, want %v", got, want)
	}
	t.Logf("%d requests, %d rows, %v model executions", requests, requests/3*6, execs)
}

// Batched and single convolutions may sum in a different order inside
// ONNX Runtime's GEMM kernels; results must agree within this tolerance.
const (
	batchRTol = 1e-5
	batchATol = 1e-6
)

func closeTo(got, want, rtol, atol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= atol+rtol*math.Abs(want)
}

var metricLine = regexp.MustCompile(`^(\S+) (\S+)$`)

func scrape(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	code, _, body := e.do("GET", "/metrics", nil, nil)
	if code != 200 {
		t.Fatalf("metrics: got %d", code)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if m := metricLine.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] = v
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, oip.Config{})
	e.load("cnn", "1", cnnModel(t), oip.ModelConfig{})
	for i := 0; i < 3; i++ {
		if code, _, body := e.do("POST", "/v2/models/cnn/infer", cnnRequest("", cnnInput(2, i)), nil); code != 200 {
			t.Fatalf("infer: %d %s", code, body)
		}
	}
	e.do("POST", "/v2/models/cnn/infer", []byte(`{"inputs":[{"name":"image","datatype":"FP16","shape":[1],"data":[1]}]}`), nil)
	m := scrape(t, e)
	want := map[string]float64{
		`nv_inference_request_success{model="cnn",version="1"}`: 3,
		`nv_inference_request_failure{model="cnn",version="1"}`: 1,
		`nv_inference_count{model="cnn",version="1"}`:           3,
		`nv_inference_exec_count{model="cnn",version="1"}`:      3,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: got %v, want %v", k, m[k], v)
		}
	}
	for _, k := range []string{
		`nv_inference_request_duration_us{model="cnn",version="1"}`,
		`nv_inference_compute_infer_duration_us{model="cnn",version="1"}`,
	} {
		if m[k] <= 0 {
			t.Errorf("%s: got %v, want > 0", k, m[k])
		}
	}
	if _, ok := m[`nv_inference_queue_duration_us{model="cnn",version="1"}`]; !ok {
		t.Error("nv_inference_queue_duration_us missing")
	}
	if m["process_cpu_seconds_total"] <= 0 || m["go_goroutines"] <= 0 {
		t.Errorf("process metrics missing: process_cpu_seconds_total=%v go_goroutines=%v", m["process_cpu_seconds_total"], m["go_goroutines"])
	}
}

// TestShutdownDrains holds a request in flight (its body half sent), shuts
// down, and checks that Shutdown waits for it, that it succeeds, and that
// later requests get 503.
func TestShutdownDrains(t *testing.T) {
	e := newEnv(t, oip.Config{})
	e.load("cnn", "1", cnnModel(t), oip.ModelConfig{})
	body := cnnRequest("", cnnInput(1, 0))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", e.url+"/v2/models/cnn/infer", pr)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.ContentLength = int64(len(body))
	done := make(chan int)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return scrape(t, e)[`nv_inference_pending_request_count{model="cnn",version="1"}`] == 1 })
	shut := make(chan error)
	go func() { shut <- e.s.Shutdown(t.Context()) }()
	waitFor(t, func() bool { return !e.s.Ready() })
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	// Shutdown returns only after the in-flight request was answered and counted.
	if got := scrape(t, e)[`nv_inference_request_success{model="cnn",version="1"}`]; got != 1 {
		t.Errorf("requests completed when Shutdown returned: got %v, want 1", got)
	}
	if code := <-done; code != 200 {
		t.Errorf("in-flight request: got %d, want 200", code)
	}
	if code, _, body := e.do("POST", "/v2/models/cnn/infer", cnnRequest("", cnnInput(1, 0)), nil); code != 503 || !strings.Contains(string(body), "shutting down") {
		t.Errorf("after shutdown: got %d %s, want 503", code, body)
	}
}

// TestModelsSurviveRestart loads models into a server with a data folder,
// starts a second server on the same folder and expects the same models,
// versions and answers; an unloaded model stays gone.
func TestModelsSurviveRestart(t *testing.T) {
	data := t.TempDir()
	e := newEnv(t, oip.Config{DataDir: data})
	e.load("add", "1", marshal(t, addModel(1)), oip.ModelConfig{})
	e.load("add", "2", marshal(t, addModel(2)), oip.ModelConfig{MaxBatchSize: 4})
	e.load("gone", "1", marshal(t, addModel(5)), oip.ModelConfig{})
	if code, _, body := e.do("DELETE", "/v1/models/gone", nil, nil); code != 200 {
		t.Fatalf("unload: %d %s", code, body)
	}
	if err := e.s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(data, "models", "add", "*.onnx"))
	if len(files) != 1 {
		t.Errorf("stored files for add: got %v, want only the serving version", files)
	}

	e2 := newEnv(t, oip.Config{DataDir: data})
	waitFor(t, e2.s.Ready)
	var got []string
	for _, m := range e2.s.Models() {
		got = append(got, m.Name+"@"+m.Version+"/"+m.State+"/batching="+strconv.FormatBool(m.DynamicBatching))
	}
	if want := []string{"add@2/READY/batching=true"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("restored models: got %v, want %v", got, want)
	}
	out, err := inferOnce(e2, "add", map[string]*inference.Tensor{"x": {DType: inference.FP32, Shape: []int64{1, 2}, Data: []float32{1, 2}}}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if y := out["y"].Data.([]float32); y[0] != 3 || y[1] != 4 {
		t.Errorf("restored model answers %v, want [3 4]", y)
	}
}
