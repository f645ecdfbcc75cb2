// Package jobs serves training jobs over the agent's token-protected JSON
// API: submit, list, status with progress and artifacts, paged logs, cancel
// and delete. Each job lives in its own directory under the data directory
// (job.json, state.json, train.log and the training artifacts), so a new
// Service over the same directory picks unfinished jobs up again and they
// resume from their last checkpoint. Jobs run on the service's context, not
// the request's: a client that disconnects does not stop them.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/train"
)

// Job statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// RunFunc trains one job in dir; train.RunJob is the real one.
type RunFunc func(ctx context.Context, job train.JobSpec, dir string, progress func(train.Progress)) (*train.Result, error)

// Config configures a Service.
type Config struct {
	// Dir holds one subdirectory per job (for example DATA_DIR/train).
	Dir string
	// MaxConcurrent is how many jobs train at once (default 1: training
	// uses every core, so jobs queue).
	MaxConcurrent int
	Logger        *slog.Logger
	// Run trains a job; nil means train.RunJob.
	Run RunFunc
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// State is a job's persisted status (state.json) and the core of the API's
// job object.
type State struct {
	ID             string         `json:"id"`
	Name           string         `json:"name,omitempty"`
	Status         string         `json:"status"`
	Error          string         `json:"error,omitempty"`
	IdempotencyKey string         `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	StartedAt      *time.Time     `json:"started_at,omitempty"`
	FinishedAt     *time.Time     `json:"finished_at,omitempty"`
	Starts         int            `json:"starts"` // 2 or more: the job was resumed
	Progress       train.Progress `json:"progress"`
	ModelSHA256    string         `json:"model_sha256,omitempty"`
	TestAccuracy   *float64       `json:"test_accuracy,omitempty"`
}

// Artifact is one file of a job's output.
type Artifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"` // on the node
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// JobInfo is the API's job object.
type JobInfo struct {
	State
	Epoch         int        `json:"epoch"`
	Epochs        int        `json:"epochs"`
	Step          int        `json:"step"`
	StepsPerEpoch int        `json:"steps_per_epoch"`
	Loss          float64    `json:"loss"`
	Accuracy      float64    `json:"accuracy"`
	SamplesPerSec float64    `json:"samples_per_sec"`
	ETASeconds    float64    `json:"eta_seconds"`
	Dir           string     `json:"dir"`
	Artifacts     []Artifact `json:"artifacts"`
}

// LogPage is a slice of a job's log.
type LogPage struct {
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
	Text       string `json:"text"`
	// Done is true when the job has finished and NextOffset is the end.
	Done bool `json:"done"`
}

type job struct {
	dir     string
	spec    train.JobSpec
	state   State
	cancel  context.CancelFunc
	byUser  bool // cancel came from the API, not from Shutdown
	done    chan struct{}
	logMu   sync.Mutex
	lastLog time.Time
}

// Service runs training jobs; it implements api.Service.
type Service struct {
	cfg    Config
	log    *slog.Logger
	run    RunFunc
	now    func() time.Time
	sem    chan struct{}
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	jobs   map[string]*job
	closed bool
}

const (
	specFile     = "job.json"
	stateFile    = "state.json"
	logFile      = "train.log"
	maxLogRead   = 64 << 10
	maxSpecBytes = 1 << 20
)

// New creates the service and restarts every job that was queued or
// running when the previous instance stopped.
func New(cfg Config) (*Service, error) {
	if cfg.Dir == "" {
		return nil, errors.New("jobs directory is not set")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating jobs directory: %w", err)
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 1
	}
	s := &Service{cfg: cfg, log: cfg.Logger, run: cfg.Run, now: cfg.Now, sem: make(chan struct{}, cfg.MaxConcurrent), jobs: map[string]*job{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.run == nil {
		s.run = train.RunJob
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("reading jobs directory: %w", err)
	}
	var resume []*job
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		j, err := loadJob(filepath.Join(cfg.Dir, e.Name()))
		if err != nil {
			s.log.Warn("skipping unreadable job directory", "dir", e.Name(), "error", err)
			continue
		}
		s.jobs[j.state.ID] = j
		if j.state.Status == StatusQueued || j.state.Status == StatusRunning {
			resume = append(resume, j)
		} else {
			close(j.done)
		}
	}
	slices.SortFunc(resume, func(a, b *job) int { return a.state.CreatedAt.Compare(b.state.CreatedAt) })
	for _, j := range resume {
		s.log.Info("resuming training job", "job", j.state.ID, "status", j.state.Status)
		s.start(j)
	}
	return s, nil
}

func loadJob(dir string) (*job, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	j := &job{dir: dir, done: make(chan struct{})}
	if err := json.Unmarshal(b, &j.state); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", stateFile, err)
	}
	if j.state.ID != filepath.Base(dir) {
		return nil, fmt.Errorf("state names job %q, directory is %q", j.state.ID, filepath.Base(dir))
	}
	spec, err := os.ReadFile(filepath.Join(dir, specFile))
	if err != nil {
		return nil, err
	}
	if j.spec, err = train.ParseJobJSON(spec); err != nil {
		return nil, err
	}
	return j, nil
}

// Register adds the /v1/jobs routes, all behind auth.
func (s *Service) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, auth(f)) }
	h("POST /v1/jobs", s.handleSubmit)
	h("GET /v1/jobs", s.handleList)
	h("GET /v1/jobs/{id}", s.handleGet)
	h("GET /v1/jobs/{id}/logs", s.handleLogs)
	h("GET /v1/jobs/{id}/artifacts/{name}", s.handleArtifact)
	h("POST /v1/jobs/{id}/cancel", s.handleCancel)
	h("DELETE /v1/jobs/{id}", s.handleDelete)
}

