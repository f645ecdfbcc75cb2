package oip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unsafe"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// requestError is a malformed inference request (HTTP 400).
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// The JSON shapes of the Open Inference Protocol v2 REST API.
type (
	inferRequest struct {
		ID         string          `json:"id,omitempty"`
		Parameters map[string]any  `json:"parameters,omitempty"`
		Inputs     []requestInput  `json:"inputs"`
		Outputs    []requestOutput `json:"outputs,omitempty"`
	}
	requestInput struct {
		Name       string          `json:"name"`
		Shape      []int64         `json:"shape"`
		Datatype   string          `json:"datatype"`
		Parameters map[string]any  `json:"parameters,omitempty"`
		Data       json.RawMessage `json:"data,omitempty"`
	}
	requestOutput struct {
		Name       string         `json:"name"`
		Parameters map[string]any `json:"parameters,omitempty"`
	}
	inferResponse struct {
		ModelName    string           `json:"model_name"`
		ModelVersion string           `json:"model_version,omitempty"`
		ID           string           `json:"id,omitempty"`
		Outputs      []responseOutput `json:"outputs"`
	}
	responseOutput struct {
		Name       string          `json:"name"`
		Datatype   string          `json:"datatype"`
		Shape      []int64         `json:"shape"`
		Parameters map[string]any  `json:"parameters,omitempty"`
		Data       json.RawMessage `json:"data,omitempty"`
	}
)

// request is a decoded inference request.
type request struct {
	ID      string
	Inputs  map[string]*inference.Tensor
	Outputs []outputSpec // empty: every output, in JSON unless BinaryAll
	// BinaryAll is the request-level "binary_data_output" parameter.
	BinaryAll bool
}

type outputSpec struct {
	Name   string
	Binary bool
}

// decodeRequest parses an inference request body. headerLen is the value of
// Inference-Header-Content-Length, or -1 when the body is plain JSON; the
// bytes after the header hold the binary tensors in input order.
func decodeRequest(body []byte, headerLen int64) (*request, error) {
	header, rest := body, []byte(nil)
	if headerLen >= 0 {
		if headerLen > int64(len(body)) {
			return nil, badRequest("Inference-Header-Content-Length %d exceeds the body size %d", headerLen, len(body))
		}
		header, rest = body[:headerLen], body[headerLen:]
	}
	header, data, err := splitData(header)
	if err != nil {
		return nil, err
	}
	var req inferRequest
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("invalid JSON in request: %v", err)
	}
	return buildRequest(&req, data, rest)
}

// buildRequest checks a decoded request and makes its tensors. data holds
// the "data" members splitData took out, by input index; rest is the binary
// tensor data after the JSON header.
func buildRequest(req *inferRequest, data map[int][]byte, rest []byte) (*request, error) {
	if len(req.Inputs) == 0 {
		return nil, badRequest("request has no inputs")
	}
	out := &request{ID: req.ID, Inputs: make(map[string]*inference.Tensor, len(req.Inputs))}
	if v, ok := req.Parameters["binary_data_output"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return nil, badRequest("parameter binary_data_output must be a boolean")
		}
		out.BinaryAll = b
	}
	for i, in := range req.Inputs {
		if in.Name == "" {
			return nil, badRequest("an input has no name")
		}
		if _, dup := out.Inputs[in.Name]; dup {
			return nil, badRequest("input %q appears twice", in.Name)
		}
		if d, ok := data[i]; ok {
			in.Data = d
		}
		t, err := decodeInput(in, &rest)
		if err != nil {
			return nil, err
		}
		out.Inputs[in.Name] = t
	}
	if len(rest) != 0 {
		return nil, badRequest("%d bytes of binary data follow the header but no input claims them", len(rest))
	}
	seen := map[string]bool{}
	for _, o := range req.Outputs {
		if o.Name == "" {
			return nil, badRequest("a requested output has no name")
		}
		if seen[o.Name] {
			return nil, badRequest("output %q requested twice", o.Name)
		}
		seen[o.Name] = true
		spec := outputSpec{Name: o.Name, Binary: out.BinaryAll}
		if v, ok := o.Parameters["binary_data"]; ok {
			b, isBool := v.(bool)
			if !isBool {
				return nil, badRequest("output %q: parameter binary_data must be a boolean", o.Name)
			}
			spec.Binary = b
		}
		out.Outputs = append(out.Outputs, spec)
	}
	return out, nil
}

