package oip

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// Model states reported by the management API.
const (
	StateLoading   = "LOADING"   // the first version is being loaded
	StateReady     = "READY"     // a version is serving
	StateFailed    = "FAILED"    // the first version failed to load
	StateUnloading = "UNLOADING" // draining before removal
)

// ModelConfig is the per-model serving configuration.
type ModelConfig struct {
	// MaxBatchSize enables dynamic batching when above 1: requests are
	// joined along dimension 0 up to this many rows.
	MaxBatchSize int64 `json:"max_batch_size,omitempty"`
	// MaxQueueDelay is the longest a request waits in the queue for others
	// to join its batch, as a Go duration ("500us", "2ms"); empty means no
	// wait. A batch waits only while more requests are being received.
	MaxQueueDelay string `json:"max_queue_delay,omitempty"`
	// Instances is the number of concurrent executions (default 1).
	Instances int `json:"instances,omitempty"`
	// IntraOpThreads and InterOpThreads size ONNX Runtime's thread pools
	// (0: the runtime default).
	IntraOpThreads int `json:"intra_op_threads,omitempty"`
	InterOpThreads int `json:"inter_op_threads,omitempty"`
	// ExecutionProvider is cpu, cuda or auto (empty: the agent's default).
	ExecutionProvider string `json:"execution_provider,omitempty"`
}

func (c ModelConfig) validate() (time.Duration, error) {
	var delay time.Duration
	if c.MaxQueueDelay != "" {
		d, err := time.ParseDuration(c.MaxQueueDelay)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("config.max_queue_delay %q is not a non-negative duration such as \"2ms\"", c.MaxQueueDelay)
		}
		delay = d
	}
	switch {
	case c.MaxBatchSize < 0:
		return 0, fmt.Errorf("config.max_batch_size %d is negative", c.MaxBatchSize)
	case c.Instances < 0:
		return 0, fmt.Errorf("config.instances %d is negative", c.Instances)
	case c.IntraOpThreads < 0 || c.InterOpThreads < 0:
		return 0, errors.New("config thread counts must not be negative")
	}
	switch c.ExecutionProvider {
	case "", inference.ProviderAuto, inference.ProviderCPU, inference.ProviderCUDA:
	default:
		return 0, fmt.Errorf("config.execution_provider %q is not one of auto, cpu, cuda", c.ExecutionProvider)
	}
	return delay, nil
}

// LoadRequest is the body of PUT /v1/models/{name}.
type LoadRequest struct {
	// Version names this version of the model.
	Version string `json:"version"`
	// Source is an absolute file path, a file:// URL or an http(s) URL.
	Source string `json:"source"`
	// SHA256 is the expected hex digest of the model file.
	SHA256 string      `json:"sha256"`
	Config ModelConfig `json:"config"`
}

// ModelStatus describes a model in the management API.
type ModelStatus struct {
	Name              string               `json:"name"`
	Version           string               `json:"version,omitempty"`
	SHA256            string               `json:"sha256,omitempty"`
	State             string               `json:"state"`
	ExecutionProvider string               `json:"execution_provider,omitempty"`
	DynamicBatching   bool                 `json:"dynamic_batching"`
	Signature         *inference.Signature `json:"signature,omitempty"`
	Config            *ModelConfig         `json:"config,omitempty"`
	LoadedAt          *time.Time           `json:"loaded_at,omitempty"`
	// LastError is the most recent failed load, even if an older version
	// kept serving.
	LastError string `json:"last_error,omitempty"`
}

// loadError carries the HTTP status for a failed load.
type loadError struct {
	code int
	msg  string
}

func (e *loadError) Error() string { return e.msg }

func loadErrorf(code int, format string, args ...any) error {
	return &loadError{code: code, msg: fmt.Sprintf(format, args...)}
}

// version is one loaded version of a model. Requests hold a reference while
// they run; a retired version closes once the last reference is released.
type version struct {
	model    string
	version  string
	sha256   string
	cfg      ModelConfig
	sess     *inference.Session
	sched    *scheduler
	loadedAt time.Time

	mu       sync.Mutex
	inflight int
	retired  bool
	drained  chan struct{}
}

func (v *version) acquire() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.retired {
		return false
	}
	v.inflight++
	return true
}

func (v *version) release() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.inflight--
	if v.retired && v.inflight == 0 {
		close(v.drained)
	}
}

// retire stops new requests; drained closes when in-flight ones finish.
func (v *version) retire() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.retired {
		return
	}
	v.retired = true
	if v.inflight == 0 {
		close(v.drained)
	}
}

