package train

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX export. The graph is written field by field with protowire from the
// field numbers of onnx.proto, so no generated ONNX package is needed.
// The graph takes "input" as [batch, height, width, channels] (NHWC, as the
// model was trained) with a symbolic batch dimension, transposes it to NCHW
// for Conv and MaxPool, transposes back before Flatten so that dense weights
// keep the Keras order, and returns "output" [batch, outputs] with the final
// activation applied. Dropout is the identity at inference and is omitted.

const (
	onnxOpset     = 13
	onnxIRVersion = 7

	onnxFloat = 1 // TensorProto.DataType FLOAT

	attrFloat = 1
	attrInt   = 2
	attrInts  = 7
)

// ONNX proto field numbers.
const (
	modelIRVersion   = 1
	modelProducer    = 2
	modelProducerVer = 3
	modelGraph       = 7
	modelOpset       = 8

	opsetDomain  = 1
	opsetVersion = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5

	attrName    = 1
	attrF       = 2
	attrI       = 3
	attrIntsFld = 8
	attrType    = 20

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9

	valueName = 1
	valueType = 2

	typeTensor     = 1
	tensorElemType = 1
	tensorShape    = 2
	shapeDim       = 1
	dimValue       = 1
	dimParam       = 2
)

type onnxAttr struct {
	name string
	kind int
	i    int64
	f    float32
	ints []int64
}

type onnxNode struct {
	op      string
	name    string
	inputs  []string
	outputs []string
	attrs   []onnxAttr
}

type onnxTensor struct {
	name string
	dims []int64
	data []float32
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func (a onnxAttr) marshal() []byte {
	var b []byte
	b = appendString(b, attrName, a.name)
	switch a.kind {
	case attrInt:
		b = appendVarint(b, attrI, a.i)
	case attrFloat:
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.f))
	case attrInts:
		for _, v := range a.ints {
			b = appendVarint(b, attrIntsFld, v)
		}
	}
	return appendVarint(b, attrType, int64(a.kind))
}

func (n onnxNode) marshal() []byte {
	var b []byte
	for _, in := range n.inputs {
		b = appendString(b, nodeInput, in)
	}
	for _, out := range n.outputs {
		b = appendString(b, nodeOutput, out)
	}
	b = appendString(b, nodeName, n.name)
	b = appendString(b, nodeOpType, n.op)
	for _, a := range n.attrs {
		b = appendBytes(b, nodeAttribute, a.marshal())
	}
	return b
}

func (t onnxTensor) marshal() []byte {
	var b []byte
	for _, d := range t.dims {
		b = appendVarint(b, tensorDims, d)
	}
	b = appendVarint(b, tensorDataType, onnxFloat)
	b = appendString(b, tensorName, t.name)
	raw := make([]byte, 4*len(t.data))
	for i, v := range t.data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return appendBytes(b, tensorRawData, raw)
}

// valueInfo describes a float tensor whose first dimension is the symbolic
// "batch" and whose other dimensions are fixed.
func valueInfo(name string, dims []int) []byte {
	var shape []byte
	var d []byte
	d = appendString(d, dimParam, "batch")
	shape = appendBytes(shape, shapeDim, d)
	for _, v := range dims {
		d = appendVarint(nil, dimValue, int64(v))
		shape = appendBytes(shape, shapeDim, d)
	}
	var tt []byte
	tt = appendVarint(tt, tensorElemType, onnxFloat)
	tt = appendBytes(tt, tensorShape, shape)
	var typ []byte
	typ = appendBytes(typ, typeTensor, tt)
	var b []byte
	b = appendString(b, valueName, name)
	return appendBytes(b, valueType, typ)
}

