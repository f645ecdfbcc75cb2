package oip

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bodies and header lengths to the
// request decoder. It must never panic, must accept and decode exactly what
// encoding/json alone would, and whatever it accepts must be valid tensors
// that encode back to valid JSON. The seed corpus lives in
// testdata/fuzz/FuzzDecodeRequest.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":"1","inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,"NaN"]]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"data":["a","\u00e9\""]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`), int64(-1))
	header := `{"inputs":[{"name":"x","datatype":"INT16","shape":[3],"parameters":{"binary_data_size":6}}],"parameters":{"binary_data_output":true}}`
	f.Add(append([]byte(header), 1, 0, 2, 0, 255, 255), int64(len(header)))
	f.Add([]byte(`{"inputs":[{"name":"b","datatype":"BOOL","shape":[0,1000000000000],"data":[]}]}`), int64(-1))
	f.Add([]byte(`{"INPUTS":[{"name":"x","datatype":"FP32","shape":[2],"d\u0061ta":[1.5,2],"data":[0.1,-0]}],"inputs":[]}`), int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, headerLen int64) {
		req, err := decodeRequest(body, headerLen)
		// splitData must not change what encoding/json alone would decode.
		ref, refErr := decodeRequestReference(body, headerLen)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("decodeRequest error %v, with encoding/json alone %v", err, refErr)
		}
		if err == nil {
			if d := sameRequests(req, ref); d != "" {
				t.Fatalf("decodeRequest and encoding/json alone disagree: %s", d)
			}
		}
		if err != nil {
			if _, ok := err.(*requestError); !ok {
				t.Fatalf("error %v is not a requestError", err)
			}
			return
		}
		specs := make([]outputSpec, 0, len(req.Inputs))
		for name, tensor := range req.Inputs {
			if err := tensor.Validate(); err != nil {
				t.Fatalf("accepted invalid tensor %q: %v", name, err)
			}
			specs = append(specs, outputSpec{Name: name, Binary: len(specs)%2 == 1})
		}
		out, n := encodeResponse("m", "1", req.ID, specs, req.Inputs)
		if n >= 0 {
			out = out[:n]
		}
		if !json.Valid(out) {
			t.Fatalf("response header is not valid JSON: %q", out)
		}
	})
}
