package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
)

func newTestServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	s, err := New(cfg, Deps{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		GPUProbe: func(context.Context) ([]GPU, error) { return []GPU{{Name: "Tesla T4", MemoryMiB: 15360}}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.ready.Store(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func TestNodeRequiresToken(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Token = "s3cret-token"
	ts := newTestServer(t, cfg)
	tests := []struct {
		name     string
		path     string
		header   string
		wantCode int
		wantBody string
	}{
		{"live without token", "/v2/health/live", "", 200, `"live":true`},
		{"ready without token", "/v2/health/ready", "", 200, `"ready":true`},
		{"node without token", "/v1/node", "", 401, "missing bearer token"},
		{"node with wrong token", "/v1/node", "Bearer nope", 401, "invalid bearer token"},
		{"node with basic auth", "/v1/node", "Basic czNjcmV0LXRva2Vu", 401, "missing bearer token"},
		{"node with token", "/v1/node", "Bearer s3cret-token", 200, `"name":"Tesla T4"`},
		{"unknown route", "/v9/nothing", "", 404, "no route for GET /v9/nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+tt.path, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status: got %d, want %d (body %s)", resp.StatusCode, tt.wantCode, body)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body: got %s, want it to contain %s", body, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type: got %q, want application/json", ct)
			}
		})
	}
}

