// Package onnxtest builds small ONNX models and reads and writes ONNX
// TensorProto messages with protowire, for tests, fixtures and benchmarks.
// It covers the handful of protobuf fields these need, not all of ONNX.
package onnxtest

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// Attr is a node attribute. Exactly one of the value fields is used, picked
// by the Go type of Value: float32, int64, string, []float32 or []int64.
type Attr struct {
	Name  string
	Value any
}

// Node is one graph node.
type Node struct {
	Op      string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Value declares a graph input or output. Shape entries of -1 are dynamic
// (written as a dim_param); a nil Shape leaves the shape unknown.
type Value struct {
	Name  string
	DType inference.DType
	Shape []int64
}

// Graph is a model: nodes in topological order, initializers, inputs and outputs.
type Graph struct {
	Name         string
	Opset        int64
	Nodes        []Node
	Initializers map[string]*inference.Tensor
	Inputs       []Value
	Outputs      []Value
}

// Marshal encodes g as an ONNX ModelProto (IR version 8).
func (g *Graph) Marshal() ([]byte, error) {
	var gb []byte
	for _, n := range g.Nodes {
		var nb []byte
		for _, in := range n.Inputs {
			nb = protowire.AppendTag(nb, 1, protowire.BytesType)
			nb = protowire.AppendString(nb, in)
		}
		for _, out := range n.Outputs {
			nb = protowire.AppendTag(nb, 2, protowire.BytesType)
			nb = protowire.AppendString(nb, out)
		}
		nb = protowire.AppendTag(nb, 4, protowire.BytesType)
		nb = protowire.AppendString(nb, n.Op)
		for _, a := range n.Attrs {
			ab, err := marshalAttr(a)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", n.Op, err)
			}
			nb = protowire.AppendTag(nb, 5, protowire.BytesType)
			nb = protowire.AppendBytes(nb, ab)
		}
		gb = protowire.AppendTag(gb, 1, protowire.BytesType)
		gb = protowire.AppendBytes(gb, nb)
	}
	gb = protowire.AppendTag(gb, 2, protowire.BytesType)
	gb = protowire.AppendString(gb, g.Name)
	for _, name := range sortedKeys(g.Initializers) {
		tb, err := MarshalTensor(name, g.Initializers[name])
		if err != nil {
			return nil, err
		}
		gb = protowire.AppendTag(gb, 5, protowire.BytesType)
		gb = protowire.AppendBytes(gb, tb)
	}
	for _, v := range g.Inputs {
		gb = protowire.AppendTag(gb, 11, protowire.BytesType)
		gb = protowire.AppendBytes(gb, marshalValueInfo(v))
	}
	for _, v := range g.Outputs {
		gb = protowire.AppendTag(gb, 12, protowire.BytesType)
		gb = protowire.AppendBytes(gb, marshalValueInfo(v))
	}
	opset := g.Opset
	if opset == 0 {
		opset = 17
	}
	var ob []byte
	ob = protowire.AppendTag(ob, 2, protowire.VarintType)
	ob = protowire.AppendVarint(ob, uint64(opset))
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 8)
	m = protowire.AppendTag(m, 2, protowire.BytesType)
	m = protowire.AppendString(m, "hadron-onnxtest")
	m = protowire.AppendTag(m, 7, protowire.BytesType)
	m = protowire.AppendBytes(m, gb)
	m = protowire.AppendTag(m, 8, protowire.BytesType)
	m = protowire.AppendBytes(m, ob)
	return m, nil
}

func sortedKeys(m map[string]*inference.Tensor) []string {
	return inference.SortedNames(m)
}

func marshalAttr(a Attr) ([]byte, error) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, a.Name)
	var typ uint64
	switch v := a.Value.(type) {
	case float32:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(v))
		typ = 1
	case int64:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v))
		typ = 2
	case string:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, v)
		typ = 3
	case []float32:
		var p []byte
		for _, f := range v {
			p = protowire.AppendFixed32(p, math.Float32bits(f))
		}
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
		typ = 6
	case []int64:
		var p []byte
		for _, i := range v {
			p = protowire.AppendVarint(p, uint64(i))
		}
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
		typ = 7
	default:
		return nil, fmt.Errorf("attribute %s: unsupported value type %T", a.Name, a.Value)
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	b = protowire.AppendVarint(b, typ)
	return b, nil
}

func marshalValueInfo(v Value) []byte {
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(v.DType.ONNX()))
	if v.Shape != nil {
		var sb []byte
		for i, d := range v.Shape {
			var db []byte
			if d < 0 {
				db = protowire.AppendTag(db, 2, protowire.BytesType)
				db = protowire.AppendString(db, fmt.Sprintf("%s_d%d", v.Name, i))
			} else {
				db = protowire.AppendTag(db, 1, protowire.VarintType)
				db = protowire.AppendVarint(db, uint64(d))
			}
			sb = protowire.AppendTag(sb, 1, protowire.BytesType)
			sb = protowire.AppendBytes(sb, db)
		}
		tt = protowire.AppendTag(tt, 2, protowire.BytesType)
		tt = protowire.AppendBytes(tt, sb)
	}
	var tp []byte
	tp = protowire.AppendTag(tp, 1, protowire.BytesType)
	tp = protowire.AppendBytes(tp, tt)
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, v.Name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, tp)
	return b
}

// MarshalTensor encodes t as a TensorProto, numeric data in raw_data.
func MarshalTensor(name string, t *inference.Tensor) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	var b []byte
	for _, d := range t.Shape {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.DType.ONNX()))
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendString(b, name)
	if s, ok := t.Data.([]string); ok {
		for _, e := range s {
			b = protowire.AppendTag(b, 6, protowire.BytesType)
			b = protowire.AppendString(b, e)
		}
		return b, nil
	}
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	b = protowire.AppendBytes(b, t.RawBytes())
	return b, nil
}