// close frees the version after it has drained.
func (v *version) close() {
	<-v.drained
	v.sched.close()
	_ = v.sess.Close()
}

func (v *version) status(state, lastErr string) ModelStatus {
	sig := v.sess.Signature()
	cfg := v.cfg
	at := v.loadedAt
	return ModelStatus{
		Name: v.model, Version: v.version, SHA256: v.sha256, State: state,
		ExecutionProvider: v.sess.Provider(), DynamicBatching: v.sched.batchable,
		Signature: &sig, Config: &cfg, LoadedAt: &at, LastError: lastErr,
	}
}

// model is a named slot whose current version can be swapped atomically.
type model struct {
	name string
	load sync.Mutex // serialises loads and unloads of this model
	cur  atomic.Pointer[version]

	mu      sync.Mutex
	state   string
	lastErr string
}

// acquire returns the serving version with a reference held, or nil.
func (m *model) acquire() *version {
	for {
		v := m.cur.Load()
		if v == nil {
			return nil
		}
		if v.acquire() {
			return v
		}
		// v was retired after a swap; the new version is already stored.
	}
}

func (m *model) status() ModelStatus {
	m.mu.Lock()
	state, lastErr := m.state, m.lastErr
	m.mu.Unlock()
	if v := m.cur.Load(); v != nil {
		return v.status(state, lastErr)
	}
	return ModelStatus{Name: m.name, State: state, LastError: lastErr}
}

func (m *model) setState(state, lastErr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = state
	m.lastErr = lastErr
}

var (
	modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	sha256RE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// LoadModel loads (or replaces) a model version. The new session is ready
// before traffic moves to it; requests already running on the old version
// finish there; any failure leaves the old version serving. Errors carry
// the HTTP status the management API answers with.
func (s *Server) LoadModel(ctx context.Context, name string, req LoadRequest) (ModelStatus, error) {
	req.SHA256 = strings.ToLower(strings.TrimSpace(req.SHA256))
	delay, err := req.Config.validate()
	switch {
	case !modelNameRE.MatchString(name):
		return ModelStatus{}, loadErrorf(http.StatusBadRequest, "model name %q must be 1-128 letters, digits, '_', '.' or '-'", name)
	case req.Version == "" || strings.ContainsAny(req.Version, "/ "):
		return ModelStatus{}, loadErrorf(http.StatusBadRequest, "version %q must be non-empty without '/' or spaces", req.Version)
	case req.Source == "":
		return ModelStatus{}, loadErrorf(http.StatusBadRequest, "source is required: an absolute path or an http(s) URL")
	case !sha256RE.MatchString(req.SHA256):
		return ModelStatus{}, loadErrorf(http.StatusBadRequest, "sha256 %q must be 64 hex digits", req.SHA256)
	case err != nil:
		return ModelStatus{}, loadErrorf(http.StatusBadRequest, "%v", err)
	}
	if !s.enter() {
		return ModelStatus{}, loadErrorf(http.StatusServiceUnavailable, "server is shutting down")
	}
	defer s.leave()

	m := s.lockModel(name)
	defer m.load.Unlock()
	if cur := m.cur.Load(); cur != nil && cur.version == req.Version && cur.sha256 == req.SHA256 && cur.cfg == req.Config {
		return m.status(), nil
	}

	v, data, err := s.newVersion(ctx, name, req, delay)
	if err != nil {
		m.mu.Lock()
		m.lastErr = err.Error()
		if m.cur.Load() == nil {
			m.state = StateFailed
		}
		m.mu.Unlock()
		s.log.Warn("model load failed", "model", name, "version", req.Version, "error", err.Error())
		return ModelStatus{}, err
	}
	old := m.cur.Swap(v)
	m.setState(StateReady, "")
	if err := s.persist(name, req, data); err != nil {
		s.log.Warn("model serves but will not be restored after a restart", "model", name, "error", err.Error())
	}
	s.log.Info("model serving", "model", name, "version", v.version, "sha256", v.sha256, "provider", v.sess.Provider(), "dynamic_batching", v.sched.batchable)
	if old != nil {
		old.retire()
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			old.close()
			s.log.Info("model version retired", "model", name, "version", old.version)
		}()
	}
	return m.status(), nil
}

// lockModel returns the named model, created in state LOADING if new, with
// its load lock held. It retries if the model is unloaded while it waits.
func (s *Server) lockModel(name string) *model {
	for {
		s.mu.Lock()
		m, ok := s.models[name]
		if !ok {
			m = &model{name: name, state: StateLoading}
			s.models[name] = m
		}
		s.mu.Unlock()
		m.load.Lock()
		s.mu.RLock()
		current := s.models[name] == m
		s.mu.RUnlock()
		if current {
			return m
		}
		m.load.Unlock()
	}
}

