// Package command runs the user's own programs on a node for command
// training jobs: argv, environment and working directory as given, output
// captured to a log, state persisted so that the agent can report it after a
// restart. A command keeps running when the client disconnects.
package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
)

// States of a command.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
)

// Spec is what to run: the body of PUT /v1/commands/{id}.
type Spec struct {
	Argv []string          `json:"argv"`
	Env  map[string]string `json:"env,omitempty"`
	// Dir is the working directory; empty means the command's own directory.
	Dir string `json:"dir,omitempty"`
}

// Status is what GET /v1/commands/{id} answers.
type Status struct {
	ID         string     `json:"id"`
	Spec       Spec       `json:"spec"`
	State      string     `json:"state"`
	PID        int        `json:"pid,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Dir is the command's own directory on the node (output.log lives there).
	Dir string `json:"dir"`
}

// Service serves /v1/commands.
type Service struct {
	root string
	log  *slog.Logger

	mu   sync.Mutex
	cmds map[string]*entry
	wg   sync.WaitGroup
}

type entry struct {
	mu     sync.Mutex
	status Status
	proc   *os.Process
	done   chan struct{}
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// New returns a command service keeping its commands under dir. Commands
// recorded as running by an earlier agent are reported as failed if their
// process is gone, and watched if it is still alive.
func New(dir string, log *slog.Logger) (*Service, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating commands directory: %w", err)
	}
	s := &Service{root: dir, log: log, cmds: map[string]*entry{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, de := range entries {
		b, err := os.ReadFile(filepath.Join(dir, de.Name(), "status.json"))
		if err != nil {
			continue
		}
		var st Status
		if json.Unmarshal(b, &st) != nil {
			continue
		}
		e := &entry{status: st, done: make(chan struct{})}
		if st.State == StateRunning {
			if p, err := os.FindProcess(st.PID); err == nil && p.Signal(syscall.Signal(0)) == nil {
				e.proc = p
				s.wg.Add(1)
				go s.watchOrphan(e)
			} else {
				s.finish(e, StateFailed, nil, "the agent restarted and the process was gone")
			}
		} else {
			close(e.done)
		}
		s.cmds[st.ID] = e
	}
	return s, nil
}

// Register implements api.Service.
func (s *Service) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("PUT /v1/commands/{id}", auth(http.HandlerFunc(s.handleStart)))
	mux.Handle("GET /v1/commands/{id}", auth(http.HandlerFunc(s.handleGet)))
	mux.Handle("GET /v1/commands/{id}/logs", auth(http.HandlerFunc(s.handleLogs)))
	mux.Handle("POST /v1/commands/{id}/cancel", auth(http.HandlerFunc(s.handleCancel)))
	mux.Handle("DELETE /v1/commands/{id}", auth(http.HandlerFunc(s.handleDelete)))
}

// Shutdown leaves commands running (they belong to the user, not to the
// agent's lifetime) and stops watching them.
func (s *Service) Shutdown(ctx context.Context) error { return nil }

// Start runs a command under id. Starting the same id with the same spec
// again returns the existing command (retries are safe); another spec is
// refused.
func (s *Service) Start(id string, spec Spec) (Status, error) {
	if !idRE.MatchString(id) {
		return Status{}, badRequest("command id %q must be 1 to 128 letters, digits, '_', '.' or '-'", id)
	}
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return Status{}, badRequest("argv must name a program to run")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.cmds[id]; ok {
		st := e.snapshot()
		if !reflect.DeepEqual(normalise(st.Spec), normalise(spec)) {
			return Status{}, &conflictError{fmt.Sprintf("command %q already exists with another spec; delete it first", id)}
		}
		return st, nil
	}
	dir := filepath.Join(s.root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Status{}, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "output.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Status{}, err
	}
	defer logf.Close()
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Dir = spec.Dir
	if cmd.Dir == "" {
		cmd.Dir = dir
	}
	cmd.Env = os.Environ()
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "HADRON_COMMAND_ID="+id, "HADRON_COMMAND_DIR="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	e := &entry{done: make(chan struct{})}
	e.status = Status{ID: id, Spec: spec, State: StateRunning, StartedAt: time.Now().UTC(), Dir: dir}
	if err := cmd.Start(); err != nil {
		s.finish(e, StateFailed, nil, fmt.Sprintf("starting %s: %v", spec.Argv[0], err))
		s.cmds[id] = e
		return e.snapshot(), nil
	}
	e.proc = cmd.Process
	e.status.PID = cmd.Process.Pid
	s.persist(e)
	s.cmds[id] = e
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		e.mu.Lock()
		cancelled := e.status.State == StateCancelled
		e.mu.Unlock()
		switch {
		case cancelled:
			s.finish(e, StateCancelled, &code, "cancelled")
		case err == nil:
			s.finish(e, StateSucceeded, &code, "")
		default:
			s.finish(e, StateFailed, &code, err.Error())
		}
	}()
	s.log.Info("command started", "id", id, "pid", e.status.PID, "argv0", spec.Argv[0])
	return e.snapshot(), nil
}

// watchOrphan follows a command started by an earlier agent until it exits;
// its exit code is unknown.
func (s *Service) watchOrphan(e *entry) {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for range t.C {
		if e.proc.Signal(syscall.Signal(0)) != nil {
			s.finish(e, StateFailed, nil, "the agent restarted while the command ran; its exit status is unknown")
			return
		}
	}
}

func (s *Service) finish(e *entry, state string, code *int, msg string) {
	e.mu.Lock()
	now := time.Now().UTC()
	e.status.State, e.status.ExitCode, e.status.Error, e.status.FinishedAt = state, code, msg, &now
	e.mu.Unlock()
	s.persist(e)
	select {
	case <-e.done:
	default:
		close(e.done)
	}
}

func (s *Service) persist(e *entry) {
	st := e.snapshot()
	b, _ := json.MarshalIndent(st, "", "  ")
	p := filepath.Join(s.root, st.ID, "status.json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, p)
	}
}

func (e *entry) snapshot() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

func normalise(s Spec) Spec {
	if len(s.Env) == 0 {
		s.Env = nil
	}
	return s
}

func (s *Service) get(id string) (*entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cmds[id]
	return e, ok
}

// Cancel stops a running command: SIGTERM to its process group, SIGKILL
// after grace.
func (s *Service) Cancel(id string, grace time.Duration) (Status, bool) {
	e, ok := s.get(id)
	if !ok {
		return Status{}, false
	}
	e.mu.Lock()
	running := e.status.State == StateRunning && e.proc != nil
	if running {
		e.status.State = StateCancelled
	}
	pid := e.status.PID
	e.mu.Unlock()
	if running {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-e.done:
			case <-time.After(5 * time.Second):
			}
		}
	}
	return e.snapshot(), true
}

func (s *Service) handleStart(w http.ResponseWriter, r *http.Request) {
	var spec Spec
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON in command spec: %v", err))
		return
	}
	st, err := s.Start(r.PathValue("id"), spec)
	var br *clientError
	var ce *conflictError
	switch {
	case errors.As(err, &br):
		api.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.As(err, &ce):
		api.WriteError(w, http.StatusConflict, err.Error())
	case err != nil:
		api.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		api.WriteJSON(w, http.StatusOK, st)
	}
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	e, ok := s.get(r.PathValue("id"))
	if !ok {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("command %q not found", r.PathValue("id")))
		return
	}
	api.WriteJSON(w, http.StatusOK, e.snapshot())
}

// LogChunk is a page of a command's output.
type LogChunk struct {
	Data       string `json:"data"`
	NextOffset int64  `json:"next_offset"`
}

func (s *Service) handleLogs(w http.ResponseWriter, r *http.Request) {
	e, ok := s.get(r.PathValue("id"))
	if !ok {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("command %q not found", r.PathValue("id")))
		return
	}
	offset, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	f, err := os.Open(filepath.Join(e.snapshot().Dir, "output.log"))
	if err != nil {
		api.WriteJSON(w, http.StatusOK, LogChunk{NextOffset: offset})
		return
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("offset %d: %v", offset, err))
		return
	}
	var buf bytes.Buffer
	n, _ := io.Copy(&buf, io.LimitReader(f, 1<<20))
	api.WriteJSON(w, http.StatusOK, LogChunk{Data: buf.String(), NextOffset: offset + n})
}

func (s *Service) handleCancel(w http.ResponseWriter, r *http.Request) {
	st, ok := s.Cancel(r.PathValue("id"), 10*time.Second)
	if !ok {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("command %q not found", r.PathValue("id")))
		return
	}
	api.WriteJSON(w, http.StatusOK, st)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, ok := s.Cancel(id, 10*time.Second)
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.mu.Lock()
	delete(s.cmds, id)
	s.mu.Unlock()
	if err := os.RemoveAll(st.Dir); err != nil {
		api.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type clientError struct{ msg string }

func (e *clientError) Error() string { return e.msg }

type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

func badRequest(format string, args ...any) error { return &clientError{fmt.Sprintf(format, args...)} }
