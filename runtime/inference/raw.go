package inference

import (
	"encoding/binary"
	"fmt"
	"math"
)

// RawBytes returns the little-endian bytes of a numeric tensor's elements
// (one byte per BOOL); it returns nil for BYTES tensors.
func (t *Tensor) RawBytes() []byte {
	var out []byte
	switch d := t.Data.(type) {
	case []bool:
		for _, v := range d {
			if v {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
	case []uint8:
		out = append(out, d...)
	case []int8:
		for _, v := range d {
			out = append(out, byte(v))
		}
	case []uint16:
		for _, v := range d {
			out = binary.LittleEndian.AppendUint16(out, v)
		}
	case []int16:
		for _, v := range d {
			out = binary.LittleEndian.AppendUint16(out, uint16(v))
		}
	case []uint32:
		for _, v := range d {
			out = binary.LittleEndian.AppendUint32(out, v)
		}
	case []int32:
		for _, v := range d {
			out = binary.LittleEndian.AppendUint32(out, uint32(v))
		}
	case []float32:
		for _, v := range d {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	case []uint64:
		for _, v := range d {
			out = binary.LittleEndian.AppendUint64(out, v)
		}
	case []int64:
		for _, v := range d {
			out = binary.LittleEndian.AppendUint64(out, uint64(v))
		}
	case []float64:
		for _, v := range d {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		}
	}
	if out == nil && t.DType != Bytes {
		out = []byte{}
	}
	return out
}

// SetRaw fills a numeric tensor, whose Data is already allocated, from little-endian bytes (one byte per BOOL).
func (t *Tensor) SetRaw(raw []byte) error {
	if n := t.Len(); n >= 0 && t.DType != Bytes && len(raw) != n*t.DType.Size() {
		return fmt.Errorf("raw data has %d bytes, %s%v needs %d", len(raw), t.DType, t.Shape, n*t.DType.Size())
	}
	switch d := t.Data.(type) {
	case []bool:
		for i := range d {
			d[i] = raw[i] != 0
		}
	case []uint8:
		copy(d, raw)
	case []int8:
		for i := range d {
			d[i] = int8(raw[i])
		}
	case []uint16:
		for i := range d {
			d[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
	case []int16:
		for i := range d {
			d[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case []uint32:
		for i := range d {
			d[i] = binary.LittleEndian.Uint32(raw[4*i:])
		}
	case []int32:
		for i := range d {
			d[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case []float32:
		for i := range d {
			d[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case []uint64:
		for i := range d {
			d[i] = binary.LittleEndian.Uint64(raw[8*i:])
		}
	case []int64:
		for i := range d {
			d[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case []float64:
		for i := range d {
			d[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	default:
		return fmt.Errorf("setting raw data: %s tensors have no raw form", t.DType)
	}
	return nil
}
