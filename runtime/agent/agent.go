// Package agent is the node agent of hadrond: it owns the HTTP server, the
// bearer-token check, health and node information, and the lifecycle of the
// services (inference, training) that plug their routes into it.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/version"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
)

// Deps are the agent's collaborators; tests replace them.
type Deps struct {
	Logger   *slog.Logger
	Services []api.Service
	// GPUProbe lists the node's GPUs; nil means NvidiaSMI.
	GPUProbe func(ctx context.Context) ([]GPU, error)
	// ORTVersion reports the ONNX Runtime version in use; nil or "" means none loaded.
	ORTVersion func() string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is one running agent.
type Server struct {
	cfg     Config
	token   string
	deps    Deps
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler // mux, with activity tracking
	started time.Time

	// lastActivity is when the last request for work (see activity) ended,
	// in unix nanoseconds; working counts those in flight.
	lastActivity atomic.Int64
	working      atomic.Int64
	ready        atomic.Bool
}

// New builds an agent from its configuration and collaborators.
func New(cfg Config, deps Deps) (*Server, error) {
	token, err := cfg.ResolveToken()
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if deps.GPUProbe == nil {
		deps.GPUProbe = NvidiaSMI
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{cfg: cfg, token: token, deps: deps, log: deps.Logger, mux: http.NewServeMux(), started: deps.Now()}
	s.lastActivity.Store(s.started.UnixNano())
	s.routes()
	s.handler = s.activity(s.mux)
	return s, nil
}

func (s *Server) routes() {
	auth := api.RequireToken(s.token)
	s.mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	s.mux.HandleFunc("GET /v2/health/ready", s.handleReady)
	s.mux.Handle("GET /v1/node", auth(http.HandlerFunc(s.handleNode)))
	for _, svc := range s.deps.Services {
		svc.Register(s.mux, auth)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
}

// activity tracks, for the idle timeout, the requests that ask for work:
// every method but GET, HEAD and OPTIONS (inference, model loads, jobs,
// uploads), while in flight and, unless refused (status 400 and above), when
// they end. Reads (refreshes, health checks, metrics scrapes) and requests
// with a wrong token do not keep a node awake.
func (s *Server) activity(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, r)
			return
		}
		s.working.Add(1)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if rec.status < 400 {
				s.lastActivity.Store(s.deps.Now().UnixNano())
			}
			s.working.Add(-1)
		}()
		h.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Handler returns the agent's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) isReady() bool {
	if !s.ready.Load() {
		return false
	}
	for _, svc := range s.deps.Services {
		if r, ok := svc.(api.Readier); ok && !r.Ready() {
			return false
		}
	}
	return true
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.isReady() {
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

// NodeInfo is the body of GET /v1/node.
type NodeInfo struct {
	Hostname       string `json:"hostname"`
	OS             string `json:"os"`
	Arch           string `json:"arch"`
	VCPUs          int    `json:"vcpus"`
	MemoryBytes    uint64 `json:"memory_bytes"`
	GPUs           []GPU  `json:"gpus"`
	GPUError       string `json:"gpu_error,omitempty"`
	RuntimeVersion string `json:"runtime_version"`
	ORTVersion     string `json:"ort_version"`
	PID            int    `json:"pid"`
	StartedAt      string `json:"started_at"`
}

func (s *Server) handleNode(w http.ResponseWriter, r *http.Request) {
	info := hostInfo()
	info.RuntimeVersion = version.Version
	info.PID = os.Getpid()
	info.StartedAt = s.started.UTC().Format(time.RFC3339)
	if s.deps.ORTVersion != nil {
		info.ORTVersion = s.deps.ORTVersion()
	}
	gpus, err := s.deps.GPUProbe(r.Context())
	if err != nil {
		info.GPUError = err.Error()
	}
	info.GPUs = gpus
	if info.GPUs == nil {
		info.GPUs = []GPU{}
	}
	api.WriteJSON(w, http.StatusOK, info)
}

// Run listens and serves until ctx is cancelled or the idle timeout passes,
// then stops accepting, drains in-flight requests and shuts the services down.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	scheme := "http"
	if s.cfg.TLS != nil {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s", scheme, ln.Addr().String())
	if s.cfg.PIDFile != "" {
		if err := writeFileAtomic(s.cfg.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			ln.Close()
			return err
		}
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() {
		var err error
		if s.cfg.TLS != nil {
			err = srv.ServeTLS(ln, s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile)
		} else {
			err = srv.Serve(ln)
		}
		errc <- err
	}()
	s.ready.Store(true)
	if s.cfg.AddrFile != "" {
		if err := writeFileAtomic(s.cfg.AddrFile, []byte(url+"\n"), 0o644); err != nil {
			srv.Close()
			return err
		}
	}
	s.log.Info("agent listening", "url", url, "version", version.Version, "data_dir", s.cfg.DataDir)

	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if idle, err := parseIdle(s.cfg.IdleTimeout); err != nil {
		srv.Close()
		return err
	} else if idle > 0 {
		go s.watchIdle(ctx, idle, stop)
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("agent stopping", "reason", context.Cause(ctx))
	s.ready.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, svc := range s.deps.Services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if e := svc.Shutdown(shutdownCtx); e != nil {
				mu.Lock()
				err = errors.Join(err, e)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if s.cfg.AddrFile != "" {
		_ = os.Remove(s.cfg.AddrFile)
	}
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	s.log.Info("agent stopped")
	if errors.Is(context.Cause(ctx), ErrIdle) {
		if s.cfg.IdleAction == IdlePoweroff {
			return ErrIdlePoweroff
		}
		return ErrIdle
	}
	return nil
}

// ErrIdle is returned by Run, after a clean shutdown, when the idle timeout
// stopped the agent; ErrIdlePoweroff (which is also ErrIdle) when its idle
// action asks for the node to be powered off.
var (
	ErrIdle         = errors.New("idle timeout reached")
	ErrIdlePoweroff = fmt.Errorf("%w: power the node off", ErrIdle)
)

// Idle actions (Config.IdleAction).
const (
	IdleStop     = "stop"
	IdlePoweroff = "poweroff"
)

// Exit statuses of hadrond when the idle timeout stopped it. The systemd
// unit and the supervisor that bootstrap installs restart the agent after
// neither; after ExitIdlePoweroff they power the node off. An idle node
// stays quiet until the next apply starts it (and its agent) again.
const (
	ExitIdle         = 3
	ExitIdlePoweroff = 4
)

func (s *Server) watchIdle(ctx context.Context, idle time.Duration, stop context.CancelCauseFunc) {
	t := time.NewTicker(min(idle/4, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.busy() {
				s.lastActivity.Store(s.deps.Now().UnixNano())
				continue
			}
			last := time.Unix(0, s.lastActivity.Load())
			if s.deps.Now().Sub(last) >= idle {
				stop(ErrIdle)
				return
			}
		}
	}
}

// busy reports whether a request for work is in flight or a service has
// work in progress (a training job).
func (s *Server) busy() bool {
	if s.working.Load() > 0 {
		return true
	}
	for _, svc := range s.deps.Services {
		if b, ok := svc.(api.Busier); ok && b.Busy() {
			return true
		}
	}
	return false
}

func parseIdle(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("agent config: idle_timeout: %q is not a duration like \"30m\"", s)
	}
	return d, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	return nil
}