// Shutdown stops running jobs, which checkpoint and stay "running" on disk
// so that the next Service resumes them, and waits for them or for ctx.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for training jobs to checkpoint: %w", ctx.Err())
	}
}

// Submit validates spec and queues it. When key is not empty and a job
// with that idempotency key exists, it returns that job instead (created
// false).
func (s *Service) Submit(spec train.JobSpec, key string) (info JobInfo, created bool, err error) {
	if err := spec.Validate(); err != nil {
		return JobInfo{}, false, &badRequest{err}
	}
	if err := checkPaths(spec.Dataset); err != nil {
		return JobInfo{}, false, &badRequest{err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return JobInfo{}, false, errors.New("the training service is shutting down")
	}
	if key != "" {
		for _, j := range s.jobs {
			if j.state.IdempotencyKey == key {
				return s.infoLocked(j), false, nil
			}
		}
	}
	id := newID()
	dir := filepath.Join(s.cfg.Dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return JobInfo{}, false, fmt.Errorf("creating job directory: %w", err)
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return JobInfo{}, false, fmt.Errorf("encoding job spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, specFile), b, 0o644); err != nil {
		return JobInfo{}, false, fmt.Errorf("writing job spec: %w", err)
	}
	j := &job{dir: dir, spec: spec, done: make(chan struct{}), state: State{
		ID: id, Name: spec.Name, Status: StatusQueued, IdempotencyKey: key, CreatedAt: s.now().UTC(),
		Progress: train.Progress{Phase: "queued", Epochs: spec.Epochs},
	}}
	if err := s.saveLocked(j); err != nil {
		return JobInfo{}, false, err
	}
	s.jobs[id] = j
	s.logf(j, "submitted job %s (%s)", id, spec.Name)
	s.startLocked(j)
	return s.infoLocked(j), true, nil
}

type badRequest struct{ error }

func (e *badRequest) Unwrap() error { return e.error }

// checkPaths fails early when a data path does not exist on this node.
func checkPaths(d train.DatasetSpec) error {
	for _, p := range []string{d.TrainImages, d.TrainLabels, d.TestImages, d.TestLabels, d.Train, d.Test} {
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			return fmt.Errorf("dataset path %q must be absolute on the node", p)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("dataset: %w", err)
		}
	}
	return nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "job-" + hex.EncodeToString(b[:])
}

func (s *Service) start(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked(j)
}

// startLocked launches the job's goroutine: it waits for a slot, trains,
// and records the outcome.
func (s *Service) startLocked(j *job) {
	ctx, cancel := context.WithCancel(s.ctx)
	j.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(j.done)
		defer cancel()
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			s.finish(j, nil, ctx.Err())
			return
		}
		defer func() { <-s.sem }()
		s.mu.Lock()
		now := s.now().UTC()
		j.state.Status = StatusRunning
		j.state.StartedAt = &now
		j.state.Starts++
		_ = s.saveLocked(j)
		starts := j.state.Starts
		s.mu.Unlock()
		if starts > 1 {
			s.logf(j, "restarting (start %d): resuming from the last checkpoint", starts)
		} else {
			s.logf(j, "starting")
		}
		res, err := s.run(ctx, j.spec, j.dir, func(p train.Progress) { s.onProgress(j, p) })
		s.finish(j, res, err)
	}()
}

