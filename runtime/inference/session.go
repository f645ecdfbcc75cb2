package inference

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// SessionOptions configures one Session.
type SessionOptions struct {
	// ExecutionProvider overrides the Runtime's: cpu, cuda or auto.
	ExecutionProvider string
	// IntraOpThreads overrides the Runtime's intra-op thread count (0 keeps it).
	IntraOpThreads int
	// InterOpThreads sets the inter-op thread count (0 lets ORT choose).
	InterOpThreads int
}

// TensorInfo describes one model input or output. Dynamic dimensions are -1.
type TensorInfo struct {
	Name  string  `json:"name"`
	DType DType   `json:"datatype"`
	Shape []int64 `json:"shape"`
}

// Signature lists a model's inputs and outputs in model order.
type Signature struct {
	Inputs  []TensorInfo `json:"inputs"`
	Outputs []TensorInfo `json:"outputs"`
}

// Input returns the input named name.
func (s Signature) Input(name string) (TensorInfo, bool) { return find(s.Inputs, name) }

// Output returns the output named name.
func (s Signature) Output(name string) (TensorInfo, bool) { return find(s.Outputs, name) }

func find(ts []TensorInfo, name string) (TensorInfo, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return TensorInfo{}, false
}

// InputError reports a request that does not match the model's signature:
// a missing, unknown or malformed input, or an unknown output. Its message
// names the tensor and what was expected.
type InputError struct {
	Msg string
}

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// Session is a loaded model. Run may be called from many goroutines at once.
type Session struct {
	rt       *Runtime
	sess     *ort.DynamicAdvancedSession
	sig      Signature
	provider string

	mu     sync.RWMutex // Run holds it shared; Close takes it exclusively
	closed bool
}

// Load reads an ONNX model file and creates a session for it.
func (rt *Runtime) Load(path string, opts SessionOptions) (*Session, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading model: %w", err)
	}
	s, err := rt.LoadBytes(data, opts)
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", path, err)
	}
	return s, nil
}

// LoadBytes creates a session from an ONNX model held in memory.
func (rt *Runtime) LoadBytes(model []byte, opts SessionOptions) (*Session, error) {
	provider, err := rt.resolveProvider(opts.ExecutionProvider)
	if err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, fmt.Errorf("reading model signature: %w", err)
	}
	var sig Signature
	if sig.Inputs, err = tensorInfos("input", ins); err != nil {
		return nil, err
	}
	if sig.Outputs, err = tensorInfos("output", outs); err != nil {
		return nil, err
	}
	threads := opts.IntraOpThreads
	if threads == 0 {
		threads = rt.opts.IntraOpThreads
	}
	sess, err := rt.newSession(model, sig, provider, threads, opts.InterOpThreads)
	if err != nil && provider == ProviderCUDA && opts.ExecutionProvider != ProviderCUDA &&
		(opts.ExecutionProvider != "" || rt.opts.ExecutionProvider != ProviderCUDA) {
		rt.log.Warn("CUDA session failed, using the CPU execution provider", "error", err.Error())
		provider = ProviderCPU
		sess, err = rt.newSession(model, sig, provider, threads, opts.InterOpThreads)
	}
	if err != nil {
		return nil, err
	}
	s := &Session{rt: rt, sess: sess, sig: sig, provider: provider}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		_ = sess.Destroy()
		return nil, errors.New("creating session: runtime is closed")
	}
	rt.sessions[s] = struct{}{}
	return s, nil
}

