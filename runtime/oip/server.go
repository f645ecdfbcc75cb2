package oip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// Defaults for Config.
const (
	DefaultMaxRequestBytes = 64 << 20
	DefaultMaxModelBytes   = 4 << 30
)

// Config is the server's typed configuration, read once by the agent.
type Config struct {
	// ORT configures the ONNX Runtime created when Deps.Runtime is nil.
	ORT inference.Options
	// PublicInference lets the /v2 inference routes and /metrics through
	// without the bearer token. The management API always needs it.
	PublicInference bool
	// MaxRequestBytes limits an inference request body (413 beyond it).
	MaxRequestBytes int64
	// MaxModelBytes limits a model file or download.
	MaxModelBytes int64
	// DataDir, when set, keeps loaded models under DataDir/models so that
	// a restarted server restores them (see New).
	DataDir string
	// ServerName and ServerVersion are reported by GET /v2.
	ServerName    string
	ServerVersion string
}

// Deps are the server's collaborators; zero values get working defaults.
type Deps struct {
	// Runtime is used instead of creating one from Config.ORT; the server
	// does not close a Runtime it was given.
	Runtime *inference.Runtime
	// HTTPClient downloads models from http(s) sources.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock.
	Now func() time.Time
}

// Server serves the Open Inference Protocol v2 REST API, the model
// management API and Prometheus metrics. It implements api.Service.
type Server struct {
	cfg     Config
	rt      *inference.Runtime
	ownsRT  bool
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	mu     sync.RWMutex
	models map[string]*model

	// active counts requests and loads in progress; once draining is set
	// no new ones start and idle closes when active drops to zero.
	activeMu sync.Mutex
	active   int
	draining bool
	idle     chan struct{}

	bg sync.WaitGroup // retiring versions
}

var _ api.Service = (*Server)(nil)

// New creates the server and, unless deps supplies one, its ONNX Runtime.
// With a DataDir it starts reloading the models stored there; they report
// LOADING, and Ready is false, until each has loaded.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxModelBytes <= 0 {
		cfg.MaxModelBytes = DefaultMaxModelBytes
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "hadrond"
	}
	s := &Server{
		cfg:     cfg,
		rt:      deps.Runtime,
		client:  deps.HTTPClient,
		log:     deps.Logger,
		now:     deps.Now,
		metrics: newMetrics(),
		models:  map[string]*model{},
		idle:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Minute}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rt == nil {
		opts := cfg.ORT
		if opts.Logger == nil {
			opts.Logger = s.log
		}
		rt, err := inference.NewRuntime(opts)
		if err != nil {
			return nil, fmt.Errorf("starting inference server: %w", err)
		}
		s.rt, s.ownsRT = rt, true
	}
	s.restore()
	return s, nil
}

// Runtime returns the ONNX Runtime the server uses (for version reporting).
func (s *Server) Runtime() *inference.Runtime { return s.rt }

// Register adds the routes: /v2 inference (token unless PublicInference),
// /v1/models management (token) and /metrics (token unless PublicInference).
// The agent serves /v2/health/live and /v2/health/ready itself; see Ready.
func (s *Server) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	infer := auth
	if s.cfg.PublicInference {
		infer = func(h http.Handler) http.Handler { return h }
	}
	for _, prefix := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		mux.Handle("GET "+prefix, infer(http.HandlerFunc(s.handleMetadata)))
		mux.Handle("GET "+prefix+"/ready", infer(http.HandlerFunc(s.handleModelReady)))
		mux.Handle("POST "+prefix+"/infer", infer(http.HandlerFunc(s.handleInfer)))
	}
	mux.Handle("GET /v2", infer(http.HandlerFunc(s.handleServerMetadata)))
	mux.Handle("/v2/", infer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s: see GET /v2/models/{name}, POST /v2/models/{name}/infer", r.Method, r.URL.Path))
	})))
	mux.Handle("GET /metrics", infer(s.MetricsHandler()))
	mux.Handle("GET /v1/models", auth(http.HandlerFunc(s.handleList)))
	mux.Handle("GET /v1/models/{name}", auth(http.HandlerFunc(s.handleGet)))
	mux.Handle("PUT /v1/models/{name}", auth(http.HandlerFunc(s.handleLoad)))
	mux.Handle("DELETE /v1/models/{name}", auth(http.HandlerFunc(s.handleUnload)))
}

// MetricsHandler serves the Prometheus metrics of this server's registry.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler }

// Ready reports whether the server takes inference traffic: it is not
// shutting down and no model is still loading its first version.
func (s *Server) Ready() bool {
	s.activeMu.Lock()
	draining := s.draining
	s.activeMu.Unlock()
	if draining {
		return false
	}
	for _, m := range s.Models() {
		if m.State == StateLoading {
			return false
		}
	}
	return true
}

func (s *Server) enter() bool {
	s.activeMu.Lock()
	defer s.activeMu.Unlock()
	if s.draining {
		return false
	}
	s.active++
	return true
}

func (s *Server) leave() {
	s.activeMu.Lock()
	defer s.activeMu.Unlock()
	s.active--
	if s.draining && s.active == 0 {
		close(s.idle)
	}
}

