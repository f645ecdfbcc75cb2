package onnxtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// ErrNotTensor is returned by UnmarshalTensor for messages that carry no
// tensor data type (for example SequenceProto or OptionalProto files).
var ErrNotTensor = errors.New("not a tensor")

// UnmarshalTensor decodes an ONNX TensorProto, returning its name and
// contents. Data may be in raw_data or in the typed repeated fields.
func UnmarshalTensor(b []byte) (string, *inference.Tensor, error) {
	var (
		name     string
		dims     = []int64{}
		dataType int
		raw      []byte
		hasRaw   bool
		floats   []float32
		int32s   []int64 // int32_data carries every type narrower than 32 bits too
		int64s   []int64
		doubles  []float64
		uint64s  []uint64
		strs     []string
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", nil, fmt.Errorf("decoding TensorProto: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var err error
		switch {
		case num == 1 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			dims = append(dims, int64(v))
		case num == 1 && typ == protowire.BytesType:
			n, err = packedVarints(b, func(v uint64) { dims = append(dims, int64(v)) })
		case num == 2 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			dataType = int(v)
		case num == 4 && typ == protowire.BytesType:
			var p []byte
			p, n = protowire.ConsumeBytes(b)
			for i := 0; i+4 <= len(p); i += 4 {
				floats = append(floats, math.Float32frombits(binary.LittleEndian.Uint32(p[i:])))
			}
		case num == 4 && typ == protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			floats = append(floats, math.Float32frombits(v))
		case num == 5 && typ == protowire.BytesType:
			n, err = packedVarints(b, func(v uint64) { int32s = append(int32s, int64(int32(v))) })
		case num == 5 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			int32s = append(int32s, int64(int32(v)))
		case num == 6 && typ == protowire.BytesType:
			var p []byte
			p, n = protowire.ConsumeBytes(b)
			strs = append(strs, string(p))
		case num == 7 && typ == protowire.BytesType:
			n, err = packedVarints(b, func(v uint64) { int64s = append(int64s, int64(v)) })
		case num == 7 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			int64s = append(int64s, int64(v))
		case num == 8 && typ == protowire.BytesType:
			var p []byte
			p, n = protowire.ConsumeBytes(b)
			name = string(p)
		case num == 9 && typ == protowire.BytesType:
			raw, n = protowire.ConsumeBytes(b)
			hasRaw = true
		case num == 10 && typ == protowire.BytesType:
			var p []byte
			p, n = protowire.ConsumeBytes(b)
			for i := 0; i+8 <= len(p); i += 8 {
				doubles = append(doubles, math.Float64frombits(binary.LittleEndian.Uint64(p[i:])))
			}
		case num == 11 && typ == protowire.BytesType:
			n, err = packedVarints(b, func(v uint64) { uint64s = append(uint64s, v) })
		case num == 14 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			if v != 0 {
				return "", nil, errors.New("decoding TensorProto: external data is not supported")
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if err != nil {
			return "", nil, err
		}
		if n < 0 {
			return "", nil, fmt.Errorf("decoding TensorProto field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if dataType == 0 {
		return "", nil, ErrNotTensor
	}
	dt, ok := inference.DTypeFromONNX(dataType)
	if !ok {
		return name, nil, fmt.Errorf("tensor %q: ONNX data type %d is not supported", name, dataType)
	}
	t, err := inference.NewTensor(dt, dims)
	if err != nil {
		return name, nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	n := int(inference.NumElements(dims))
	if dt == inference.Bytes {
		if len(strs) != n {
			return name, nil, fmt.Errorf("tensor %q: %d strings for %d elements", name, len(strs), n)
		}
		t.Data = strs
		return name, t, nil
	}
	if hasRaw {
		if len(raw) != n*dt.Size() {
			return name, nil, fmt.Errorf("tensor %q: raw_data has %d bytes, want %d", name, len(raw), n*dt.Size())
		}
		if err := t.SetRaw(raw); err != nil {
			return name, nil, err
		}
		return name, t, nil
	}
	var count int
	switch dt {
	case inference.FP32:
		count = len(floats)
		copy(t.Data.([]float32), floats)
	case inference.FP64:
		count = len(doubles)
		copy(t.Data.([]float64), doubles)
	case inference.Int64:
		count = len(int64s)
		copy(t.Data.([]int64), int64s)
	case inference.Uint32, inference.Uint64:
		count = len(uint64s)
		for i := 0; i < n && i < count; i++ {
			if dt == inference.Uint32 {
				t.Data.([]uint32)[i] = uint32(uint64s[i])
			} else {
				t.Data.([]uint64)[i] = uint64s[i]
			}
		}
	default:
		count = len(int32s)
		for i := 0; i < n && i < count; i++ {
			setInt(t, i, int32s[i])
		}
	}
	if count != n {
		return name, nil, fmt.Errorf("tensor %q: %d values for %d elements", name, count, n)
	}
	return name, t, nil
}

func setInt(t *inference.Tensor, i int, v int64) {
	switch d := t.Data.(type) {
	case []bool:
		d[i] = v != 0
	case []uint8:
		d[i] = uint8(v)
	case []int8:
		d[i] = int8(v)
	case []uint16:
		d[i] = uint16(v)
	case []int16:
		d[i] = int16(v)
	case []int32:
		d[i] = int32(v)
	}
}

func packedVarints(b []byte, f func(uint64)) (int, error) {
	p, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return n, nil
	}
	for len(p) > 0 {
		v, m := protowire.ConsumeVarint(p)
		if m < 0 {
			return 0, fmt.Errorf("decoding packed varints: %w", protowire.ParseError(m))
		}
		f(v)
		p = p[m:]
	}
	return n, nil
}