func (rt *Runtime) newSession(model []byte, sig Signature, provider string, intra, inter int) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("creating session options: %w", err)
	}
	defer so.Destroy()
	if intra > 0 {
		if err := so.SetIntraOpNumThreads(intra); err != nil {
			return nil, fmt.Errorf("setting intra-op threads: %w", err)
		}
	}
	if inter > 0 {
		if err := so.SetInterOpNumThreads(inter); err != nil {
			return nil, fmt.Errorf("setting inter-op threads: %w", err)
		}
	}
	spin := "0"
	if rt.opts.Spin {
		spin = "1"
	}
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", spin); err != nil {
		return nil, fmt.Errorf("setting intra-op spinning: %w", err)
	}
	if err := so.AddSessionConfigEntry("session.inter_op.allow_spinning", spin); err != nil {
		return nil, fmt.Errorf("setting inter-op spinning: %w", err)
	}
	if provider == ProviderCUDA {
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("creating CUDA options: %w", err)
		}
		defer co.Destroy()
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return nil, fmt.Errorf("enabling CUDA: %w", err)
		}
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, names(sig.Inputs), names(sig.Outputs), so)
	if err != nil {
		return nil, fmt.Errorf("creating session (%s): %w", provider, err)
	}
	return sess, nil
}

func names(ts []TensorInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func tensorInfos(kind string, infos []ort.InputOutputInfo) ([]TensorInfo, error) {
	out := make([]TensorInfo, 0, len(infos))
	for _, in := range infos {
		if in.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("%s %q is a %s; only tensors are supported", kind, in.Name, in.OrtValueType)
		}
		dt, err := dtypeFromORT(in.DataType)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", kind, in.Name, err)
		}
		shape := make([]int64, len(in.Dimensions))
		for i, d := range in.Dimensions {
			if d < 0 {
				d = -1
			}
			shape[i] = d
		}
		out = append(out, TensorInfo{Name: in.Name, DType: dt, Shape: shape})
	}
	return out, nil
}

// Signature returns the model's inputs and outputs.
func (s *Session) Signature() Signature { return s.sig }

// Provider returns the execution provider in use: cpu or cuda.
func (s *Session) Provider() string { return s.provider }

// Close waits for running calls to finish and destroys the session.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.rt.mu.Lock()
	if s.rt.sessions != nil {
		delete(s.rt.sessions, s)
	}
	s.rt.mu.Unlock()
	if err := s.sess.Destroy(); err != nil {
		return fmt.Errorf("destroying session: %w", err)
	}
	return nil
}

// CheckInput validates one input tensor against the signature. The error is
// an *InputError naming the input and what was expected.
func (s *Session) CheckInput(name string, t *Tensor) error {
	info, ok := s.sig.Input(name)
	if !ok {
		return inputErrorf("unknown input %q: model inputs are %s", name, strings.Join(names(s.sig.Inputs), ", "))
	}
	return checkAgainst(info, t)
}

func checkAgainst(info TensorInfo, t *Tensor) error {
	if t.DType != info.DType {
		return inputErrorf("input %q: datatype %s, expected %s", info.Name, t.DType, info.DType)
	}
	if len(t.Shape) != len(info.Shape) {
		return inputErrorf("input %q: shape %v has rank %d, expected rank %d (shape %v)", info.Name, t.Shape, len(t.Shape), len(info.Shape), info.Shape)
	}
	for i, d := range info.Shape {
		if t.Shape[i] < 0 || (d >= 0 && t.Shape[i] != d) {
			return inputErrorf("input %q: shape %v, expected %v (-1 is any size)", info.Name, t.Shape, info.Shape)
		}
	}
	if err := t.Validate(); err != nil {
		return inputErrorf("input %q: %v", info.Name, err)
	}
	if d, ok := t.Data.([]string); ok {
		for i, e := range d {
			if strings.IndexByte(e, 0) >= 0 {
				return inputErrorf("input %q: element %d contains a NUL byte, which ONNX Runtime string tensors cannot hold", info.Name, i)
			}
		}
	}
	return nil
}

// Check validates a request without running it: every input present and
// matching the signature, every requested output known. Errors are
// *InputError values.
func (s *Session) Check(inputs map[string]*Tensor, outputs []string) error {
	for _, in := range s.sig.Inputs {
		if _, ok := inputs[in.Name]; !ok {
			return inputErrorf("missing input %q (%s %v)", in.Name, in.DType, in.Shape)
		}
	}
	for _, name := range SortedNames(inputs) {
		if err := s.CheckInput(name, inputs[name]); err != nil {
			return err
		}
	}
	for _, o := range outputs {
		if _, ok := s.sig.Output(o); !ok {
			return inputErrorf("unknown output %q: model outputs are %s", o, strings.Join(names(s.sig.Outputs), ", "))
		}
	}
	return nil
}