// ExportONNX serialises the model as an ONNX ModelProto (opset 13).
func (m *Model) ExportONNX(producerVersion string) ([]byte, error) {
	var nodes []onnxNode
	var inits []onnxTensor
	cur := "input"
	nchw := false // layout of cur
	toNCHW := func() {
		if nchw || m.in.flat {
			return
		}
		nodes = append(nodes, onnxNode{op: "Transpose", name: cur + "_to_nchw", inputs: []string{cur}, outputs: []string{cur + "_nchw"},
			attrs: []onnxAttr{{name: "perm", kind: attrInts, ints: []int64{0, 3, 1, 2}}}})
		cur += "_nchw"
		nchw = true
	}
	toNHWC := func() {
		if !nchw {
			return
		}
		nodes = append(nodes, onnxNode{op: "Transpose", name: cur + "_to_nhwc", inputs: []string{cur}, outputs: []string{cur + "_nhwc"},
			attrs: []onnxAttr{{name: "perm", kind: attrInts, ints: []int64{0, 2, 3, 1}}}})
		cur += "_nhwc"
		nchw = false
	}
	addAct := func(l *layer, a activation) error {
		op := map[activation]string{actReLU: "Relu", actSigmoid: "Sigmoid", actSoftmax: "Softmax"}[a]
		if op == "" {
			return nil
		}
		var attrs []onnxAttr
		if a == actSoftmax {
			axis := int64(-1)
			if nchw {
				axis = 1
				// Softmax-13 normalises along one axis; channels are axis 1 in NCHW.
			}
			attrs = append(attrs, onnxAttr{name: "axis", kind: attrInt, i: axis})
		}
		out := l.name + "_" + a.String()
		nodes = append(nodes, onnxNode{op: op, name: out, inputs: []string{cur}, outputs: []string{out}, attrs: attrs})
		cur = out
		return nil
	}
	for _, l := range m.layers {
		switch l.kind {
		case kindConv:
			toNCHW()
			cin, cout := l.in.c, l.out.c
			w := make([]float32, l.wLen)
			src := m.Params[l.wOff : l.wOff+l.wLen]
			// ours: [kh][kw][cin][cout]; ONNX: [cout][cin][kh][kw]
			for ky := 0; ky < l.kh; ky++ {
				for kx := 0; kx < l.kw; kx++ {
					for ci := 0; ci < cin; ci++ {
						for co := 0; co < cout; co++ {
							w[((co*cin+ci)*l.kh+ky)*l.kw+kx] = src[((ky*l.kw+kx)*cin+ci)*cout+co]
						}
					}
				}
			}
			inits = append(inits,
				onnxTensor{name: l.name + "_W", dims: []int64{int64(cout), int64(cin), int64(l.kh), int64(l.kw)}, data: w},
				onnxTensor{name: l.name + "_B", dims: []int64{int64(cout)}, data: m.Params[l.bOff : l.bOff+l.bLen]})
			padB := (l.out.h-1)*l.sh + l.kh - l.in.h - l.padT
			padR := (l.out.w-1)*l.sw + l.kw - l.in.w - l.padL
			nodes = append(nodes, onnxNode{op: "Conv", name: l.name, inputs: []string{cur, l.name + "_W", l.name + "_B"}, outputs: []string{l.name},
				attrs: []onnxAttr{
					{name: "kernel_shape", kind: attrInts, ints: []int64{int64(l.kh), int64(l.kw)}},
					{name: "strides", kind: attrInts, ints: []int64{int64(l.sh), int64(l.sw)}},
					{name: "pads", kind: attrInts, ints: []int64{int64(l.padT), int64(l.padL), int64(max(padB, 0)), int64(max(padR, 0))}},
				}})
			cur = l.name
			if err := addAct(l, l.act); err != nil {
				return nil, err
			}
		case kindPool:
			toNCHW()
			nodes = append(nodes, onnxNode{op: "MaxPool", name: l.name, inputs: []string{cur}, outputs: []string{l.name},
				attrs: []onnxAttr{
					{name: "kernel_shape", kind: attrInts, ints: []int64{int64(l.kh), int64(l.kw)}},
					{name: "strides", kind: attrInts, ints: []int64{int64(l.sh), int64(l.sw)}},
				}})
			cur = l.name
		case kindFlatten:
			toNHWC()
			nodes = append(nodes, onnxNode{op: "Flatten", name: l.name, inputs: []string{cur}, outputs: []string{l.name},
				attrs: []onnxAttr{{name: "axis", kind: attrInt, i: 1}}})
			cur = l.name
		case kindDense:
			inits = append(inits,
				onnxTensor{name: l.name + "_W", dims: []int64{int64(l.in.c), int64(l.out.c)}, data: m.Params[l.wOff : l.wOff+l.wLen]},
				onnxTensor{name: l.name + "_B", dims: []int64{int64(l.out.c)}, data: m.Params[l.bOff : l.bOff+l.bLen]})
			nodes = append(nodes, onnxNode{op: "Gemm", name: l.name, inputs: []string{cur, l.name + "_W", l.name + "_B"}, outputs: []string{l.name}})
			cur = l.name
			if err := addAct(l, l.act); err != nil {
				return nil, err
			}
		case kindDropout:
			// identity at inference
		case kindAct:
			if err := addAct(l, l.act); err != nil {
				return nil, err
			}
		}
	}
	toNHWC()
	nodes = append(nodes, onnxNode{op: "Identity", name: "output", inputs: []string{cur}, outputs: []string{"output"}})

	var g []byte
	for _, n := range nodes {
		g = appendBytes(g, graphNode, n.marshal())
	}
	g = appendString(g, graphName, "hadron_sequential")
	for _, t := range inits {
		g = appendBytes(g, graphInitializer, t.marshal())
	}
	g = appendBytes(g, graphInput, valueInfo("input", m.InputShape()))
	outDims := []int{m.out.c}
	if !m.out.flat {
		outDims = []int{m.out.h, m.out.w, m.out.c}
	}
	g = appendBytes(g, graphOutput, valueInfo("output", outDims))

	var b []byte
	b = appendVarint(b, modelIRVersion, onnxIRVersion)
	b = appendString(b, modelProducer, "hadron")
	b = appendString(b, modelProducerVer, producerVersion)
	b = appendBytes(b, modelGraph, g)
	var op []byte
	op = appendString(op, opsetDomain, "")
	op = appendVarint(op, opsetVersion, onnxOpset)
	b = appendBytes(b, modelOpset, op)
	if len(b) > math.MaxInt32 {
		return nil, fmt.Errorf("model is %d bytes, over the 2 GiB protobuf limit", len(b))
	}
	return b, nil
}
