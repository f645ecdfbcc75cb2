package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ModelSpec is a Keras Sequential model: an input shape and an ordered list
// of layers whose shapes are inferred one from the next. It decodes from HCL
// (a model block with layer "TYPE" {} blocks) and from JSON.
type ModelSpec struct {
	// InputShape is height, width, channels (or a single feature count for
	// flat inputs). It may instead be set on the first layer, as in Keras.
	InputShape []int       `hcl:"input_shape,optional" json:"input_shape,omitempty"`
	Layers     []LayerSpec `hcl:"layer,block" json:"layers"`
}

// LayerSpec is one layer. Type is one of conv2d, max_pooling2d, dense,
// flatten, dropout, relu, sigmoid, softmax (Keras spellings such as Conv2D
// and MaxPooling2D are accepted too). Fields that do not apply to the type
// must be left unset.
type LayerSpec struct {
	Type string `hcl:"type,label" json:"type"`
	// Conv2D.
	Filters    int    `hcl:"filters,optional" json:"filters,omitempty"`
	KernelSize []int  `hcl:"kernel_size,optional" json:"kernel_size,omitempty"`
	Strides    []int  `hcl:"strides,optional" json:"strides,omitempty"`
	Padding    string `hcl:"padding,optional" json:"padding,omitempty"`
	// Dense.
	Units int `hcl:"units,optional" json:"units,omitempty"`
	// Conv2D and Dense: relu, sigmoid, softmax or linear (the default).
	Activation string `hcl:"activation,optional" json:"activation,omitempty"`
	// Conv2D and Dense: he_uniform, he_normal, glorot_uniform, glorot_normal.
	// The default is he_uniform for relu layers and glorot_uniform otherwise.
	Initializer string `hcl:"initializer,optional" json:"initializer,omitempty"`
	// MaxPooling2D: pool size and strides (strides default to the pool size).
	PoolSize []int `hcl:"pool_size,optional" json:"pool_size,omitempty"`
	// Dropout.
	Rate float64 `hcl:"rate,optional" json:"rate,omitempty"`
	// InputShape on the first layer, as in Keras.
	InputShape []int `hcl:"input_shape,optional" json:"input_shape,omitempty"`
}

// ParseModelJSON decodes a ModelSpec from JSON, rejecting unknown fields.
func ParseModelJSON(data []byte) (ModelSpec, error) {
	var s ModelSpec
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return ModelSpec{}, fmt.Errorf("decoding model spec: %w", err)
	}
	return s, nil
}

type layerKind int

const (
	kindConv layerKind = iota + 1
	kindPool
	kindDense
	kindFlatten
	kindDropout
	kindAct
)

type activation int

const (
	actLinear activation = iota
	actReLU
	actSigmoid
	actSoftmax
)

func (a activation) String() string {
	return [...]string{"linear", "relu", "sigmoid", "softmax"}[a]
}

func parseActivation(s string) (activation, error) {
	switch strings.ToLower(s) {
	case "", "linear", "none":
		return actLinear, nil
	case "relu":
		return actReLU, nil
	case "sigmoid":
		return actSigmoid, nil
	case "softmax":
		return actSoftmax, nil
	}
	return 0, fmt.Errorf("unknown activation %q (want relu, sigmoid, softmax or linear)", s)
}

// shape is a per-sample tensor shape in NHWC order without the batch
// dimension; flat tensors have h = w = 1 and flat set.
type shape struct {
	h, w, c int
	flat    bool
}

func (s shape) size() int { return s.h * s.w * s.c }

func (s shape) String() string {
	if s.flat {
		return fmt.Sprintf("(%d)", s.c)
	}
	return fmt.Sprintf("(%d, %d, %d)", s.h, s.w, s.c)
}

// layer is a resolved layer: kind, hyper-parameters, shapes and the offsets
// of its parameters in the model's flat parameter vector.
type layer struct {
	index  int
	kind   layerKind
	name   string // e.g. "conv2d_1", used in errors and in the ONNX graph
	in     shape
	out    shape
	act    activation
	init   string
	kh, kw int
	sh, sw int
	padT   int
	padL   int
	rate   float32
	wOff   int // weights offset
	wLen   int
	bOff   int // bias offset
	bLen   int
}

func (l *layer) fanIn() int {
	if l.kind == kindConv {
		return l.kh * l.kw * l.in.c
	}
	return l.in.size()
}