// Run executes the model. inputs must hold every model input; outputs names
// the outputs wanted (all of them when empty). Errors about the request are
// *InputError values.
func (s *Session) Run(inputs map[string]*Tensor, outputs []string) (map[string]*Tensor, error) {
	if err := s.Check(inputs, outputs); err != nil {
		return nil, err
	}
	if len(outputs) == 0 {
		outputs = names(s.sig.Outputs)
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errors.New("running model: session is closed")
	}

	in := make([]ort.Value, len(s.sig.Inputs))
	defer destroyAll(in)
	for i, info := range s.sig.Inputs {
		v, err := toORT(inputs[info.Name])
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", info.Name, err)
		}
		in[i] = v
	}
	out, err := s.runWithPrealloc(in, true)
	if err != nil {
		return nil, err
	}
	defer destroyAll(out)

	res := make(map[string]*Tensor, len(outputs))
	for _, name := range outputs {
		for i, info := range s.sig.Outputs {
			if info.Name != name {
				continue
			}
			t, err := fromORT(out[i], info.DType)
			if err != nil {
				return nil, fmt.Errorf("output %q: %w", name, err)
			}
			res[name] = t
		}
	}
	return res, nil
}

// runWithPrealloc runs the session. onnxruntime_go cannot convert rank-0 or
// FP16 outputs that ONNX Runtime allocates, so those are allocated here from
// the signature; if a rank-0 guess turns out wrong (a model whose output rank
// is unknown), the run is repeated letting ORT allocate them.
func (s *Session) runWithPrealloc(in []ort.Value, prealloc bool) ([]ort.Value, error) {
	out := make([]ort.Value, len(s.sig.Outputs))
	guessed := false
	for i, info := range s.sig.Outputs {
		switch {
		case info.DType == FP16:
			if NumElements(info.Shape) < 0 || hasDynamic(info.Shape) {
				destroyAll(out)
				return nil, fmt.Errorf("output %q: FP16 outputs with dynamic shape %v are not supported by onnxruntime_go v1.27", info.Name, info.Shape)
			}
			t, _ := NewTensor(FP16, info.Shape)
			v, err := toORT(t)
			if err != nil {
				destroyAll(out)
				return nil, fmt.Errorf("output %q: %w", info.Name, err)
			}
			out[i] = v
		case len(info.Shape) == 0 && prealloc && info.DType != Bytes:
			t, _ := NewTensor(info.DType, nil)
			v, err := toORT(t)
			if err != nil {
				destroyAll(out)
				return nil, fmt.Errorf("output %q: %w", info.Name, err)
			}
			out[i] = v
			guessed = true
		}
	}
	if err := s.sess.Run(in, out); err != nil {
		destroyAll(out)
		if guessed {
			return s.runWithPrealloc(in, false)
		}
		return nil, fmt.Errorf("running model: %w", err)
	}
	return out, nil
}

func hasDynamic(shape []int64) bool {
	for _, d := range shape {
		if d < 0 {
			return true
		}
	}
	return false
}

func destroyAll(vs []ort.Value) {
	for _, v := range vs {
		if v != nil {
			_ = v.Destroy()
		}
	}
}

func newValue[T ort.TensorData](shape []int64, d []T) (ort.Value, error) {
	if len(shape) == 0 {
		return ort.NewScalar(d[0])
	}
	return ort.NewTensor(ort.NewShape(shape...), d)
}