func (s *Server) newVersion(ctx context.Context, name string, req LoadRequest, delay time.Duration) (*version, []byte, error) {
	data, err := s.fetch(ctx, req.Source)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != req.SHA256 {
		return nil, nil, loadErrorf(http.StatusUnprocessableEntity, "sha256 mismatch for %s: got %s, expected %s; model not loaded", req.Source, got, req.SHA256)
	}
	sess, err := s.rt.LoadBytes(data, inference.SessionOptions{
		ExecutionProvider: req.Config.ExecutionProvider,
		IntraOpThreads:    req.Config.IntraOpThreads,
		InterOpThreads:    req.Config.InterOpThreads,
	})
	if err != nil {
		return nil, nil, loadErrorf(http.StatusUnprocessableEntity, "loading model %q version %q: %v", name, req.Version, err)
	}
	labels := []string{name, req.Version}
	exec := s.metrics.exec.WithLabelValues(labels...)
	v := &version{
		model: name, version: req.Version, sha256: req.SHA256, cfg: req.Config,
		sess: sess, loadedAt: s.now(), drained: make(chan struct{}),
	}
	v.sched = newScheduler(sess, req.Config.MaxBatchSize, delay, req.Config.Instances, exec.Inc, s.metrics.pending.WithLabelValues(labels...))
	return v, data, nil
}

// fetch reads a model from an absolute path, a file:// URL or an http(s) URL.
func (s *Server) fetch(ctx context.Context, source string) ([]byte, error) {
	limit := s.cfg.MaxModelBytes
	switch {
	case strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
		if err != nil {
			return nil, loadErrorf(http.StatusBadRequest, "source %q: %v", source, err)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, loadErrorf(http.StatusBadGateway, "downloading model: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, loadErrorf(http.StatusBadGateway, "downloading model from %s: HTTP %s", source, resp.Status)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return nil, loadErrorf(http.StatusBadGateway, "downloading model from %s: %v", source, err)
		}
		if int64(len(data)) > limit {
			return nil, loadErrorf(http.StatusUnprocessableEntity, "model at %s exceeds the %d byte limit", source, limit)
		}
		return data, nil
	case strings.HasPrefix(source, "file://"):
		source = strings.TrimPrefix(source, "file://")
	}
	if !filepath.IsAbs(source) {
		return nil, loadErrorf(http.StatusBadRequest, "source %q is neither an absolute path nor an http(s) URL", source)
	}
	st, err := os.Stat(source)
	if err != nil {
		return nil, loadErrorf(http.StatusUnprocessableEntity, "reading model: %v", err)
	}
	if st.Size() > limit {
		return nil, loadErrorf(http.StatusUnprocessableEntity, "model %s exceeds the %d byte limit", source, limit)
	}
	data, err := os.ReadFile(source)
	if err != nil {
		return nil, loadErrorf(http.StatusUnprocessableEntity, "reading model: %v", err)
	}
	return data, nil
}

// UnloadModel stops serving a model, waits for its requests to finish (or
// ctx to end) and frees it. It returns false if the model is unknown.
func (s *Server) UnloadModel(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	m, ok := s.models[name]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	m.load.Lock()
	defer m.load.Unlock()
	s.mu.Lock()
	if s.models[name] != m { // unloaded meanwhile
		s.mu.Unlock()
		return false, nil
	}
	delete(s.models, name)
	s.mu.Unlock()
	m.setState(StateUnloading, "")
	if err := s.forget(name); err != nil {
		s.log.Warn("unloaded model may come back after a restart", "model", name, "error", err.Error())
	}
	v := m.cur.Swap(nil)
	if v == nil {
		return true, nil
	}
	v.retire()
	select {
	case <-v.drained:
	case <-ctx.Done():
		s.bg.Add(1)
		go func() { defer s.bg.Done(); v.close() }()
		return true, fmt.Errorf("unloading model %q: %w", name, ctx.Err())
	}
	v.close()
	s.log.Info("model unloaded", "model", name, "version", v.version)
	return true, nil
}

// Models returns the status of every model, sorted by name.
func (s *Server) Models() []ModelStatus {
	s.mu.RLock()
	ms := make([]*model, 0, len(s.models))
	for _, m := range s.models {
		ms = append(ms, m)
	}
	s.mu.RUnlock()
	out := make([]ModelStatus, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) model(name string) *model {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.models[name]
}
