package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// TestParseFloat32MatchesStrconv checks the fast path against
// strconv.ParseFloat on decimals as clients print them, on every digit
// count and scale it takes, and on float32 midpoints, where a careless
// double rounding would differ.
func TestParseFloat32MatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var toks []string
	for range 200000 {
		f := rng.Float32() * float32(math.Pow(10, float64(rng.IntN(12)-6)))
		toks = append(toks,
			strconv.FormatFloat(float64(f), 'f', -1, 32),
			strconv.FormatFloat(float64(f), 'f', rng.IntN(23), 64),
			strconv.FormatFloat(rng.Float64()*1e6, 'f', rng.IntN(12), 64),
			"-"+strconv.FormatUint(rng.Uint64N(1<<53), 10))
	}
	for range 20000 {
		// Exactly halfway between two float32 values, as a decimal.
		lo := float32(rng.Float64() * 1000)
		hi := math.Nextafter32(lo, float32(math.Inf(1)))
		mid := (float64(lo) + float64(hi)) / 2
		toks = append(toks, strconv.FormatFloat(mid, 'f', -1, 64))
	}
	toks = append(toks, "0", "-0", "0.0", "9007199254740991", "9007199254740993", "16777217", "0.1", "1e5", "3.4028235e38",
		"0.0000000000000000000001", "0.00000000000000000000001", "12345678901234567890")
	fast := 0
	for _, tok := range toks {
		want, err := strconv.ParseFloat(tok, 32)
		if err != nil {
			t.Fatalf("strconv rejects %q: %v", tok, err)
		}
		got, ok := parseFloat32([]byte(tok))
		if !ok {
			continue
		}
		fast++
		if math.Float32bits(got) != math.Float32bits(float32(want)) {
			t.Fatalf("parseFloat32(%q) = %v (%#x), strconv says %v (%#x)", tok, got, math.Float32bits(got), float32(want), math.Float32bits(float32(want)))
		}
	}
	if fast < len(toks)/2 {
		t.Errorf("fast path took %d of %d numbers, want most", fast, len(toks))
	}
}

// decodeRequestReference is decodeRequest with encoding/json reading the
// whole header, data included: what splitData must not change.
func decodeRequestReference(body []byte, headerLen int64) (*request, error) {
	header, rest := body, []byte(nil)
	if headerLen >= 0 {
		if headerLen > int64(len(body)) {
			return nil, badRequest("header too long")
		}
		header, rest = body[:headerLen], body[headerLen:]
	}
	var req inferRequest
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("invalid JSON in request: %v", err)
	}
	if len(bytes.TrimLeft(header[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, badRequest("trailing data")
	}
	return buildRequest(&req, nil, rest)
}

// sameRequests reports how two decoded requests differ, or "".
func sameRequests(a, b *request) string {
	if a.ID != b.ID || a.BinaryAll != b.BinaryAll || len(a.Inputs) != len(b.Inputs) || len(a.Outputs) != len(b.Outputs) {
		return "request fields differ"
	}
	for i := range a.Outputs {
		if a.Outputs[i] != b.Outputs[i] {
			return "outputs differ"
		}
	}
	for name, ta := range a.Inputs {
		tb, ok := b.Inputs[name]
		if !ok || ta.DType != tb.DType || len(ta.Shape) != len(tb.Shape) {
			return "input " + name + " differs"
		}
		for i := range ta.Shape {
			if ta.Shape[i] != tb.Shape[i] {
				return "input " + name + " shape differs"
			}
		}
		if ta.DType == inference.Bytes {
			sa, sb := ta.Data.([]string), tb.Data.([]string)
			for i := range sa {
				if sa[i] != sb[i] {
					return "input " + name + " data differs"
				}
			}
		} else if !bytes.Equal(ta.RawBytes(), tb.RawBytes()) {
			return "input " + name + " data differs"
		}
	}
	return ""
}

// TestSplitDataAgreesWithEncodingJSON runs requests that probe how member
// names match and which duplicate wins through both decoders.
func TestSplitDataAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1.5,2]}]}`,
		`{"INPUTS":[{"name":"x","datatype":"FP32","shape":[2],"DATA":[1.5,2]}]}`,
		`{"\u0069nputs":[{"name":"x","datatype":"FP32","shape":[2],"d\u0061ta":[1.5,2]}]}`,
		`{"ınputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"data":[2]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"data":2}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[7]}],"inputs":[{"name":"y","datatype":"INT8","shape":[1],"data":[3]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[[[1]]]},{"name":"y","datatype":"BOOL","shape":[1],"data":[true]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1,]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[01]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1 2]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":["NaN"]}]}`,
		`{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["a\"b\\u00e9"]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"extra":1}]}`,
		`  null `,
		`[]`,
	} {
		got, gerr := decodeRequest([]byte(body), -1)
		want, werr := decodeRequestReference([]byte(body), -1)
		if (gerr == nil) != (werr == nil) {
			t.Errorf("%s: decodeRequest error %v, encoding/json error %v", body, gerr, werr)
			continue
		}
		if gerr == nil {
			if d := sameRequests(got, want); d != "" {
				t.Errorf("%s: %s", body, d)
			}
		} else if !errors.As(gerr, new(*requestError)) {
			t.Errorf("%s: error %v is not a requestError", body, gerr)
		}
	}
}