func decodeInput(in requestInput, rest *[]byte) (*inference.Tensor, error) {
	dt := inference.DType(in.Datatype)
	if !dt.Valid() {
		return nil, badRequest("input %q: unknown datatype %q", in.Name, in.Datatype)
	}
	if in.Shape == nil {
		return nil, badRequest("input %q: shape is missing", in.Name)
	}
	n := inference.NumElements(in.Shape)
	if n < 0 {
		return nil, badRequest("input %q: invalid shape %v", in.Name, in.Shape)
	}
	if v, ok := in.Parameters["binary_data_size"]; ok {
		size, isNum := v.(float64)
		if !isNum || size < 0 || size != math.Trunc(size) {
			return nil, badRequest("input %q: binary_data_size must be a non-negative integer", in.Name)
		}
		if len(in.Data) > 0 && string(in.Data) != "null" {
			return nil, badRequest("input %q: both data and binary_data_size are set", in.Name)
		}
		if size > float64(len(*rest)) {
			return nil, badRequest("input %q: binary_data_size %d exceeds the %d binary bytes left", in.Name, int64(size), len(*rest))
		}
		raw := (*rest)[:int(size)]
		*rest = (*rest)[int(size):]
		return decodeBinary(in.Name, dt, in.Shape, n, raw)
	}
	if len(in.Data) == 0 || string(in.Data) == "null" {
		return nil, badRequest("input %q: data is missing", in.Name)
	}
	if n > int64(len(in.Data)) { // every element takes at least one byte of JSON
		return nil, badRequest("input %q: shape %v needs %d elements, data has fewer", in.Name, in.Shape, n)
	}
	t, err := inference.NewTensor(dt, in.Shape)
	if err != nil {
		return nil, badRequest("input %q: %v", in.Name, err)
	}
	fp32, _ := t.Data.([]float32)
	i := int64(0)
	for p := 0; ; i++ {
		tok, next, err := nextScalar(in.Data, p)
		if err != nil {
			return nil, badRequest("input %q (%s): %v", in.Name, dt, err)
		}
		if tok == nil {
			break
		}
		p = next
		if i >= n {
			continue // counted, to say how many there are
		}
		if fp32 != nil { // the common case, without a call per element
			if f, ok := parseFloat32(tok); ok {
				fp32[i] = f
				continue
			}
		}
		if err := setElement(t, int(i), tok); err != nil {
			return nil, badRequest("input %q (%s): element %d: %v", in.Name, dt, i, err)
		}
	}
	if i != n {
		return nil, badRequest("input %q: shape %v needs %d elements, data has %d", in.Name, in.Shape, n, i)
	}
	return t, nil
}

func decodeBinary(name string, dt inference.DType, shape []int64, n int64, raw []byte) (*inference.Tensor, error) {
	if dt == inference.Bytes {
		var elems []string
		for len(raw) > 0 {
			if len(raw) < 4 {
				return nil, badRequest("input %q: truncated BYTES element length", name)
			}
			l := binary.LittleEndian.Uint32(raw)
			raw = raw[4:]
			if uint64(l) > uint64(len(raw)) {
				return nil, badRequest("input %q: BYTES element of %d bytes overruns the data", name, l)
			}
			elems = append(elems, string(raw[:l]))
			raw = raw[l:]
		}
		if int64(len(elems)) != n {
			return nil, badRequest("input %q: shape %v needs %d elements, binary data has %d", name, shape, n, len(elems))
		}
		if elems == nil {
			elems = []string{}
		}
		return &inference.Tensor{DType: dt, Shape: shape, Data: elems}, nil
	}
	if n > int64(len(raw)) || n*int64(dt.Size()) != int64(len(raw)) {
		want := new(big.Int).Mul(big.NewInt(n), big.NewInt(int64(dt.Size())))
		return nil, badRequest("input %q: shape %v of %s needs %s bytes of binary data, got %d", name, shape, dt, want, len(raw))
	}
	if want := n * int64(dt.Size()); int64(len(raw)) != want {
		return nil, badRequest("input %q: shape %v of %s needs %d bytes of binary data, got %d", name, shape, dt, want, len(raw))
	}
	t, err := inference.NewTensor(dt, shape)
	if err != nil {
		return nil, badRequest("input %q: %v", name, err)
	}
	if err := t.SetRaw(raw); err != nil {
		return nil, badRequest("input %q: %v", name, err)
	}
	return t, nil
}