func (l *layer) fanOut() int {
	if l.kind == kindConv {
		return l.kh * l.kw * l.out.c
	}
	return l.out.size()
}

func normType(t string) string {
	return strings.ReplaceAll(strings.ToLower(t), "_", "")
}

func pair(v []int, def int, what string) (int, int, error) {
	switch len(v) {
	case 0:
		return def, def, nil
	case 1:
		if v[0] <= 0 {
			return 0, 0, fmt.Errorf("%s must be positive, got %v", what, v)
		}
		return v[0], v[0], nil
	case 2:
		if v[0] <= 0 || v[1] <= 0 {
			return 0, 0, fmt.Errorf("%s must be positive, got %v", what, v)
		}
		return v[0], v[1], nil
	}
	return 0, 0, fmt.Errorf("%s must have one or two values, got %v", what, v)
}

// resolve checks the spec and infers every layer's shapes. Errors name the
// layer (its position and type) whose settings or shape do not fit.
func (s ModelSpec) resolve() ([]*layer, shape, error) {
	if len(s.Layers) == 0 {
		return nil, shape{}, errors.New("model has no layers")
	}
	inShape := s.InputShape
	if len(s.Layers[0].InputShape) > 0 {
		if len(inShape) > 0 {
			return nil, shape{}, errors.New("input_shape is set both on the model and on layer 1")
		}
		inShape = s.Layers[0].InputShape
	}
	var in shape
	switch len(inShape) {
	case 1:
		in = shape{1, 1, inShape[0], true}
	case 2:
		in = shape{inShape[0], inShape[1], 1, false}
	case 3:
		in = shape{inShape[0], inShape[1], inShape[2], false}
	default:
		return nil, shape{}, fmt.Errorf("input_shape must be [height, width, channels] or [features], got %v", inShape)
	}
	if in.h <= 0 || in.w <= 0 || in.c <= 0 {
		return nil, shape{}, fmt.Errorf("input_shape must be positive, got %v", inShape)
	}
	counts := map[string]int{}
	var layers []*layer
	cur := in
	off := 0
	for i, ls := range s.Layers {
		l := &layer{index: i, in: cur}
		t := normType(ls.Type)
		wrap := func(err error) error {
			return fmt.Errorf("layer %d (%s): %w", i+1, ls.Type, err)
		}
		if i > 0 && len(ls.InputShape) > 0 {
			return nil, shape{}, wrap(errors.New("input_shape is only allowed on the first layer"))
		}
		act, err := parseActivation(ls.Activation)
		if err != nil {
			return nil, shape{}, wrap(err)
		}
		switch t {
		case "conv2d":
			l.kind = kindConv
			if cur.flat {
				return nil, shape{}, wrap(fmt.Errorf("needs an image input (height, width, channels), got %v", cur))
			}
			if ls.Filters <= 0 {
				return nil, shape{}, wrap(errors.New("filters must be set and positive"))
			}
			if len(ls.KernelSize) == 0 {
				return nil, shape{}, wrap(errors.New("kernel_size must be set"))
			}
			if l.kh, l.kw, err = pair(ls.KernelSize, 0, "kernel_size"); err != nil {
				return nil, shape{}, wrap(err)
			}
			if l.sh, l.sw, err = pair(ls.Strides, 1, "strides"); err != nil {
				return nil, shape{}, wrap(err)
			}
			var oh, ow int
			switch strings.ToLower(ls.Padding) {
			case "", "valid":
				oh = (cur.h-l.kh)/l.sh + 1
				ow = (cur.w-l.kw)/l.sw + 1
				if cur.h < l.kh || cur.w < l.kw {
					return nil, shape{}, wrap(fmt.Errorf("kernel %dx%d does not fit input %v with valid padding", l.kh, l.kw, cur))
				}
			case "same":
				oh = (cur.h + l.sh - 1) / l.sh
				ow = (cur.w + l.sw - 1) / l.sw
				ph := max((oh-1)*l.sh+l.kh-cur.h, 0)
				pw := max((ow-1)*l.sw+l.kw-cur.w, 0)
				l.padT, l.padL = ph/2, pw/2
			default:
				return nil, shape{}, wrap(fmt.Errorf("unknown padding %q (want valid or same)", ls.Padding))
			}
			l.out = shape{oh, ow, ls.Filters, false}
			l.act = act
			l.wLen = l.kh * l.kw * cur.c * ls.Filters
			l.bLen = ls.Filters
		case "maxpooling2d", "maxpool2d":
			l.kind = kindPool
			t = "max_pooling2d"
			if cur.flat {
				return nil, shape{}, wrap(fmt.Errorf("needs an image input (height, width, channels), got %v", cur))
			}
			if l.kh, l.kw, err = pair(ls.PoolSize, 2, "pool_size"); err != nil {
				return nil, shape{}, wrap(err)
			}
			if l.sh, l.sw, err = pair(ls.Strides, 0, "strides"); err != nil {
				return nil, shape{}, wrap(err)
			}
			if l.sh == 0 {
				l.sh, l.sw = l.kh, l.kw
			}
			if cur.h < l.kh || cur.w < l.kw {
				return nil, shape{}, wrap(fmt.Errorf("pool %dx%d does not fit input %v", l.kh, l.kw, cur))
			}
			if ls.Padding != "" && strings.ToLower(ls.Padding) != "valid" {
				return nil, shape{}, wrap(errors.New("only valid padding is supported for pooling"))
			}
			l.out = shape{(cur.h-l.kh)/l.sh + 1, (cur.w-l.kw)/l.sw + 1, cur.c, false}
		case "dense":
			l.kind = kindDense
			if !cur.flat {
				return nil, shape{}, wrap(fmt.Errorf("needs a flat input, got %v: add a flatten layer before it", cur))
			}
			if ls.Units <= 0 {
				return nil, shape{}, wrap(errors.New("units must be set and positive"))
			}
			l.out = shape{1, 1, ls.Units, true}
			l.act = act
			l.wLen = cur.c * ls.Units
			l.bLen = ls.Units
		case "flatten":
			l.kind = kindFlatten
			l.out = shape{1, 1, cur.size(), true}
		case "dropout":
			l.kind = kindDropout
			if ls.Rate < 0 || ls.Rate >= 1 {
				return nil, shape{}, wrap(fmt.Errorf("rate must be in [0, 1), got %v", ls.Rate))
			}
			l.rate = float32(ls.Rate)
			l.out = cur
		case "relu", "sigmoid", "softmax", "activation":
			l.kind = kindAct
			if t != "activation" {
				act, _ = parseActivation(t)
			}
			l.act = act
			l.out = cur
		default:
			return nil, shape{}, wrap(fmt.Errorf("unknown layer type (want conv2d, max_pooling2d, dense, flatten, dropout, relu, sigmoid or softmax)"))
		}
		if l.kind != kindConv && l.kind != kindDense {
			if ls.Filters != 0 || ls.Units != 0 || len(ls.KernelSize) > 0 || ls.Initializer != "" || (ls.Activation != "" && l.kind != kindAct) {
				return nil, shape{}, wrap(errors.New("filters, units, kernel_size, activation and initializer apply only to conv2d and dense"))
			}
		}
		if l.kind != kindDropout && ls.Rate != 0 {
			return nil, shape{}, wrap(errors.New("rate applies only to dropout"))
		}
		if l.kind == kindConv || l.kind == kindDense {
			l.init = strings.ToLower(ls.Initializer)
			switch l.init {
			case "":
				l.init = "glorot_uniform"
				if act == actReLU {
					l.init = "he_uniform"
				}
			case "he_uniform", "he_normal", "glorot_uniform", "glorot_normal":
			default:
				return nil, shape{}, wrap(fmt.Errorf("unknown initializer %q (want he_uniform, he_normal, glorot_uniform or glorot_normal)", ls.Initializer))
			}
			l.wOff, off = off, off+l.wLen
			l.bOff, off = off, off+l.bLen
		}
		if l.out.size() <= 0 {
			return nil, shape{}, wrap(fmt.Errorf("output shape %v is empty", l.out))
		}
		name := map[layerKind]string{kindConv: "conv2d", kindPool: "max_pooling2d", kindDense: "dense", kindFlatten: "flatten", kindDropout: "dropout", kindAct: "activation"}[l.kind]
		counts[name]++
		l.name = fmt.Sprintf("%s_%d", name, counts[name])
		layers = append(layers, l)
		cur = l.out
	}
	return layers, in, nil
}
