package inference

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Execution providers accepted by Options and SessionOptions.
const (
	ProviderAuto = "auto" // CUDA when the library and a GPU allow it, else CPU
	ProviderCPU  = "cpu"
	ProviderCUDA = "cuda"
)

// Options configures a Runtime.
type Options struct {
	// LibraryPath is the ONNX Runtime shared library (libonnxruntime.so.1).
	LibraryPath string
	// ExecutionProvider is the default for sessions: cpu, cuda or auto
	// (empty means auto).
	ExecutionProvider string
	// IntraOpThreads is the default intra-op thread count of sessions;
	// 0 lets ONNX Runtime choose.
	IntraOpThreads int
	// Spin lets ONNX Runtime's intra-op threads spin-wait for work between
	// operators. That shaves latency when ORT has the machine to itself but
	// starves the HTTP goroutines on small machines, so it is off by default.
	Spin bool
	// Logger receives provider decisions; nil discards them.
	Logger *slog.Logger
}

// environment mirrors onnxruntime_go's process-wide ORT environment, which
// that library keeps in package globals. It is this package's only
// package-level state and exists solely to share that global safely between
// Runtime values: the first NewRuntime initialises it, the last Close
// destroys it.
var environment struct {
	mu      sync.Mutex
	refs    int
	lib     string
	cudaErr error // why CUDA cannot be used, probed once per environment
}

// Runtime owns the ONNX Runtime environment and creates sessions.
type Runtime struct {
	opts     Options
	log      *slog.Logger
	cudaErr  error // why CUDA cannot be used; nil when it can
	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{}
}

// NewRuntime loads the ONNX Runtime library and prepares the environment.
// With ExecutionProvider cuda it fails unless CUDA can be used; with auto it
// records whether CUDA is usable so that sessions fall back to CPU openly.
func NewRuntime(opts Options) (*Runtime, error) {
	if opts.LibraryPath == "" {
		return nil, errors.New("creating ONNX Runtime: library path is empty")
	}
	if opts.ExecutionProvider == "" {
		opts.ExecutionProvider = ProviderAuto
	}
	if err := checkProvider(opts.ExecutionProvider); err != nil {
		return nil, fmt.Errorf("creating ONNX Runtime: %w", err)
	}
	if opts.IntraOpThreads < 0 {
		return nil, fmt.Errorf("creating ONNX Runtime: intra_op_threads %d is negative", opts.IntraOpThreads)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := acquireEnvironment(opts.LibraryPath); err != nil {
		return nil, err
	}
	rt := &Runtime{opts: opts, log: log, sessions: map[*Session]struct{}{}}
	environment.mu.Lock()
	rt.cudaErr = environment.cudaErr
	environment.mu.Unlock()
	if opts.ExecutionProvider == ProviderCUDA && rt.cudaErr != nil {
		releaseEnvironment()
		return nil, fmt.Errorf("creating ONNX Runtime: execution provider cuda unavailable: %w", rt.cudaErr)
	}
	if opts.ExecutionProvider == ProviderAuto && rt.cudaErr != nil {
		log.Info("CUDA unavailable, sessions use the CPU execution provider", "reason", rt.cudaErr.Error())
	}
	return rt, nil
}

func checkProvider(p string) error {
	switch p {
	case ProviderAuto, ProviderCPU, ProviderCUDA:
		return nil
	}
	return fmt.Errorf("execution provider %q is not one of auto, cpu, cuda", p)
}

func acquireEnvironment(lib string) error {
	environment.mu.Lock()
	defer environment.mu.Unlock()
	if environment.refs > 0 {
		if environment.lib != lib {
			return fmt.Errorf("creating ONNX Runtime: library %s already loaded from %s in this process", lib, environment.lib)
		}
		environment.refs++
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("initialising ONNX Runtime from %s: %w", lib, err)
	}
	environment.refs, environment.lib = 1, lib
	environment.cudaErr = probeCUDA()
	return nil
}

func releaseEnvironment() {
	environment.mu.Lock()
	defer environment.mu.Unlock()
	environment.refs--
	if environment.refs == 0 {
		_ = ort.DestroyEnvironment()
		environment.lib = ""
	}
}

// probeModel is a one-node ONNX model (Identity on FP32 [1]) that probeCUDA
// loads, built by onnxtest; a session succeeds only with a working CUDA
// provider library and a GPU.
const probeModel = "\b\b\x12\x0fhadron-onnxtest:;\n\x10\n\x01x\x12\x01y\"\bIdentity\x12\x05probeZ\x0f\n\x01x\x12\n\n\b\b\x01\x12\x04\n\x02\b\x01b\x0f\n\x01y\x12\n\n\b\b\x01\x12\x04\n\x02\b\x01B\x02\x10\x11"

// probeCUDA reports why the CUDA execution provider cannot be used: it
// registers the provider and opens a session on it. ORT logs a failure
// itself at error level; that is silenced for the probe since the caller
// reports it.
func probeCUDA() error {
	if err := ort.SetEnvironmentLogLevel(ort.LoggingLevelFatal); err == nil {
		defer func() { _ = ort.SetEnvironmentLogLevel(ort.LoggingLevelError) }()
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer co.Destroy()
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return err
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData([]byte(probeModel), []string{"x"}, []string{"y"}, so)
	if err != nil {
		return fmt.Errorf("opening a CUDA session: %w", err)
	}
	return sess.Destroy()
}

// Version returns the ONNX Runtime library version.
func (rt *Runtime) Version() string { return ort.GetVersion() }

// CUDAAvailable reports whether sessions can use the CUDA execution provider.
func (rt *Runtime) CUDAAvailable() bool { return rt.cudaErr == nil }

// DefaultProvider returns the execution provider that sessions use unless
// their options say otherwise (cpu or cuda, never auto).
func (rt *Runtime) DefaultProvider() string {
	p, _ := rt.resolveProvider("")
	return p
}

func (rt *Runtime) resolveProvider(p string) (string, error) {
	if p == "" {
		p = rt.opts.ExecutionProvider
	}
	if err := checkProvider(p); err != nil {
		return "", err
	}
	switch p {
	case ProviderCPU:
		return ProviderCPU, nil
	case ProviderCUDA:
		if rt.cudaErr != nil {
			return "", fmt.Errorf("execution provider cuda unavailable: %w", rt.cudaErr)
		}
		return ProviderCUDA, nil
	}
	if rt.cudaErr == nil {
		return ProviderCUDA, nil
	}
	return ProviderCPU, nil
}

// Close destroys every session still open and releases the environment.
func (rt *Runtime) Close() error {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil
	}
	rt.closed = true
	sessions := rt.sessions
	rt.sessions = nil
	rt.mu.Unlock()
	var errs []error
	for s := range sessions {
		errs = append(errs, s.Close())
	}
	releaseEnvironment()
	return errors.Join(errs...)
}

// RuntimeVersion returns the version of the ONNX Runtime library in use, or
// "" before any Runtime exists.
func RuntimeVersion() string {
	environment.mu.Lock()
	defer environment.mu.Unlock()
	if environment.refs == 0 {
		return ""
	}
	return ort.GetVersion()
}