// Shutdown refuses new requests with 503, waits for in-flight requests and
// loads to finish (or ctx to end), then frees every model and, if the
// server created it, the ONNX Runtime.
func (s *Server) Shutdown(ctx context.Context) error {
	s.activeMu.Lock()
	if !s.draining {
		s.draining = true
		if s.active == 0 {
			close(s.idle)
		}
	}
	s.activeMu.Unlock()
	select {
	case <-s.idle:
	case <-ctx.Done():
		return fmt.Errorf("draining inference requests: %w", ctx.Err())
	}
	s.mu.Lock()
	models := s.models
	s.models = map[string]*model{}
	s.mu.Unlock()
	for _, m := range models {
		if v := m.cur.Swap(nil); v != nil {
			v.retire()
			v.close()
		}
	}
	s.bg.Wait()
	if s.ownsRT {
		return s.rt.Close()
	}
	return nil
}

func (s *Server) handleServerMetadata(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, map[string]any{
		"name":       s.cfg.ServerName,
		"version":    s.cfg.ServerVersion,
		"extensions": []string{"binary_tensor_data", "model_repository"},
	})
}

// lookup resolves the model and version of a /v2 route, writing the error
// response itself when it returns nil. The caller must release the version.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) *version {
	name, want := r.PathValue("name"), r.PathValue("version")
	m := s.model(name)
	if m == nil {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("model %q not found", name))
		return nil
	}
	v := m.acquire()
	if v == nil {
		st := m.status()
		msg := fmt.Sprintf("model %q is not ready (state %s)", name, st.State)
		if st.LastError != "" {
			msg += ": " + st.LastError
		}
		api.WriteError(w, http.StatusServiceUnavailable, msg)
		return nil
	}
	if want != "" && want != v.version {
		v.release()
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("model %q version %q not found (serving version %q)", name, want, v.version))
		return nil
	}
	return v
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	v := s.lookup(w, r)
	if v == nil {
		return
	}
	defer v.release()
	sig := v.sess.Signature()
	api.WriteJSON(w, http.StatusOK, map[string]any{
		"name":     v.model,
		"versions": []string{v.version},
		"platform": "onnxruntime_onnx",
		"inputs":   sig.Inputs,
		"outputs":  sig.Outputs,
	})
}

func (s *Server) handleModelReady(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		api.WriteError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	defer s.leave()
	v := s.lookup(w, r)
	if v == nil {
		return
	}
	defer v.release()
	api.WriteJSON(w, http.StatusOK, map[string]any{"name": v.model, "version": v.version, "ready": true})
}

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if !s.enter() {
		api.WriteError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	defer s.leave()
	v := s.lookup(w, r)
	if v == nil {
		return
	}
	defer v.release()
	tk := v.sched.announce()
	defer tk.finish()
	ok := false
	var rows int64 = 1
	var res result
	defer func() {
		s.metrics.observe(v.model, v.version, ok, rows, time.Since(start), res.queue, res.compute)
	}()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			api.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the %d byte limit", tooBig.Limit))
			return
		}
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("reading request body: %v", err))
		return
	}
	headerLen := int64(-1)
	if h := r.Header.Get("Inference-Header-Content-Length"); h != "" {
		n, err := strconv.ParseInt(h, 10, 64)
		if err != nil || n < 0 {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("Inference-Header-Content-Length %q is not a non-negative integer", h))
			return
		}
		headerLen = n
	}
	req, err := decodeRequest(body, headerLen)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	outputs := req.Outputs
	if len(outputs) == 0 {
		for _, o := range v.sess.Signature().Outputs {
			outputs = append(outputs, outputSpec{Name: o.Name, Binary: req.BinaryAll})
		}
	}
	names := make([]string, len(outputs))
	for i, o := range outputs {
		names[i] = o.Name
	}
	if err := v.sess.Check(req.Inputs, names); err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if v.sched.batchable {
		if n := rowsOf(req.Inputs); n >= 0 {
			rows = n
		}
	}
	res = v.sched.infer(r.Context(), tk, req.Inputs, names)
	if res.err != nil {
		var ie *inference.InputError
		switch {
		case errors.As(res.err, &ie):
			api.WriteError(w, http.StatusBadRequest, res.err.Error())
		case r.Context().Err() != nil:
			api.WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("request abandoned: %v", r.Context().Err()))
		default:
			api.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("model %q: %v", v.model, res.err))
		}
		return
	}
	out, headerSize := encodeResponse(v.model, v.version, req.ID, outputs, res.out)
	if headerSize >= 0 {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Inference-Header-Content-Length", strconv.Itoa(headerSize))
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	ok = true
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, map[string]any{"models": s.Models()})
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	m := s.model(name)
	if m == nil {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("model %q not found", name))
		return
	}
	api.WriteJSON(w, http.StatusOK, m.status())
}

func (s *Server) handleLoad(w http.ResponseWriter, r *http.Request) {
	var req LoadRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON in load request: %v", err))
		return
	}
	st, err := s.LoadModel(r.Context(), r.PathValue("name"), req)
	if err != nil {
		code := http.StatusInternalServerError
		var le *loadError
		if errors.As(err, &le) {
			code = le.code
		}
		api.WriteError(w, code, err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, st)
}

func (s *Server) handleUnload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	found, err := s.UnloadModel(r.Context(), name)
	switch {
	case !found:
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("model %q not found", name))
	case err != nil:
		api.WriteError(w, http.StatusServiceUnavailable, err.Error())
	default:
		api.WriteJSON(w, http.StatusOK, map[string]string{"name": name, "state": "UNLOADED"})
	}
}
