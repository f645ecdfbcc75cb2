package files

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newServer(t *testing.T) (*Service, *httptest.Server) {
	t.Helper()
	s, err := New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux, func(h http.Handler) http.Handler { return h })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return s, ts
}

func do(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestPutAndStat(t *testing.T) {
	s, ts := newServer(t)
	data := []byte("label,x\n1,0.5\n")
	tests := []struct {
		name     string
		path     string
		sha      string
		wantCode int
		wantBody string
	}{
		{"plain", "data/train.csv", "", 200, `"sha256":"` + digest(data) + `"`},
		{"checked", "data/train2.csv", digest(data), 200, `"size":14`},
		{"mismatch", "data/train3.csv", strings.Repeat("0", 64), 400, "sha256 mismatch for train3.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, "PUT", ts.URL+"/v1/files/"+tt.path, bytes.NewReader(data), map[string]string{"X-Content-SHA256": tt.sha})
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("got %d %s, want %d containing %s", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(s.root, "data/train3.csv")); !os.IsNotExist(err) {
		t.Errorf("a refused upload left a file: %v", err)
	}
	code, body := do(t, "GET", ts.URL+"/v1/files/data/train.csv", nil, nil)
	var info Info
	if code != 200 || json.Unmarshal([]byte(body), &info) != nil || info.SHA256 != digest(data) || info.Path != filepath.Join(s.root, "data/train.csv") {
		t.Errorf("stat: got %d %s", code, body)
	}
	if code, _ := do(t, "GET", ts.URL+"/v1/files/nothing", nil, nil); code != 404 {
		t.Errorf("stat of a missing file: got %d, want 404", code)
	}
}

func TestExtractTarReplacesDirectory(t *testing.T) {
	s, ts := newServer(t)
	upload := func(files map[string]string) (int, string) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for name, content := range files {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
			tw.Write([]byte(content))
		}
		tw.Close()
		zw.Close()
		return do(t, "PUT", ts.URL+"/v1/files/src?extract=tar.gz", &buf, nil)
	}
	if code, body := upload(map[string]string{"train.py": "print(1)", "lib/util.py": "x=1"}); code != 200 {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, body := upload(map[string]string{"train.py": "print(2)"}); code != 200 {
		t.Fatalf("second upload: %d %s", code, body)
	}
	got, _ := os.ReadFile(filepath.Join(s.root, "src/train.py"))
	if string(got) != "print(2)" {
		t.Errorf("train.py: got %q, want the second upload", got)
	}
	if _, err := os.Stat(filepath.Join(s.root, "src/lib/util.py")); !os.IsNotExist(err) {
		t.Errorf("files of the first upload survived the replacement: %v", err)
	}
	if code, body := upload(map[string]string{"../evil": "x"}); code != 400 || !strings.Contains(body, "leaves the directory") {
		t.Errorf("escaping tar entry: got %d %s", code, body)
	}
}

func TestFetch(t *testing.T) {
	model := []byte("onnx bytes")
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/m.onnx" {
			http.NotFound(w, r)
			return
		}
		w.Write(model)
	}))
	defer origin.Close()
	_, ts := newServer(t)
	tests := []struct {
		name, body string
		wantCode   int
		wantBody   string
	}{
		{"ok", `{"url":"` + origin.URL + `/m.onnx","sha256":"` + digest(model) + `","path":"models/m.onnx"}`, 200, digest(model)},
		{"digest mismatch", `{"url":"` + origin.URL + `/m.onnx","sha256":"` + strings.Repeat("a", 64) + `","path":"models/x.onnx"}`, 400, "sha256 mismatch"},
		{"404 upstream", `{"url":"` + origin.URL + `/nope","path":"models/y.onnx"}`, 502, "404 Not Found"},
		{"bad scheme", `{"url":"ftp://x/y","path":"a"}`, 400, "must be http:// or https://"},
		{"unknown field", `{"url":"http://x","path":"a","mode":1}`, 400, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, "POST", ts.URL+"/v1/fetch", strings.NewReader(tt.body), nil)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("got %d %s, want %d containing %s", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestResolveRejectsEscapes(t *testing.T) {
	s, _ := newServer(t)
	for _, p := range []string{"../etc/passwd", "/etc/passwd", "a/../../b", "..", "."} {
		if _, err := s.resolve(p); err == nil {
			t.Errorf("resolve(%q): got no error, want one", p)
		}
	}
	if got, err := s.resolve("a/b/../c"); err != nil || got != filepath.Join(s.root, "a/c") {
		t.Errorf("resolve(a/b/../c): got %q, %v", got, err)
	}
}