// nextScalar returns the first scalar of the JSON value b (the protocol's
// row-major "data": nested arrays) at or after offset p, and the offset
// after it; tok is nil at the end. b has already been checked to be valid
// JSON by splitData.
func nextScalar(b []byte, p int) (tok []byte, next int, err error) {
	for p < len(b) {
		switch b[p] {
		case ' ', '\t', '\r', '\n', ',', '[', ']':
			p++
		case '{':
			return nil, p, errors.New("objects are not allowed in tensor data")
		case '"':
			j := p + 1
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(b) {
				return nil, p, errors.New("unterminated string")
			}
			return b[p : j+1], j + 1, nil
		default:
			j := p
			for j < len(b) && !isDelim(b[j]) {
				j++
			}
			return b[p:j], j, nil
		}
	}
	return nil, p, nil
}

func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', ',', '[', ']', '{', '}', '"':
		return true
	}
	return false
}

func tokString(tok []byte) string { return unsafe.String(unsafe.SliceData(tok), len(tok)) }

// setElement parses one JSON scalar into element i of t.
func setElement(t *inference.Tensor, i int, tok []byte) error {
	if len(tok) == 0 {
		return errors.New("empty value")
	}
	s := tokString(tok)
	if tok[0] == '"' && t.DType != inference.Bytes {
		switch t.DType {
		case inference.FP16, inference.FP32, inference.FP64:
			f, ok := nonFinite(s)
			if !ok {
				return fmt.Errorf("got string %s, expected a number (or \"NaN\", \"Infinity\", \"-Infinity\")", s)
			}
			setFloat(t, i, f)
			return nil
		}
		return fmt.Errorf("got string %s, expected %s", s, expectation(t.DType))
	}
	switch d := t.Data.(type) {
	case []bool:
		switch s {
		case "true":
			d[i] = true
		case "false":
			d[i] = false
		default:
			return fmt.Errorf("got %s, expected true or false", s)
		}
	case []string:
		if tok[0] != '"' {
			return fmt.Errorf("got %s, expected a string", s)
		}
		var v string
		if err := json.Unmarshal(tok, &v); err != nil {
			return fmt.Errorf("invalid string %s", s)
		}
		d[i] = v
	case []float32, []float64:
		bits := 64
		if _, ok := d.([]float32); ok {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		setFloat(t, i, f)
	case []uint16:
		if t.DType == inference.FP16 {
			f, err := strconv.ParseFloat(s, 32)
			if err != nil {
				return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
			}
			setFloat(t, i, f)
			return nil
		}
		v, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		d[i] = uint16(v)
	case []uint8:
		v, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		d[i] = uint8(v)
	case []uint32:
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		d[i] = uint32(v)
	case []uint64:
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		d[i] = v
	case []int8:
		v, err := strconv.ParseInt(s, 10, 8)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		d[i] = int8(v)
	case []int16:
		v, err := strconv.ParseInt(s, 10, 16)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		d[i] = int16(v)
	case []int32:
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		d[i] = int32(v)
	case []int64:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("got %s, expected %s", s, expectation(t.DType))
		}
		d[i] = v
	}
	return nil
}

func expectation(dt inference.DType) string {
	switch dt {
	case inference.Bool:
		return "true or false"
	case inference.Bytes:
		return "a string"
	case inference.FP16, inference.FP32, inference.FP64:
		return "a number"
	}
	return "an integer in the range of " + string(dt)
}

