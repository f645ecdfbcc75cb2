package agentclient

import (
	"bytes"
	"context"

	"errors"

	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Job mirrors the agent's training job object (GET /v1/jobs/{id}).
type Job struct {
	ID            string        `json:"id"`
	Name          string        `json:"name"`
	Status        string        `json:"status"`
	Error         string        `json:"error"`
	Starts        int           `json:"starts"`
	ModelSHA256   string        `json:"model_sha256"`
	TestAccuracy  *float64      `json:"test_accuracy"`
	Epoch         int           `json:"epoch"`
	Epochs        int           `json:"epochs"`
	Step          int           `json:"step"`
	StepsPerEpoch int           `json:"steps_per_epoch"`
	Loss          float64       `json:"loss"`
	Accuracy      float64       `json:"accuracy"`
	SamplesPerSec float64       `json:"samples_per_sec"`
	ETASeconds    float64       `json:"eta_seconds"`
	Dir           string        `json:"dir"`
	Artifacts     []JobArtifact `json:"artifacts"`
}

// JobArtifact is one output file of a job, on the node.
type JobArtifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Training job statuses.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// EpochMetrics mirrors one epoch of metrics.json.
type EpochMetrics struct {
	Epoch         int      `json:"epoch"`
	TrainLoss     float64  `json:"train_loss"`
	TrainAccuracy float64  `json:"train_accuracy"`
	ValLoss       *float64 `json:"val_loss"`
	ValAccuracy   *float64 `json:"val_accuracy"`
	SamplesPerSec float64  `json:"samples_per_sec"`
	EpochSeconds  float64  `json:"epoch_seconds"`
}

// Metrics mirrors metrics.json.
type Metrics struct {
	TrainSamples int            `json:"train_samples"`
	ValSamples   int            `json:"val_samples"`
	TestSamples  int            `json:"test_samples"`
	Epochs       []EpochMetrics `json:"epochs"`
	TestLoss     *float64       `json:"test_loss"`
	TestAccuracy *float64       `json:"test_accuracy"`
	Complete     bool           `json:"complete"`
}

// SubmitJob submits a training job spec (JSON-encodable). The idempotency
// key makes a retried submit return the job the first one created.
func (c *Client) SubmitJob(ctx context.Context, spec any, key string) (*Job, error) {
	var j Job
	err := c.DoWithHeaders(ctx, "POST", "/v1/jobs", map[string]string{"Idempotency-Key": key}, spec, &j)
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// Job returns a training job; ok is false when the agent has no such job.
func (c *Client) Job(ctx context.Context, id string) (j *Job, ok bool, err error) {
	var out Job
	err = c.Do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &out)
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &out, true, nil
}

// JobMetrics reads a finished job's metrics.json.
func (c *Client) JobMetrics(ctx context.Context, id string) (*Metrics, error) {
	var m Metrics
	if err := c.Do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id)+"/artifacts/metrics.json", nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// JobLogTail returns the last n lines of a training job's log.
func (c *Client) JobLogTail(ctx context.Context, id string, n int) (string, error) {
	return c.logTail(ctx, "/v1/jobs/"+url.PathEscape(id)+"/logs", "text", n)
}

// CancelJob cancels a queued or running job.
func (c *Client) CancelJob(ctx context.Context, id string) error {
	err := c.Do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil)
	if isNotFound(err) || isConflict(err) {
		return nil
	}
	return err
}

// DeleteJob removes a job and its artifacts; a missing job is not an error.
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	err := c.Do(ctx, "DELETE", "/v1/jobs/"+url.PathEscape(id), nil, nil)
	if isNotFound(err) {
		return nil
	}
	return err
}

// CommandSpec mirrors PUT /v1/commands/{id}.
type CommandSpec struct {
	Argv []string          `json:"argv"`
	Env  map[string]string `json:"env,omitempty"`
	Dir  string            `json:"dir,omitempty"`
}

