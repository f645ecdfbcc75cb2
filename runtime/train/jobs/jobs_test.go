package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/train"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/train/jobs"
)

const token = "s3cret"

// writeCSV writes a small two-feature, two-class data set.
func writeCSV(t *testing.T, dir string, rows int) string {
	t.Helper()
	var b strings.Builder
	for i := range rows {
		a, c := float64(i%17)/17, float64(i%13)/13
		label := 0
		if a > c {
			label = 1
		}
		fmt.Fprintf(&b, "%d,%g,%g\n", label, a, c)
	}
	p := filepath.Join(dir, "data.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func spec(csv string, epochs int) train.JobSpec {
	return train.JobSpec{
		Name: "points", Seed: 7, Threads: 2, Epochs: epochs, BatchSize: 8, ValidationSplit: 0.25,
		Loss: "binary_crossentropy", CheckpointEverySteps: 5,
		Dataset: train.DatasetSpec{Format: "csv", Train: csv},
		Model: train.ModelSpec{InputShape: []int{2}, Layers: []train.LayerSpec{
			{Type: "dense", Units: 8, Activation: "relu"},
			{Type: "dense", Units: 1, Activation: "sigmoid"},
		}},
	}
}

type client struct {
	t   *testing.T
	url string
}

func (c client) do(method, path string, body any, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.url+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// waitFor polls the job until cond holds or the deadline passes.
func (c client) waitFor(id string, what string, cond func(jobs.JobInfo) bool) jobs.JobInfo {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var info jobs.JobInfo
	for time.Now().Before(deadline) {
		c.do("GET", "/v1/jobs/"+id, nil, &info)
		if cond(info) {
			return info
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("job %s: timed out waiting for %s; last state %+v", id, what, info)
	return info
}

func serve(t *testing.T, svc *jobs.Service) client {
	t.Helper()
	mux := http.NewServeMux()
	svc.Register(mux, api.RequireToken(token))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return client{t: t, url: srv.URL}
}

func TestJobLifecycle(t *testing.T) {
	dataDir := t.TempDir()
	csv := writeCSV(t, dataDir, 120)
	svc, err := jobs.New(jobs.Config{Dir: filepath.Join(dataDir, "jobs")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	c := serve(t, svc)

	t.Run("token required", func(t *testing.T) {
		resp, err := http.Get(c.url + "/v1/jobs")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", resp.StatusCode)
		}
	})

	t.Run("invalid spec", func(t *testing.T) {
		bad := spec(csv, 1)
		bad.Model.Layers[0].Type = "lstm"
		var e api.Error
		if code := c.do("POST", "/v1/jobs", bad, &e); code != http.StatusBadRequest || !strings.Contains(e.Error, "layer 1 (lstm)") {
			t.Errorf("status %d error %q, want 400 naming layer 1", code, e.Error)
		}
		missing := spec(filepath.Join(dataDir, "nope.csv"), 1)
		if code := c.do("POST", "/v1/jobs", missing, &e); code != http.StatusBadRequest || !strings.Contains(e.Error, "nope.csv") {
			t.Errorf("status %d error %q, want 400 naming the missing file", code, e.Error)
		}
	})

	var info jobs.JobInfo
	if code := c.do("POST", "/v1/jobs", spec(csv, 3), &info); code != http.StatusCreated {
		t.Fatalf("submit: status %d", code)
	}
	done := c.waitFor(info.ID, "success", func(i jobs.JobInfo) bool { return i.Status == jobs.StatusSucceeded || i.Status == jobs.StatusFailed })
	if done.Status != jobs.StatusSucceeded {
		t.Fatalf("job ended %s: %s", done.Status, done.Error)
	}
	if done.Epoch != 3 || done.Epochs != 3 || len(done.ModelSHA256) != 64 {
		t.Errorf("finished job: epoch %d/%d sha %q, want 3/3 and a digest", done.Epoch, done.Epochs, done.ModelSHA256)
	}
	names := map[string]jobs.Artifact{}
	for _, a := range done.Artifacts {
		names[a.Name] = a
	}
	for _, want := range []string{"model.onnx", "model.onnx.sha256", "metrics.json", "chart.png"} {
		if _, ok := names[want]; !ok {
			t.Errorf("artifact %s not listed in %+v", want, done.Artifacts)
		}
	}
	if names["model.onnx"].SHA256 != done.ModelSHA256 {
		t.Errorf("model artifact sha %q, job sha %q", names["model.onnx"].SHA256, done.ModelSHA256)
	}

	t.Run("artifact download", func(t *testing.T) {
		req, _ := http.NewRequest("GET", c.url+"/v1/jobs/"+info.ID+"/artifacts/metrics.json", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m train.Metrics
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Epochs) != 3 || !m.Complete {
			t.Errorf("metrics.json: %+v (err %v), want 3 complete epochs", m, err)
		}
	})

	t.Run("logs page", func(t *testing.T) {
		var all strings.Builder
		var off int64
		for range 100 {
			var p jobs.LogPage
			c.do("GET", fmt.Sprintf("/v1/jobs/%s/logs?offset=%d", info.ID, off), nil, &p)
			all.WriteString(p.Text)
			off = p.NextOffset
			if p.Done {
				break
			}
		}
		text := all.String()
		for _, want := range []string{"starting", "epoch 1/3", "epoch 3/3", "succeeded"} {
			if !strings.Contains(text, want) {
				t.Errorf("log lacks %q:\n%s", want, text)
			}
		}
		var p jobs.LogPage
		c.do("GET", fmt.Sprintf("/v1/jobs/%s/logs?offset=%d", info.ID, 5), nil, &p)
		if !strings.HasPrefix(text[5:], p.Text) || p.Offset != 5 {
			t.Errorf("page at offset 5 = %q, want the log from byte 5", p.Text)
		}
	})

	t.Run("idempotent submit", func(t *testing.T) {
		var a, b jobs.JobInfo
		post := func(out *jobs.JobInfo) int {
			body, _ := json.Marshal(spec(csv, 1))
			req, _ := http.NewRequest("POST", c.url+"/v1/jobs", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Idempotency-Key", "plan-123")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			_ = json.NewDecoder(resp.Body).Decode(out)
			return resp.StatusCode
		}
		if code := post(&a); code != http.StatusCreated {
			t.Fatalf("first submit: %d", code)
		}
		if code := post(&b); code != http.StatusOK || b.ID != a.ID {
			t.Errorf("second submit: status %d id %s, want 200 and the first job %s", code, b.ID, a.ID)
		}
		c.waitFor(a.ID, "finish", func(i jobs.JobInfo) bool { return i.Status == jobs.StatusSucceeded })
	})

	t.Run("cancel and delete", func(t *testing.T) {
		var long jobs.JobInfo
		c.do("POST", "/v1/jobs", spec(csv, 100000), &long)
		c.waitFor(long.ID, "training steps", func(i jobs.JobInfo) bool { return i.Status == jobs.StatusRunning && i.Step > 0 })
		if !svc.Busy() {
			t.Error("Busy() = false while a job is running")
		}
		var after jobs.JobInfo
		if code := c.do("POST", "/v1/jobs/"+long.ID+"/cancel", nil, &after); code != http.StatusOK || after.Status != jobs.StatusCancelled {
			t.Fatalf("cancel: status %d job %s, want 200 cancelled", code, after.Status)
		}
		var e api.Error
		if code := c.do("POST", "/v1/jobs/"+long.ID+"/cancel", nil, &e); code != http.StatusConflict {
			t.Errorf("second cancel: status %d, want 409", code)
		}
		if code := c.do("DELETE", "/v1/jobs/"+long.ID, nil, nil); code != http.StatusNoContent {
			t.Errorf("delete: status %d, want 204", code)
		}
		if code := c.do("GET", "/v1/jobs/"+long.ID, nil, &e); code != http.StatusNotFound {
			t.Errorf("get after delete: status %d, want 404", code)
		}
		if _, err := os.Stat(long.Dir); !os.IsNotExist(err) {
			t.Errorf("job directory still exists: %v", err)
		}
	})

	if svc.Busy() {
		t.Error("Busy() = true with every job finished")
	}
	var list struct {
		Jobs []jobs.JobInfo `json:"jobs"`
	}
	c.do("GET", "/v1/jobs", nil, &list)
	if len(list.Jobs) != 2 {
		t.Errorf("list has %d jobs, want 2 (the first and the idempotent one)", len(list.Jobs))
	}
}

// TestRestartResumes stops a service in the middle of a job and starts a
// new one over the same directory: the job resumes from its checkpoint and
// ends with the same weights as an uninterrupted run.
func TestRestartResumes(t *testing.T) {
	dataDir := t.TempDir()
	csv := writeCSV(t, dataDir, 200)
	s := spec(csv, 4)
	want, err := train.RunJob(context.Background(), s, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}

	jobsDir := filepath.Join(dataDir, "jobs")
	reached := make(chan struct{})
	// The first instance's runner parks the job at step 23 until shutdown.
	parked := func(ctx context.Context, j train.JobSpec, dir string, progress func(train.Progress)) (*train.Result, error) {
		return train.RunJob(ctx, j, dir, func(p train.Progress) {
			progress(p)
			if p.GlobalStep == 23 {
				close(reached)
				<-ctx.Done()
			}
		})
	}
	svc1, err := jobs.New(jobs.Config{Dir: jobsDir, Run: parked})
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := svc1.Submit(s, "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("job never reached step 23")
	}
	if err := svc1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc1.Get(info.ID); got.Status != jobs.StatusRunning {
		t.Fatalf("after shutdown the job is %s, want it left running for the next agent", got.Status)
	}

	svc2, err := jobs.New(jobs.Config{Dir: jobsDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc2.Shutdown(context.Background()) })
	c := serve(t, svc2)
	done := c.waitFor(info.ID, "the resumed job to finish", func(i jobs.JobInfo) bool {
		return i.Status != jobs.StatusRunning && i.Status != jobs.StatusQueued
	})
	if done.Status != jobs.StatusSucceeded || done.Starts != 2 || !done.Progress.Resumed {
		t.Fatalf("resumed job: status %s starts %d resumed %v error %q; want succeeded after 2 starts, resumed", done.Status, done.Starts, done.Progress.Resumed, done.Error)
	}
	if done.ModelSHA256 != want.ModelSHA256 {
		t.Errorf("resumed job's model sha256 %s, uninterrupted run %s", done.ModelSHA256, want.ModelSHA256)
	}
}