func nonFinite(s string) (float64, bool) {
	switch s {
	case `"NaN"`, `"nan"`:
		return math.NaN(), true
	case `"Infinity"`, `"inf"`, `"+Infinity"`:
		return math.Inf(1), true
	case `"-Infinity"`, `"-inf"`:
		return math.Inf(-1), true
	}
	return 0, false
}

func setFloat(t *inference.Tensor, i int, f float64) {
	switch d := t.Data.(type) {
	case []float32:
		d[i] = float32(f)
	case []float64:
		d[i] = f
	case []uint16:
		d[i] = inference.Float32ToFloat16(float32(f))
	}
}

// appendJSONData appends t's elements as a flat JSON array. Non-finite
// floats, which JSON numbers cannot express, are written as the strings
// "NaN", "Infinity" and "-Infinity" (accepted on input too).
func appendJSONData(b []byte, t *inference.Tensor) []byte {
	b = append(b, '[')
	switch d := t.Data.(type) {
	case []bool:
		for i, v := range d {
			b = comma(b, i)
			b = strconv.AppendBool(b, v)
		}
	case []string:
		for i, v := range d {
			b = comma(b, i)
			enc, _ := json.Marshal(v)
			b = append(b, enc...)
		}
	case []float32:
		for i, v := range d {
			b = comma(b, i)
			b = appendFloat(b, float64(v), 32)
		}
	case []float64:
		for i, v := range d {
			b = comma(b, i)
			b = appendFloat(b, v, 64)
		}
	case []uint16:
		for i, v := range d {
			b = comma(b, i)
			if t.DType == inference.FP16 {
				b = appendFloat(b, float64(inference.Float16ToFloat32(v)), 32)
			} else {
				b = strconv.AppendUint(b, uint64(v), 10)
			}
		}
	case []uint8:
		for i, v := range d {
			b = comma(b, i)
			b = strconv.AppendUint(b, uint64(v), 10)
		}
	case []uint32:
		for i, v := range d {
			b = comma(b, i)
			b = strconv.AppendUint(b, uint64(v), 10)
		}
	case []uint64:
		for i, v := range d {
			b = comma(b, i)
			b = strconv.AppendUint(b, v, 10)
		}
	case []int8:
		for i, v := range d {
			b = comma(b, i)
			b = strconv.AppendInt(b, int64(v), 10)
		}
	case []int16:
		for i, v := range d {
			b = comma(b, i)
			b = strconv.AppendInt(b, int64(v), 10)
		}
	case []int32:
		for i, v := range d {
			b = comma(b, i)
			b = strconv.AppendInt(b, int64(v), 10)
		}
	case []int64:
		for i, v := range d {
			b = comma(b, i)
			b = strconv.AppendInt(b, v, 10)
		}
	}
	return append(b, ']')
}

func comma(b []byte, i int) []byte {
	if i > 0 {
		return append(b, ',')
	}
	return b
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// binaryData returns t's elements in the binary tensor data extension's
// layout: little-endian values, BYTES as 4-byte length-prefixed elements.
func binaryData(t *inference.Tensor) []byte {
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

// encodeResponse builds the response body. It returns the JSON header
// length when binary outputs follow, else -1.
func encodeResponse(model, version, id string, outputs []outputSpec, res map[string]*inference.Tensor) ([]byte, int) {
	resp := inferResponse{ModelName: model, ModelVersion: version, ID: id, Outputs: make([]responseOutput, 0, len(outputs))}
	var blobs [][]byte
	for _, o := range outputs {
		t := res[o.Name]
		ro := responseOutput{Name: o.Name, Datatype: string(t.DType), Shape: t.Shape}
		if o.Binary {
			blob := binaryData(t)
			ro.Parameters = map[string]any{"binary_data_size": len(blob)}
			blobs = append(blobs, blob)
		} else {
			ro.Data = appendJSONData(make([]byte, 0, 16*t.Len()+2), t)
		}
		resp.Outputs = append(resp.Outputs, ro)
	}
	body, _ := json.Marshal(resp)
	if blobs == nil {
		return body, -1
	}
	headerLen := len(body)
	for _, b := range blobs {
		body = append(body, b...)
	}
	return body, headerLen
}