// Command mirrors a command job's status.
type Command struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	PID      int    `json:"pid"`
	ExitCode *int   `json:"exit_code"`
	Error    string `json:"error"`
	Dir      string `json:"dir"`
}

// StartCommand starts (or, for the same id and spec, finds) a command.
func (c *Client) StartCommand(ctx context.Context, id string, spec CommandSpec) (*Command, error) {
	var out Command
	if err := c.Do(ctx, "PUT", "/v1/commands/"+url.PathEscape(id), spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Command returns a command job; ok is false when there is none.
func (c *Client) Command(ctx context.Context, id string) (cmd *Command, ok bool, err error) {
	var out Command
	err = c.Do(ctx, "GET", "/v1/commands/"+url.PathEscape(id), nil, &out)
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &out, true, nil
}

// CommandLogTail returns the last n lines of a command's output.
func (c *Client) CommandLogTail(ctx context.Context, id string, n int) (string, error) {
	return c.logTail(ctx, "/v1/commands/"+url.PathEscape(id)+"/logs", "data", n)
}

// DeleteCommand cancels a command if it runs and removes it.
func (c *Client) DeleteCommand(ctx context.Context, id string) error {
	err := c.Do(ctx, "DELETE", "/v1/commands/"+url.PathEscape(id), nil, nil)
	if isNotFound(err) {
		return nil
	}
	return err
}

// FileInfo mirrors the file service's description of a stored file.
type FileInfo struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Dir    bool   `json:"dir"`
}

// PutFile uploads r to path (relative, under the node's files directory).
// sha256, when not empty, is checked by the node before the file appears.
// extract "tar.gz" unpacks a gzipped tar into a directory.
func (c *Client) PutFile(ctx context.Context, path string, r io.Reader, sha256, extract string) (*FileInfo, error) {
	u := "/v1/files/" + escapePath(path)
	if extract != "" {
		u += "?extract=" + url.QueryEscape(extract)
	}
	req, err := http.NewRequestWithContext(ctx, "PUT", c.BaseURL+u, r)
	if err != nil {
		return nil, err
	}
	if sha256 != "" {
		req.Header.Set("X-Content-SHA256", sha256)
	}
	var fi FileInfo
	if err := c.send(req, "PUT", u, &fi); err != nil {
		return nil, err
	}
	return &fi, nil
}

// StatFile returns a stored file; ok is false when there is none.
func (c *Client) StatFile(ctx context.Context, path string) (fi *FileInfo, ok bool, err error) {
	var out FileInfo
	err = c.Do(ctx, "GET", "/v1/files/"+escapePath(path), nil, &out)
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &out, true, nil
}

// Fetch has the node download a URL to path, checking sha256 when given.
func (c *Client) Fetch(ctx context.Context, rawURL, sha256, path string) (*FileInfo, error) {
	var fi FileInfo
	body := map[string]string{"url": rawURL, "sha256": sha256, "path": path}
	if err := c.Do(ctx, "POST", "/v1/fetch", body, &fi); err != nil {
		return nil, err
	}
	return &fi, nil
}

func (c *Client) logTail(ctx context.Context, path, field string, n int) (string, error) {
	var all bytes.Buffer
	var offset int64
	for range 1000 {
		var page map[string]any
		if err := c.Do(ctx, "GET", path+"?offset="+strconv.FormatInt(offset, 10), nil, &page); err != nil {
			return "", err
		}
		text, _ := page[field].(string)
		next, _ := page["next_offset"].(float64)
		all.WriteString(text)
		if text == "" || int64(next) <= offset {
			break
		}
		offset = int64(next)
		if all.Len() > 1<<20 {
			b := all.Bytes()
			all = *bytes.NewBuffer(append([]byte(nil), b[len(b)-64<<10:]...))
		}
	}
	lines := strings.Split(strings.TrimRight(all.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func isNotFound(err error) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func isConflict(err error) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Status == http.StatusConflict
}