func (s *Service) onProgress(j *job, p train.Progress) {
	s.mu.Lock()
	j.state.Progress = p
	save := p.EpochDone != nil || p.Phase != "training"
	s.mu.Unlock()
	now := s.now()
	j.logMu.Lock()
	quiet := now.Sub(j.lastLog) < 10*time.Second
	j.logMu.Unlock()
	switch {
	case p.EpochDone != nil:
		e := p.EpochDone
		line := fmt.Sprintf("epoch %d/%d loss %.4f accuracy %.4f", e.Epoch, p.Epochs, e.TrainLoss, e.TrainAccuracy)
		if e.ValLoss != nil {
			line += fmt.Sprintf(" val_loss %.4f val_accuracy %.4f", *e.ValLoss, *e.ValAccuracy)
		}
		s.logf(j, "%s %.0f samples/s %.1fs", line, e.SamplesPerSec, e.EpochSeconds)
	case p.Phase == "training" && !quiet:
		s.logf(j, "epoch %d/%d step %d/%d loss %.4f accuracy %.4f %.0f samples/s eta %.0fs",
			p.Epoch, p.Epochs, p.Step, p.StepsPerEpoch, p.Loss, p.Accuracy, p.SamplesPerSec, p.ETASeconds)
	case p.Phase != "training":
		s.logf(j, "%s", p.Phase)
	}
	if save {
		s.mu.Lock()
		_ = s.saveLocked(j)
		s.mu.Unlock()
	}
}

func (s *Service) finish(j *job, res *train.Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	switch {
	case err == nil:
		j.state.Status = StatusSucceeded
		j.state.ModelSHA256 = res.ModelSHA256
		j.state.TestAccuracy = res.Metrics.TestAccuracy
		j.state.FinishedAt = &now
	case errors.Is(err, context.Canceled) && !j.byUser:
		// Service shutdown: leave the job queued or running on disk so the
		// next instance resumes it.
		s.log.Info("training job stopped for shutdown", "job", j.state.ID)
		s.logfLocked(j, "stopped for agent shutdown; it resumes when the agent starts again")
		return
	case errors.Is(err, context.Canceled):
		j.state.Status = StatusCancelled
		j.state.FinishedAt = &now
	default:
		j.state.Status = StatusFailed
		j.state.Error = err.Error()
		j.state.FinishedAt = &now
	}
	if err := s.saveLocked(j); err != nil {
		s.log.Error("saving job state", "job", j.state.ID, "error", err)
	}
	if err != nil && j.state.Status == StatusFailed {
		s.logfLocked(j, "failed: %v", err)
	} else {
		s.logfLocked(j, "%s", j.state.Status)
	}
	s.log.Info("training job finished", "job", j.state.ID, "status", j.state.Status)
}

func (s *Service) saveLocked(j *job) error {
	b, err := json.MarshalIndent(j.state, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding job state: %w", err)
	}
	tmp := filepath.Join(j.dir, "."+stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing job state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(j.dir, stateFile)); err != nil {
		return fmt.Errorf("writing job state: %w", err)
	}
	return nil
}

func (s *Service) logf(j *job, format string, args ...any) {
	j.logMu.Lock()
	defer j.logMu.Unlock()
	j.lastLog = s.now()
	line := s.now().UTC().Format(time.RFC3339) + " " + fmt.Sprintf(format, args...) + "\n"
	f, err := os.OpenFile(filepath.Join(j.dir, logFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.log.Error("writing job log", "job", j.state.ID, "error", err)
		return
	}
	defer f.Close()
	_, _ = f.WriteString(line)
}

// logfLocked is logf for callers holding s.mu (the log has its own lock).
func (s *Service) logfLocked(j *job, format string, args ...any) { s.logf(j, format, args...) }

func (s *Service) infoLocked(j *job) JobInfo {
	p := j.state.Progress
	info := JobInfo{State: j.state, Epoch: p.Epoch, Epochs: p.Epochs, Step: p.Step, StepsPerEpoch: p.StepsPerEpoch,
		Loss: p.Loss, Accuracy: p.Accuracy, SamplesPerSec: p.SamplesPerSec, ETASeconds: p.ETASeconds, Dir: j.dir, Artifacts: []Artifact{}}
	if info.Epochs == 0 {
		info.Epochs = j.spec.Epochs
	}
	for _, name := range []string{train.ModelFile, train.DigestFile, train.MetricsFile, train.ChartFile} {
		fi, err := os.Stat(filepath.Join(j.dir, name))
		if err != nil {
			continue
		}
		a := Artifact{Name: name, Path: filepath.Join(j.dir, name), Size: fi.Size()}
		if name == train.ModelFile {
			a.SHA256 = j.state.ModelSHA256
		}
		info.Artifacts = append(info.Artifacts, a)
	}
	if entries, err := os.ReadDir(filepath.Join(j.dir, "checkpoints")); err == nil {
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && !e.IsDir() && e.Name()[0] != '.' {
				info.Artifacts = append(info.Artifacts, Artifact{Name: "checkpoints/" + e.Name(), Path: filepath.Join(j.dir, "checkpoints", e.Name()), Size: fi.Size()})
			}
		}
	}
	return info
}

