package command

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newService(t *testing.T, dir string) (*Service, *httptest.Server) {
	t.Helper()
	s, err := New(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux, func(h http.Handler) http.Handler { return h })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return s, ts
}

func call(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("decoding %s: %v", b, err)
		}
	}
	return resp.StatusCode
}

func waitDone(t *testing.T, ts *httptest.Server, id string) Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var st Status
		call(t, "GET", ts.URL+"/v1/commands/"+id, "", &st)
		if st.State != StateRunning {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("command %s still running after 20s", id)
	return Status{}
}

func TestRunSucceedsWithEnvAndLogs(t *testing.T) {
	_, ts := newService(t, t.TempDir())
	spec := `{"argv":["sh","-c","echo rank=$NODE_RANK; echo oops >&2"],"env":{"NODE_RANK":"3"}}`
	var st Status
	if code := call(t, "PUT", ts.URL+"/v1/commands/job-0", spec, &st); code != 200 || st.PID == 0 {
		t.Fatalf("start: got %d %+v", code, st)
	}
	// The same id and spec again is the same command, not a second run.
	var again Status
	call(t, "PUT", ts.URL+"/v1/commands/job-0", spec, &again)
	if again.PID != st.PID {
		t.Errorf("restart with the same spec: got pid %d, want %d", again.PID, st.PID)
	}
	done := waitDone(t, ts, "job-0")
	if done.State != StateSucceeded || done.ExitCode == nil || *done.ExitCode != 0 {
		t.Errorf("got %+v, want succeeded with exit 0", done)
	}
	var chunk LogChunk
	call(t, "GET", ts.URL+"/v1/commands/job-0/logs?offset=0", "", &chunk)
	if !strings.Contains(chunk.Data, "rank=3") || !strings.Contains(chunk.Data, "oops") {
		t.Errorf("logs: got %q, want stdout and stderr", chunk.Data)
	}
	var rest LogChunk
	call(t, "GET", ts.URL+"/v1/commands/job-0/logs?offset="+itoa(chunk.NextOffset), "", &rest)
	if rest.Data != "" || rest.NextOffset != chunk.NextOffset {
		t.Errorf("logs after the end: got %+v", rest)
	}
	if code := call(t, "PUT", ts.URL+"/v1/commands/job-0", `{"argv":["true"]}`, nil); code != 409 {
		t.Errorf("same id, other spec: got %d, want 409", code)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestFailureAndBadSpecs(t *testing.T) {
	_, ts := newService(t, t.TempDir())
	call(t, "PUT", ts.URL+"/v1/commands/f", `{"argv":["sh","-c","exit 7"]}`, nil)
	st := waitDone(t, ts, "f")
	if st.State != StateFailed || st.ExitCode == nil || *st.ExitCode != 7 {
		t.Errorf("got %+v, want failed with exit 7", st)
	}
	var missing Status
	call(t, "PUT", ts.URL+"/v1/commands/m", `{"argv":["/no/such/program"]}`, &missing)
	if missing.State != StateFailed || !strings.Contains(missing.Error, "/no/such/program") {
		t.Errorf("missing program: got %+v", missing)
	}
	tests := []struct{ id, body, want string }{
		{"x", `{"argv":[]}`, "argv must name a program"},
		{"x", `{"argv":["true"],"nope":1}`, "unknown field"},
		{"bad%20id", `{"argv":["true"]}`, "must be 1 to 128"},
	}
	for _, tt := range tests {
		var e struct{ Error string }
		if code := call(t, "PUT", ts.URL+"/v1/commands/"+tt.id, tt.body, &e); code != 400 || !strings.Contains(e.Error, tt.want) {
			t.Errorf("PUT %s %s: got %d %q, want 400 with %q", tt.id, tt.body, code, e.Error, tt.want)
		}
	}
	if code := call(t, "GET", ts.URL+"/v1/commands/none", "", nil); code != 404 {
		t.Errorf("unknown command: got %d, want 404", code)
	}
}

func TestCancelAndRestart(t *testing.T) {
	dir := t.TempDir()
	s, ts := newService(t, dir)
	call(t, "PUT", ts.URL+"/v1/commands/long", `{"argv":["sleep","300"]}`, nil)
	var st Status
	call(t, "POST", ts.URL+"/v1/commands/long/cancel", "", &st)
	if st.State != StateCancelled {
		t.Errorf("cancel: got %+v", st)
	}
	call(t, "PUT", ts.URL+"/v1/commands/ok", `{"argv":["true"]}`, nil)
	waitDone(t, ts, "ok")
	s.wg.Wait()

	// A new service over the same directory remembers what ran.
	_, ts2 := newService(t, dir)
	var got Status
	call(t, "GET", ts2.URL+"/v1/commands/ok", "", &got)
	if got.State != StateSucceeded {
		t.Errorf("after restart: got %+v, want succeeded", got)
	}
	if code := call(t, "DELETE", ts2.URL+"/v1/commands/ok", "", nil); code != 204 {
		t.Errorf("delete: got %d", code)
	}
	if code := call(t, "GET", ts2.URL+"/v1/commands/ok", "", nil); code != 404 {
		t.Errorf("after delete: got %d, want 404", code)
	}
}
