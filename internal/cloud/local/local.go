// Package local is the cloud that runs nodes as hadrond agent processes on
// this machine. Each node is a directory under DataDir/nodes holding its
// config, token, log and data; the process is detached from the provider so
// it outlives terraform. Nothing here needs an account: it is the default.
package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// Config configures the local cloud.
type Config struct {
	// DataDir holds one directory per node under nodes/.
	DataDir string
	// RuntimePath is the hadrond binary the nodes run.
	RuntimePath string
	// ORTLibrary is the ONNX Runtime shared library the nodes load; optional.
	ORTLibrary string
	// PollInterval is how often readiness is polled; zero means 100ms.
	PollInterval time.Duration
}

// Backend runs nodes as local processes.
type Backend struct {
	cfg    Config
	client *http.Client

	versionMu sync.Mutex
	version   string
}

var _ cloud.Backend = (*Backend)(nil)

// New returns the local cloud. It checks that the runtime binary exists.
func New(cfg Config) (*Backend, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("local cloud: data directory is empty")
	}
	if cfg.RuntimePath == "" {
		return nil, errors.New("local cloud: no hadrond binary found")
	}
	if _, err := os.Stat(cfg.RuntimePath); err != nil {
		return nil, fmt.Errorf("local cloud: hadrond binary: %w", err)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	return &Backend{cfg: cfg, client: &http.Client{Timeout: 5 * time.Second}}, nil
}

// Name implements cloud.Backend.
func (b *Backend) Name() string { return "local" }

// node is what a node directory records about itself (node.json).
type node struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	IdempotencyKey string            `json:"idempotency_key"`
	Tags           map[string]string `json:"tags"`
	CreatedAt      time.Time         `json:"created_at"`
}

func (b *Backend) nodesDir() string         { return filepath.Join(b.cfg.DataDir, "nodes") }
func (b *Backend) nodeDir(id string) string { return filepath.Join(b.nodesDir(), id) }

// Create starts a node and waits until its agent answers ready. A node that
// already exists for the same idempotency key and is alive is returned as is;
// a dead one is removed.
func (b *Backend) Create(ctx context.Context, spec cloud.Spec) (*cloud.Instance, error) {
	if spec.IdempotencyKey != "" {
		if inst, err := b.findByKey(ctx, spec.IdempotencyKey); err == nil {
			return inst, nil
		}
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	dir := b.nodeDir(id)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("creating local node directory: %w", err)
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	n := node{ID: id, Name: spec.Name, IdempotencyKey: spec.IdempotencyKey, Tags: cloud.Tags(spec), CreatedAt: time.Now().UTC()}
	if err := b.writeNode(dir, n, token, spec.RuntimePort); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := b.start(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	inst, err := b.waitReady(ctx, id)
	if err != nil {
		// Leave nothing behind: a node that never became ready is stopped and removed.
		_ = b.Delete(context.WithoutCancel(ctx), id)
		return nil, err
	}
	inst.Attempts = []cloud.Attempt{{Candidate: cloud.Candidate{Region: "local", InstanceType: "local"}}}
	return inst, nil
}

func (b *Backend) writeNode(dir string, n node, token string, port int) error {
	meta, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "node.json"), meta, 0o600); err != nil {
		return fmt.Errorf("writing node.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing node token: %w", err)
	}
	return b.writeConfig(dir, port)
}

// writeConfig writes the agent's HCL config; port 0 lets it pick a port.
func (b *Backend) writeConfig(dir string, port int) error {
	var ort string
	if b.cfg.ORTLibrary != "" {
		ort = fmt.Sprintf("ort {\n  library = %q\n}\n", b.cfg.ORTLibrary)
	}
	conf := fmt.Sprintf(`# hadrond agent config written by the Hadron local cloud.
listen     = "127.0.0.1:%d"
data_dir   = %q
token_file = %q
addr_file  = %q
pid_file   = %q
%s`, port, filepath.Join(dir, "data"), filepath.Join(dir, "token"), filepath.Join(dir, "agent.addr"), filepath.Join(dir, "agent.pid"), ort)
	if err := os.WriteFile(filepath.Join(dir, "hadrond.hcl"), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("writing hadrond.hcl: %w", err)
	}
	return nil
}