// Busy reports whether a job is queued or running, so that the agent's
// idle stop can leave a training node alone.
func (s *Service) Busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.state.Status == StatusQueued || j.state.Status == StatusRunning {
			return true
		}
	}
	return false
}

// Get returns a job's current information.
func (s *Service) Get(id string) (JobInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return JobInfo{}, false
	}
	return s.infoLocked(j), true
}

func (s *Service) lookup(w http.ResponseWriter, r *http.Request) (*job, bool) {
	id := r.PathValue("id")
	s.mu.Lock()
	j, ok := s.jobs[id]
	s.mu.Unlock()
	if !ok {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("training job %q not found", id))
	}
	return j, ok
}

func (s *Service) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSpecBytes+1))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return
	}
	if len(body) > maxSpecBytes {
		api.WriteError(w, http.StatusRequestEntityTooLarge, "job spec is larger than 1 MiB")
		return
	}
	spec, err := train.ParseJobJSON(body)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	info, created, err := s.Submit(spec, r.Header.Get("Idempotency-Key"))
	var bad *badRequest
	switch {
	case errors.As(err, &bad):
		api.WriteError(w, http.StatusBadRequest, "invalid training job: "+bad.Error())
	case err != nil:
		api.WriteError(w, http.StatusServiceUnavailable, err.Error())
	case created:
		w.Header().Set("Location", "/v1/jobs/"+info.ID)
		api.WriteJSON(w, http.StatusCreated, info)
	default:
		api.WriteJSON(w, http.StatusOK, info)
	}
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	list := make([]JobInfo, 0, len(s.jobs))
	for _, j := range s.jobs {
		list = append(list, s.infoLocked(j))
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b JobInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	api.WriteJSON(w, http.StatusOK, map[string]any{"jobs": list})
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	info := s.infoLocked(j)
	s.mu.Unlock()
	api.WriteJSON(w, http.StatusOK, info)
}

func (s *Service) handleLogs(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var offset int64
	if v := r.URL.Query().Get("offset"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("offset must be a non-negative integer, got %q", v))
			return
		}
		offset = n
	}
	s.mu.Lock()
	finished := j.state.Status != StatusQueued && j.state.Status != StatusRunning
	s.mu.Unlock()
	j.logMu.Lock()
	defer j.logMu.Unlock()
	f, err := os.Open(filepath.Join(j.dir, logFile))
	if err != nil {
		api.WriteJSON(w, http.StatusOK, LogPage{Offset: offset, NextOffset: offset, Done: finished})
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		api.WriteError(w, http.StatusInternalServerError, "reading job log: "+err.Error())
		return
	}
	offset = min(offset, fi.Size())
	buf := make([]byte, min(fi.Size()-offset, maxLogRead))
	n, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		api.WriteError(w, http.StatusInternalServerError, "reading job log: "+err.Error())
		return
	}
	next := offset + int64(n)
	api.WriteJSON(w, http.StatusOK, LogPage{Offset: offset, NextOffset: next, Text: string(buf[:n]), Done: finished && next == fi.Size()})
}

func (s *Service) handleArtifact(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookup(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	types := map[string]string{train.ModelFile: "application/octet-stream", train.DigestFile: "text/plain; charset=utf-8", train.MetricsFile: "application/json", train.ChartFile: "image/png"}
	ct, ok := types[name]
	if !ok {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("unknown artifact %q (want model.onnx, model.onnx.sha256, metrics.json or chart.png)", name))
		return
	}
	f, err := os.Open(filepath.Join(j.dir, name))
	if err != nil {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("artifact %s of job %s does not exist yet", name, j.state.ID))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		api.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", ct)
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

func (s *Service) handleCancel(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	st := j.state.Status
	if st == StatusQueued || st == StatusRunning {
		j.byUser = true
		j.cancel()
	}
	s.mu.Unlock()
	if st != StatusQueued && st != StatusRunning {
		api.WriteError(w, http.StatusConflict, fmt.Sprintf("training job %s has already finished (%s)", j.state.ID, st))
		return
	}
	select {
	case <-j.done:
	case <-r.Context().Done():
		return
	}
	s.mu.Lock()
	info := s.infoLocked(j)
	s.mu.Unlock()
	api.WriteJSON(w, http.StatusOK, info)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	if j.cancel != nil {
		j.byUser = true
		j.cancel()
	}
	s.mu.Unlock()
	select {
	case <-j.done:
	case <-r.Context().Done():
		return
	}
	s.mu.Lock()
	delete(s.jobs, j.state.ID)
	s.mu.Unlock()
	if err := os.RemoveAll(j.dir); err != nil {
		api.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("removing job directory: %v", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
