package oip

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    *inference.Tensor
		wantErr string
	}{
		{"nested rows", `{"inputs":[{"name":"x","datatype":"INT32","shape":[2,2],"data":[[1,-2],[3,4]]}]}`,
			&inference.Tensor{DType: inference.Int32, Shape: []int64{2, 2}, Data: []int32{1, -2, 3, 4}}, ""},
		{"scalar", `{"inputs":[{"name":"x","datatype":"FP64","shape":[],"data":[2.5]}]}`,
			&inference.Tensor{DType: inference.FP64, Shape: []int64{}, Data: []float64{2.5}}, ""},
		{"non-finite", `{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":["-Infinity","Infinity"]}]}`,
			&inference.Tensor{DType: inference.FP32, Shape: []int64{2}, Data: []float32{float32(math.Inf(-1)), float32(math.Inf(1))}}, ""},
		{"fp16", `{"inputs":[{"name":"x","datatype":"FP16","shape":[2],"data":[1, -2]}]}`,
			&inference.Tensor{DType: inference.FP16, Shape: []int64{2}, Data: []uint16{0x3c00, 0xc000}}, ""},
		{"bool", `{"inputs":[{"name":"x","datatype":"BOOL","shape":[2],"data":[true,false]}]}`,
			&inference.Tensor{DType: inference.Bool, Shape: []int64{2}, Data: []bool{true, false}}, ""},
		{"escaped strings", `{"inputs":[{"name":"x","datatype":"BYTES","shape":[2],"data":["a\"b\\","\u00e9"]}]}`,
			&inference.Tensor{DType: inference.Bytes, Shape: []int64{2}, Data: []string{`a"b\`, "é"}}, ""},
		{"int8 range", `{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[128]}]}`, nil,
			`input "x" (INT8): element 0: got 128, expected an integer in the range of INT8`},
		{"float for int", `{"inputs":[{"name":"x","datatype":"INT64","shape":[1],"data":[1.5]}]}`, nil,
			`element 0: got 1.5, expected an integer in the range of INT64`},
		{"bool as number", `{"inputs":[{"name":"x","datatype":"BOOL","shape":[1],"data":[1]}]}`, nil,
			`element 0: got 1, expected true or false`},
		{"too many", `{"inputs":[{"name":"x","datatype":"UINT8","shape":[2],"data":[1,2,3]}]}`, nil,
			`input "x": shape [2] needs 2 elements, data has 3`},
		{"object in data", `{"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[{"v":1}]}]}`, nil,
			`objects are not allowed in tensor data`},
		{"unknown field", `{"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[1],"extra":1}]}`, nil,
			`invalid JSON in request: json: unknown field "extra"`},
		{"duplicate input", `{"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[1]},{"name":"x","datatype":"UINT8","shape":[1],"data":[1]}]}`, nil,
			`input "x" appears twice`},
		{"negative dim", `{"inputs":[{"name":"x","datatype":"UINT8","shape":[-1],"data":[1]}]}`, nil,
			`input "x": invalid shape [-1]`},
		{"binary size not int", `{"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"parameters":{"binary_data_size":"1"}}]}`, nil,
			`input "x": binary_data_size must be a non-negative integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := decodeRequest([]byte(tt.body), -1)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := req.Inputs["x"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEncodeResponseJSON(t *testing.T) {
	res := map[string]*inference.Tensor{
		"f": {DType: inference.FP32, Shape: []int64{3}, Data: []float32{0.1, float32(math.NaN()), -2}},
		"s": {DType: inference.Bytes, Shape: []int64{1}, Data: []string{`q"`}},
		"h": {DType: inference.FP16, Shape: []int64{1}, Data: []uint16{0x3555}},
	}
	body, n := encodeResponse("m", "2", "id-1", []outputSpec{{Name: "f"}, {Name: "s"}, {Name: "h"}}, res)
	want := `{"model_name":"m","model_version":"2","id":"id-1","outputs":[` +
		`{"name":"f","datatype":"FP32","shape":[3],"data":[0.1,"NaN",-2]},` +
		`{"name":"s","datatype":"BYTES","shape":[1],"data":["q\""]},` +
		`{"name":"h","datatype":"FP16","shape":[1],"data":[0.33325195]}]}`
	if n != -1 || string(body) != want {
		t.Errorf("got (%d) %s\nwant %s", n, body, want)
	}
}