// start launches the agent in its own session so that it outlives the
// provider process and terraform's signals.
func (b *Backend) start(dir string) error {
	logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening agent log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(b.cfg.RuntimePath, "agent", "-config", filepath.Join(dir, "hadrond.hcl"))
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting hadrond agent: %w", err)
	}
	// Reap the child if it exits while this process lives (tests, long applies).
	go func() { _ = cmd.Wait() }()
	return nil
}

func (b *Backend) waitReady(ctx context.Context, id string) (*cloud.Instance, error) {
	dir := b.nodeDir(id)
	t := time.NewTicker(b.cfg.PollInterval)
	defer t.Stop()
	var lastErr error
	for {
		inst, err := b.Get(ctx, id)
		if err == nil {
			if err = b.ready(ctx, inst.Endpoint); err == nil {
				return inst, nil
			}
		}
		lastErr = err
		// The pid file is written before the agent listens: once it exists,
		// a dead process means the agent crashed.
		if pid, perr := readPID(dir); perr == nil && !alive(pid, dir) {
			return nil, fmt.Errorf("local node %s: agent exited during start-up; last log lines:\n%s", id, tailLog(dir, 20))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("local node %s: agent not ready before the timeout (last error: %v); last log lines:\n%s", id, lastErr, tailLog(dir, 20))
		case <-t.C:
		}
	}
}

func (b *Backend) ready(ctx context.Context, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", endpoint+"/v2/health/ready", nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent answered %s to /v2/health/ready", resp.Status)
	}
	return nil
}

// Get reports a node. A node whose directory is gone or whose agent process
// is dead is not found.
func (b *Backend) Get(ctx context.Context, id string) (*cloud.Instance, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	dir := b.nodeDir(id)
	meta, err := os.ReadFile(filepath.Join(dir, "node.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("local node %s: %w", id, cloud.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("reading local node %s: %w", id, err)
	}
	var n node
	if err := json.Unmarshal(meta, &n); err != nil {
		return nil, fmt.Errorf("reading local node %s: node.json: %w", id, err)
	}
	pid, err := readPID(dir)
	if err != nil || !alive(pid, dir) {
		return nil, fmt.Errorf("local node %s: agent process is not running: %w", id, cloud.ErrNotFound)
	}
	addr, err := os.ReadFile(filepath.Join(dir, "agent.addr"))
	if err != nil {
		return nil, fmt.Errorf("local node %s: agent has not published its address yet: %w", id, err)
	}
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return nil, fmt.Errorf("reading local node %s token: %w", id, err)
	}
	return &cloud.Instance{
		ID: id, Name: n.Name, Tags: n.Tags, Cloud: "local", Region: "local", Zone: "local", InstanceType: "local", ImageID: "local",
		State: "running", PublicIP: "127.0.0.1", PrivateIP: "127.0.0.1", LaunchTime: n.CreatedAt,
		Endpoint: strings.TrimSpace(string(addr)), Token: strings.TrimSpace(string(token)),
	}, nil
}

// Delete stops the node's agent (SIGTERM, then SIGKILL after 10s) and removes
// its directory. A node that is already gone is not an error.
func (b *Backend) Delete(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	dir := b.nodeDir(id)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if pid, err := readPID(dir); err == nil && alive(pid, dir) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if !waitExit(ctx, pid, dir, 10*time.Second, b.cfg.PollInterval) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitExit(ctx, pid, dir, 5*time.Second, b.cfg.PollInterval)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing local node %s: %w", id, err)
	}
	return nil
}

// LogTail returns the last n lines of a node's agent log, for diagnostics.
func (b *Backend) LogTail(id string, n int) string { return tailLog(b.nodeDir(id), n) }

