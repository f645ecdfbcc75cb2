package inference

import (
	"fmt"
	"math"

	ort "github.com/yalue/onnxruntime_go"
)

// DType is a tensor element type, spelled as in the Open Inference Protocol.
type DType string

// The element types ONNX Runtime handles. The Go type of Tensor.Data for
// each is given in the comment; FP16 values are IEEE 754 half-precision bit
// patterns and BYTES elements are byte strings held in Go strings.
const (
	Bool   DType = "BOOL"   // []bool
	Uint8  DType = "UINT8"  // []uint8
	Uint16 DType = "UINT16" // []uint16
	Uint32 DType = "UINT32" // []uint32
	Uint64 DType = "UINT64" // []uint64
	Int8   DType = "INT8"   // []int8
	Int16  DType = "INT16"  // []int16
	Int32  DType = "INT32"  // []int32
	Int64  DType = "INT64"  // []int64
	FP16   DType = "FP16"   // []uint16 (half-precision bits)
	FP32   DType = "FP32"   // []float32
	FP64   DType = "FP64"   // []float64
	Bytes  DType = "BYTES"  // []string
)

// DTypes lists every supported element type.
var DTypes = []DType{Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, FP16, FP32, FP64, Bytes}

// onnxTypes maps DTypes to ONNX TensorProto.DataType numbers, which ONNX
// Runtime's ONNXTensorElementDataType shares.
var onnxTypes = map[DType]int{
	FP32: 1, Uint8: 2, Int8: 3, Uint16: 4, Int16: 5, Int32: 6, Int64: 7,
	Bytes: 8, Bool: 9, FP16: 10, FP64: 11, Uint32: 12, Uint64: 13,
}

// DTypeFromONNX returns the DType for an ONNX TensorProto.DataType number.
func DTypeFromONNX(n int) (DType, bool) {
	for d, v := range onnxTypes {
		if v == n {
			return d, true
		}
	}
	return "", false
}

// ONNX returns the ONNX TensorProto.DataType number of d, or 0 if unknown.
func (d DType) ONNX() int { return onnxTypes[d] }

// Valid reports whether d is a supported element type.
func (d DType) Valid() bool { _, ok := onnxTypes[d]; return ok }

// Size returns the size in bytes of one element, or 0 for BYTES.
func (d DType) Size() int {
	switch d {
	case Bool, Uint8, Int8:
		return 1
	case Uint16, Int16, FP16:
		return 2
	case Uint32, Int32, FP32:
		return 4
	case Uint64, Int64, FP64:
		return 8
	}
	return 0
}

func ortType(d DType) ort.TensorElementDataType {
	return ort.TensorElementDataType(onnxTypes[d])
}

func dtypeFromORT(t ort.TensorElementDataType) (DType, error) {
	d, ok := DTypeFromONNX(int(t))
	if !ok {
		return "", fmt.Errorf("element type %s is not supported", t)
	}
	return d, nil
}

// Float16ToFloat32 converts IEEE 754 half-precision bits to a float32.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		for frac&0x400 == 0 {
			frac <<= 1
			exp--
		}
		exp++
		frac &= 0x3ff
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// Float32ToFloat16 converts a float32 to IEEE 754 half-precision bits,
// rounding to nearest even.
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	frac := b & 0x7fffff
	if exp == 0xff {
		if frac != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		frac |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := frac >> shift
		rem := frac & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | frac>>13
	rem := frac & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}