func TestNodeInfo(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Token = "t"
	ts := newTestServer(t, cfg)
	req, _ := http.NewRequest("GET", ts.URL+"/v1/node", nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info NodeInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.VCPUs < 1 || info.MemoryBytes == 0 || info.OS == "" || info.RuntimeVersion == "" {
		t.Errorf("node info incomplete: %+v", info)
	}
	if len(info.GPUs) != 1 || info.GPUs[0].MemoryMiB != 15360 {
		t.Errorf("gpus: got %+v, want the probe's one T4", info.GPUs)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"unknown field", "listen = \"127.0.0.1:0\"\nlisten_port = 80\n", `agent.hcl:2,1: Unsupported argument`},
		{"wrong type", "listen = \"x\"\npublic_inference = \"maybe\"\n", `agent.hcl:2,21: Unsuitable value type: Unsuitable value: a bool is required`},
		{"syntax", "listen = \n", `agent.hcl:1`},
		{"bad provider", "ort {\n  execution_provider = \"tpu\"\n}\n", `ort.execution_provider: "tpu" is not one of auto, cpu, cuda`},
		{"bad log level", "log_level = \"loud\"\n", `log_level: "loud"`},
		{"unknown block field", "ort {\n  libary = \"x\"\n}\n", `agent.hcl:2,3: Unsupported argument: An argument named "libary" is not expected here. Did you mean "library"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("agent.hcl", []byte(tt.src))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `
listen     = "127.0.0.1:0"
data_dir   = "/tmp/x"
token_file = "` + tokenFile + `"
ort {
  library            = "/opt/ort.so"
  execution_provider = "cpu"
}
`
	cfg, err := ParseConfig("a.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.ResolveToken()
	if err != nil || tok != "abc" {
		t.Errorf("token: got %q, %v; want abc", tok, err)
	}
	if cfg.ORT.Library != "/opt/ort.so" || cfg.ORT.ExecutionProvider != "cpu" || cfg.LogLevel != "info" {
		t.Errorf("config: got %+v / %+v", cfg, *cfg.ORT)
	}
}

func TestRunWritesAddrAndStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Token = "tok"
	cfg.AddrFile = filepath.Join(dir, "agent.addr")
	cfg.PIDFile = filepath.Join(dir, "agent.pid")
	s, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	url := waitFile(t, cfg.AddrFile)
	resp, err := http.Get(url + "/v2/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("ready: got %d, want 200", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: got %v, want clean shutdown", err)
	}
	if _, err := os.Stat(cfg.AddrFile); !os.IsNotExist(err) {
		t.Errorf("addr file left behind after shutdown: %v", err)
	}
}

func TestIdleTimeoutStopsAgent(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.IdleTimeout = "40ms"
	s, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, ErrIdle) {
		t.Fatalf("run: %v, want ErrIdle", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("agent ran until the test deadline; want it stopped by idle_timeout")
	}
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not written within 10s", path)
	return ""
}

func TestParseNvidiaSMI(t *testing.T) {
	out := "0, NVIDIA A10G, 23028, 535.104.05, GPU-aaaa\n1, NVIDIA A10G, 23028, 535.104.05, GPU-bbbb\n"
	gpus, err := parseNvidiaSMI(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) != 2 || gpus[1].Index != 1 || gpus[0].Name != "NVIDIA A10G" || gpus[0].MemoryMiB != 23028 {
		t.Errorf("got %+v", gpus)
	}
}

// busyService is a service with work in progress for a while.
type busyService struct{ until time.Time }

func (b busyService) Register(*http.ServeMux, func(http.Handler) http.Handler) {}
func (b busyService) Shutdown(context.Context) error                           { return nil }
func (b busyService) Busy() bool                                               { return time.Now().Before(b.until) }

func TestIdleTimeoutPoweroff(t *testing.T) {
	cfg, err := ParseConfig("t.hcl", []byte("listen = \"127.0.0.1:0\"\nidle_timeout = \"40ms\"\nidle_action = \"poweroff\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, ErrIdlePoweroff) || !errors.Is(err, ErrIdle) {
		t.Fatalf("run: %v, want ErrIdlePoweroff", err)
	}
	if _, err := ParseConfig("t.hcl", []byte("idle_action = \"halt\"\n")); err == nil || !strings.Contains(err.Error(), "idle_action") {
		t.Errorf("idle_action = halt: %v, want an error naming idle_action", err)
	}
}

func TestIdleTimeoutWaitsForBusyServices(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.IdleTimeout = "40ms"
	busyUntil := time.Now().Add(300 * time.Millisecond)
	s, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Services: []api.Service{busyService{busyUntil}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, ErrIdle) {
		t.Fatalf("run: %v, want ErrIdle", err)
	}
	if time.Now().Before(busyUntil) {
		t.Errorf("agent stopped for idleness while a service was busy")
	}
}

// workService has a public route (like inference with public_inference) and
// a token-protected one; /slow blocks until release is closed.
type workService struct{ entered, release chan struct{} }

func (ws workService) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.Handle("POST /public", ok)
	mux.Handle("POST /secret", auth(ok))
	mux.Handle("POST /slow", auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(ws.entered)
		<-ws.release
	})))
}
func (workService) Shutdown(context.Context) error { return nil }

// TestIdleCountsWorkNotReads: requests for work (public or authorized)
// keep the node awake, while in flight and when they end; reads such as a
// refresh's GET /v1/node and refused requests do not.
func TestIdleCountsWorkNotReads(t *testing.T) {
	var nowNanos atomic.Int64 // the clock, set by the test, read by handlers
	nowNanos.Store(time.Unix(1000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, nowNanos.Load()) }
	advance := func() time.Time { nowNanos.Add(int64(time.Hour)); return clock() }
	ws := workService{entered: make(chan struct{}), release: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.Token = "t0ken"
	s, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clock, Services: []api.Service{ws},
		GPUProbe: func(context.Context) ([]GPU, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	do := func(method, path, token string) int {
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	last := func() time.Time { return time.Unix(0, s.lastActivity.Load()) }

	advance()
	if code := do("GET", "/v1/node", "t0ken"); code != 200 || !last().Equal(time.Unix(1000, 0)) {
		t.Errorf("GET /v1/node: HTTP %d, last activity %v; want 200 and no activity", code, last())
	}
	if code := do("POST", "/secret", "wrong"); code != 401 || !last().Equal(time.Unix(1000, 0)) {
		t.Errorf("POST with a wrong token: HTTP %d, last activity %v; want 401 and no activity", code, last())
	}
	if code := do("POST", "/public", ""); code != 200 || !last().Equal(clock()) {
		t.Errorf("public POST: HTTP %d, last activity %v; want 200 and activity at %v", code, last(), clock())
	}
	now := advance()
	done := make(chan int)
	go func() { done <- do("POST", "/slow", "t0ken") }()
	<-ws.entered
	if !s.busy() {
		t.Error("not busy while a request for work is in flight")
	}
	close(ws.release)
	if code := <-done; code != 200 || !last().Equal(now) || s.busy() {
		t.Errorf("after the slow request: HTTP %d, last activity %v, busy %t; want 200, %v, false", code, last(), s.busy(), now)
	}
}