func (b *Backend) findByKey(ctx context.Context, key string) (*cloud.Instance, error) {
	entries, err := os.ReadDir(b.nodesDir())
	if err != nil {
		return nil, cloud.ErrNotFound
	}
	for _, e := range entries {
		meta, err := os.ReadFile(filepath.Join(b.nodesDir(), e.Name(), "node.json"))
		if err != nil {
			continue
		}
		var n node
		if json.Unmarshal(meta, &n) != nil || n.IdempotencyKey != key {
			continue
		}
		inst, err := b.Get(ctx, n.ID)
		if errors.Is(err, cloud.ErrNotFound) {
			// A dead node of this resource: the one being created replaces it,
			// so its directory is garbage.
			if err := b.Delete(ctx, n.ID); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := b.ready(ctx, inst.Endpoint); err != nil {
			return nil, err
		}
		return inst, nil
	}
	return nil, cloud.ErrNotFound
}

func waitExit(ctx context.Context, pid int, dir string, d, poll time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	t := time.NewTicker(poll)
	defer t.Stop()
	for alive(pid, dir) {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-t.C:
		}
	}
	return true
}

func readPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "agent.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// alive reports whether pid is a live (not zombie) hadrond serving this node
// directory, so a recycled pid is never mistaken for the agent.
func alive(pid int, dir string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte(filepath.Join(dir, "hadrond.hcl")))
}

func tailLog(dir string, n int) string {
	f, err := os.Open(filepath.Join(dir, "agent.log"))
	if err != nil {
		return "(no agent log)"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(agent log is empty)"
	}
	return strings.Join(lines, "\n")
}

func newID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating node id: %w", err)
	}
	return "local-" + hex.EncodeToString(b[:]), nil
}

func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating node token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// validID keeps ids from escaping the nodes directory.
func validID(id string) error {
	if !strings.HasPrefix(id, "local-") || strings.ContainsAny(id, `/\.`) {
		return fmt.Errorf("%q is not a local node id (want local-<hex>): %w", id, cloud.ErrNotFound)
	}
	return nil
}

// SetTags implements cloud.Tagger: it rewrites the node's recorded tags.
func (b *Backend) SetTags(ctx context.Context, id string, tags map[string]string) error {
	if err := validID(id); err != nil {
		return err
	}
	dir := b.nodeDir(id)
	meta, err := os.ReadFile(filepath.Join(dir, "node.json"))
	if err != nil {
		return fmt.Errorf("reading local node %s: %w", id, err)
	}
	var n node
	if err := json.Unmarshal(meta, &n); err != nil {
		return fmt.Errorf("reading local node %s: node.json: %w", id, err)
	}
	n.Tags = cloud.Tags(cloud.Spec{Name: n.Name, IdempotencyKey: n.IdempotencyKey, Tags: tags})
	out, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".node.json.tmp")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("writing local node %s: %w", id, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "node.json")); err != nil {
		return fmt.Errorf("writing local node %s: %w", id, err)
	}
	return nil
}

// RuntimeVersion is the version of the hadrond binary new and restarted
// nodes run (`hadrond version`), read once.
func (b *Backend) RuntimeVersion(ctx context.Context) (string, error) {
	b.versionMu.Lock()
	defer b.versionMu.Unlock()
	if b.version != "" {
		return b.version, nil
	}
	out, err := exec.CommandContext(ctx, b.cfg.RuntimePath, "version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s version: %w", b.cfg.RuntimePath, err)
	}
	b.version = strings.TrimSpace(string(out))
	return b.version, nil
}

// Restart stops a node's agent and starts it again with the current hadrond
// binary (a runtime upgrade), on the same port so its endpoint stays the same.
// The agent reloads its models and resumes unfinished jobs from its data
// directory.
func (b *Backend) Restart(ctx context.Context, id string) (*cloud.Instance, error) {
	inst, err := b.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	dir := b.nodeDir(id)
	port := 0
	if u, err := url.Parse(inst.Endpoint); err == nil {
		port, _ = strconv.Atoi(u.Port())
	}
	if pid, err := readPID(dir); err == nil && alive(pid, dir) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if !waitExit(ctx, pid, dir, 30*time.Second, b.cfg.PollInterval) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitExit(ctx, pid, dir, 5*time.Second, b.cfg.PollInterval)
		}
	}
	os.Remove(filepath.Join(dir, "agent.addr"))
	os.Remove(filepath.Join(dir, "agent.pid"))
	if err := b.writeConfig(dir, port); err != nil {
		return nil, err
	}
	if err := b.start(dir); err != nil {
		return nil, err
	}
	return b.waitReady(ctx, id)
}
