package inference

import (
	"fmt"
)

// Tensor is a dense tensor in row-major order. Data is the typed slice that
// DType names (see the DType constants).
type Tensor struct {
	DType DType
	Shape []int64
	Data  any
}

// NumElements returns the product of shape's dimensions (1 for a scalar),
// or -1 if a dimension is negative or the product overflows.
func NumElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > (1<<62)/d {
			return -1
		}
		n *= d
	}
	return n
}

// Len returns the number of elements held in Data, or -1 if Data is not the
// slice type that DType requires.
func (t *Tensor) Len() int {
	switch d := t.Data.(type) {
	case []bool:
		if t.DType == Bool {
			return len(d)
		}
	case []uint8:
		if t.DType == Uint8 {
			return len(d)
		}
	case []uint16:
		if t.DType == Uint16 || t.DType == FP16 {
			return len(d)
		}
	case []uint32:
		if t.DType == Uint32 {
			return len(d)
		}
	case []uint64:
		if t.DType == Uint64 {
			return len(d)
		}
	case []int8:
		if t.DType == Int8 {
			return len(d)
		}
	case []int16:
		if t.DType == Int16 {
			return len(d)
		}
	case []int32:
		if t.DType == Int32 {
			return len(d)
		}
	case []int64:
		if t.DType == Int64 {
			return len(d)
		}
	case []float32:
		if t.DType == FP32 {
			return len(d)
		}
	case []float64:
		if t.DType == FP64 {
			return len(d)
		}
	case []string:
		if t.DType == Bytes {
			return len(d)
		}
	}
	return -1
}

// Validate checks that Data has the Go type DType requires and holds exactly
// as many elements as Shape describes.
func (t *Tensor) Validate() error {
	if !t.DType.Valid() {
		return fmt.Errorf("unsupported datatype %q", t.DType)
	}
	want := NumElements(t.Shape)
	if want < 0 {
		return fmt.Errorf("invalid shape %v", t.Shape)
	}
	got := t.Len()
	if got < 0 {
		return fmt.Errorf("data of Go type %T does not match datatype %s", t.Data, t.DType)
	}
	if int64(got) != want {
		return fmt.Errorf("shape %v needs %d elements, got %d", t.Shape, want, got)
	}
	return nil
}

// NewTensor returns a zero-filled tensor of the given type and shape.
func NewTensor(dtype DType, shape []int64) (*Tensor, error) {
	n := NumElements(shape)
	if n < 0 {
		return nil, fmt.Errorf("invalid shape %v", shape)
	}
	var data any
	switch dtype {
	case Bool:
		data = make([]bool, n)
	case Uint8:
		data = make([]uint8, n)
	case Uint16, FP16:
		data = make([]uint16, n)
	case Uint32:
		data = make([]uint32, n)
	case Uint64:
		data = make([]uint64, n)
	case Int8:
		data = make([]int8, n)
	case Int16:
		data = make([]int16, n)
	case Int32:
		data = make([]int32, n)
	case Int64:
		data = make([]int64, n)
	case FP32:
		data = make([]float32, n)
	case FP64:
		data = make([]float64, n)
	case Bytes:
		data = make([]string, n)
	default:
		return nil, fmt.Errorf("unsupported datatype %q", dtype)
	}
	return &Tensor{DType: dtype, Shape: append([]int64{}, shape...), Data: data}, nil
}

// ConcatRows joins tensors of one type along dimension 0. All tensors must
// have rank >= 1 and equal dimensions after the first.
func ConcatRows(ts []*Tensor) (*Tensor, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("concatenating: no tensors")
	}
	first := ts[0]
	if len(first.Shape) == 0 {
		return nil, fmt.Errorf("concatenating: scalar tensors have no rows")
	}
	rows := int64(0)
	for _, t := range ts {
		if t.DType != first.DType || !sameTail(t.Shape, first.Shape) {
			return nil, fmt.Errorf("concatenating: %s%v does not match %s%v", t.DType, t.Shape, first.DType, first.Shape)
		}
		rows += t.Shape[0]
	}
	shape := append([]int64{rows}, first.Shape[1:]...)
	out, err := NewTensor(first.DType, shape)
	if err != nil {
		return nil, err
	}
	off := 0
	for _, t := range ts {
		off += copyAt(out.Data, t.Data, off)
	}
	return out, nil
}

// SplitRows cuts t along dimension 0 into pieces of the given row counts,
// which must add up to t.Shape[0].
func SplitRows(t *Tensor, rows []int64) ([]*Tensor, error) {
	if len(t.Shape) == 0 {
		return nil, fmt.Errorf("splitting: scalar tensor has no rows")
	}
	total := int64(0)
	for _, r := range rows {
		total += r
	}
	if total != t.Shape[0] {
		return nil, fmt.Errorf("splitting: %d rows requested, tensor has %d", total, t.Shape[0])
	}
	per := NumElements(t.Shape[1:])
	out := make([]*Tensor, len(rows))
	off := int64(0)
	for i, r := range rows {
		shape := append([]int64{r}, t.Shape[1:]...)
		out[i] = &Tensor{DType: t.DType, Shape: shape, Data: sliceOf(t.Data, off*per, (off+r)*per)}
		off += r
	}
	return out, nil
}

func sameTail(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 1; i < len(a); i++ {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func copyAt(dst, src any, off int) int {
	switch d := dst.(type) {
	case []bool:
		return copy(d[off:], src.([]bool))
	case []uint8:
		return copy(d[off:], src.([]uint8))
	case []uint16:
		return copy(d[off:], src.([]uint16))
	case []uint32:
		return copy(d[off:], src.([]uint32))
	case []uint64:
		return copy(d[off:], src.([]uint64))
	case []int8:
		return copy(d[off:], src.([]int8))
	case []int16:
		return copy(d[off:], src.([]int16))
	case []int32:
		return copy(d[off:], src.([]int32))
	case []int64:
		return copy(d[off:], src.([]int64))
	case []float32:
		return copy(d[off:], src.([]float32))
	case []float64:
		return copy(d[off:], src.([]float64))
	case []string:
		return copy(d[off:], src.([]string))
	}
	panic(fmt.Sprintf("inference: unsupported data type %T", dst))
}

// sliceOf returns data[lo:hi] for any supported slice type, sharing memory.
func sliceOf(data any, lo, hi int64) any {
	switch d := data.(type) {
	case []bool:
		return d[lo:hi:hi]
	case []uint8:
		return d[lo:hi:hi]
	case []uint16:
		return d[lo:hi:hi]
	case []uint32:
		return d[lo:hi:hi]
	case []uint64:
		return d[lo:hi:hi]
	case []int8:
		return d[lo:hi:hi]
	case []int16:
		return d[lo:hi:hi]
	case []int32:
		return d[lo:hi:hi]
	case []int64:
		return d[lo:hi:hi]
	case []float32:
		return d[lo:hi:hi]
	case []float64:
		return d[lo:hi:hi]
	case []string:
		return d[lo:hi:hi]
	}
	panic(fmt.Sprintf("inference: unsupported data type %T", data))
}