// toORT wraps t's data in an ORT value without copying numeric data.
func toORT(t *Tensor) (ort.Value, error) {
	switch d := t.Data.(type) {
	case []bool:
		return newValue(t.Shape, d)
	case []uint8:
		return newValue(t.Shape, d)
	case []uint16:
		if t.DType != FP16 {
			return newValue(t.Shape, d)
		}
		if len(t.Shape) == 0 {
			return nil, errors.New("scalar FP16 tensors are not supported by onnxruntime_go v1.27")
		}
		b := []byte{0}
		if len(d) > 0 {
			b = unsafe.Slice((*byte)(unsafe.Pointer(&d[0])), 2*len(d))
		}
		return ort.NewCustomDataTensor(ort.NewShape(t.Shape...), b, ortType(FP16))
	case []uint32:
		return newValue(t.Shape, d)
	case []uint64:
		return newValue(t.Shape, d)
	case []int8:
		return newValue(t.Shape, d)
	case []int16:
		return newValue(t.Shape, d)
	case []int32:
		return newValue(t.Shape, d)
	case []int64:
		return newValue(t.Shape, d)
	case []float32:
		return newValue(t.Shape, d)
	case []float64:
		return newValue(t.Shape, d)
	case []string:
		if len(t.Shape) == 0 {
			return nil, errors.New("scalar BYTES tensors are not supported by onnxruntime_go v1.27")
		}
		st, err := ort.NewStringTensor(ort.NewShape(t.Shape...))
		if err != nil {
			return nil, err
		}
		if len(d) > 0 {
			if err := st.SetContents(d); err != nil {
				_ = st.Destroy()
				return nil, err
			}
		}
		return st, nil
	}
	return nil, fmt.Errorf("unsupported data type %T", t.Data)
}

func scalarOrTensor[T ort.TensorData](dt DType, v ort.Value) (*Tensor, bool) {
	switch x := v.(type) {
	case *ort.Tensor[T]:
		return &Tensor{DType: dt, Shape: []int64(x.GetShape().Clone()), Data: x.GetData()}, true
	case *ort.Scalar[T]:
		return &Tensor{DType: dt, Shape: []int64{}, Data: []T{x.GetData()}}, true
	}
	return nil, false
}

// fromORT copies an ORT value into a Tensor of the given type.
func fromORT(v ort.Value, dt DType) (*Tensor, error) {
	var t *Tensor
	ok := false
	switch dt {
	case Bool:
		t, ok = scalarOrTensor[bool](dt, v)
	case Uint8:
		t, ok = scalarOrTensor[uint8](dt, v)
	case Uint16:
		t, ok = scalarOrTensor[uint16](dt, v)
	case Uint32:
		t, ok = scalarOrTensor[uint32](dt, v)
	case Uint64:
		t, ok = scalarOrTensor[uint64](dt, v)
	case Int8:
		t, ok = scalarOrTensor[int8](dt, v)
	case Int16:
		t, ok = scalarOrTensor[int16](dt, v)
	case Int32:
		t, ok = scalarOrTensor[int32](dt, v)
	case Int64:
		t, ok = scalarOrTensor[int64](dt, v)
	case FP32:
		t, ok = scalarOrTensor[float32](dt, v)
	case FP64:
		t, ok = scalarOrTensor[float64](dt, v)
	case FP16:
		if c, isC := v.(*ort.CustomDataTensor); isC {
			shape := []int64(c.GetShape().Clone())
			n := NumElements(shape)
			b := c.GetData()
			if int64(len(b)) < 2*n {
				return nil, fmt.Errorf("FP16 output has %d bytes for %d elements", len(b), n)
			}
			d := make([]uint16, n)
			for i := range d {
				d[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
			}
			t, ok = &Tensor{DType: FP16, Shape: shape, Data: d}, true
		}
	case Bytes:
		if st, isS := v.(*ort.StringTensor); isS {
			shape := []int64(st.GetShape().Clone())
			d, err := st.GetContents()
			if err != nil {
				return nil, err
			}
			t, ok = &Tensor{DType: Bytes, Shape: shape, Data: d}, true
		}
	}
	if !ok {
		return nil, fmt.Errorf("ONNX Runtime returned %T for a %s output", v, dt)
	}
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// SortedNames returns the keys of a tensor map in sorted order.
func SortedNames(m map[string]*Tensor) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
