// Package files is the agent's file service: the provider uploads datasets,
// models and source trees to a node, or asks the node to fetch a URL, with
// the sha256 checked before anything becomes visible. Files live under one
// root directory; every write is atomic (temp file, fsync, rename).
package files

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
)

// Service serves /v1/files.
type Service struct {
	root   string
	client *http.Client
}

// New returns a file service rooted at dir (created if missing). client
// fetches URLs; nil means a client with a 30 minute timeout.
func New(dir string, client *http.Client) (*Service, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating files directory: %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Minute}
	}
	return &Service{root: dir, client: client}, nil
}

// Info describes a stored file or directory.
type Info struct {
	// Path is the absolute path on the node, for job specs and model sources.
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size"`
	Dir    bool   `json:"dir,omitempty"`
}

// FetchRequest is the body of POST /v1/fetch.
type FetchRequest struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256,omitempty"`
	Path   string `json:"path"`
}

// Register implements api.Service.
func (s *Service) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("PUT /v1/files/{path...}", auth(http.HandlerFunc(s.handlePut)))
	mux.Handle("GET /v1/files/{path...}", auth(http.HandlerFunc(s.handleStat)))
	mux.Handle("DELETE /v1/files/{path...}", auth(http.HandlerFunc(s.handleDelete)))
	mux.Handle("POST /v1/fetch", auth(http.HandlerFunc(s.handleFetch)))
}

// Shutdown implements api.Service; uploads in flight end with their requests.
func (s *Service) Shutdown(context.Context) error { return nil }

// resolve maps a relative API path to a path under the root.
func (s *Service) resolve(rel string) (string, error) {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "\\") {
		return "", fmt.Errorf("path %q must be relative, like datasets/train.csv", rel)
	}
	clean := filepath.Clean(rel)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("path %q leaves the files directory", rel)
	}
	return filepath.Join(s.root, clean), nil
}

// handlePut stores the body at the path. With ?extract=tar.gz the body is a
// gzipped tar extracted into a directory that replaces the old one whole.
// The X-Content-SHA256 header, when present, must match the body.
func (s *Service) handlePut(w http.ResponseWriter, r *http.Request) {
	dst, err := s.resolve(r.PathValue("path"))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	want := strings.ToLower(r.Header.Get("X-Content-SHA256"))
	var info Info
	switch r.URL.Query().Get("extract") {
	case "":
		info, err = writeAtomic(dst, r.Body, want)
	case "tar.gz":
		info, err = extractAtomic(dst, r.Body, want)
	default:
		err = badRequest("extract=%q is not supported (want tar.gz)", r.URL.Query().Get("extract"))
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, info)
}

func (s *Service) handleStat(w http.ResponseWriter, r *http.Request) {
	p, err := s.resolve(r.PathValue("path"))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	info, err := stat(p)
	if errors.Is(err, os.ErrNotExist) {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no file at %s", r.PathValue("path")))
		return
	} else if err != nil {
		api.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, info)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	p, err := s.resolve(r.PathValue("path"))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := os.RemoveAll(p); err != nil {
		api.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleFetch downloads a URL onto the node, verifying its sha256.
func (s *Service) handleFetch(w http.ResponseWriter, r *http.Request) {
	var req FetchRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON in fetch request: %v", err))
		return
	}
	if !strings.HasPrefix(req.URL, "http://") && !strings.HasPrefix(req.URL, "https://") {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("url %q must be http:// or https://", req.URL))
		return
	}
	dst, err := s.resolve(req.Path)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	want := strings.ToLower(req.SHA256)
	if want != "" {
		if info, err := stat(dst); err == nil && info.SHA256 == want {
			api.WriteJSON(w, http.StatusOK, info)
			return
		}
	}
	greq, err := http.NewRequestWithContext(r.Context(), "GET", req.URL, nil)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := s.client.Do(greq)
	if err != nil {
		api.WriteError(w, http.StatusBadGateway, fmt.Sprintf("fetching %s: %v", req.URL, err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		api.WriteError(w, http.StatusBadGateway, fmt.Sprintf("fetching %s: server answered %s", req.URL, resp.Status))
		return
	}
	info, err := writeAtomic(dst, resp.Body, want)
	if err != nil {
		writeErr(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, info)
}

type clientError struct{ msg string }

func (e *clientError) Error() string { return e.msg }

func badRequest(format string, args ...any) error { return &clientError{fmt.Sprintf(format, args...)} }

func writeErr(w http.ResponseWriter, err error) {
	var ce *clientError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ce):
		api.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.As(err, &mbe):
		api.WriteError(w, http.StatusRequestEntityTooLarge, err.Error())
	default:
		api.WriteError(w, http.StatusInternalServerError, err.Error())
	}
}

// writeAtomic streams r into dst through a temporary file, checking the
// digest before the rename makes it visible.
func writeAtomic(dst string, r io.Reader, want string) (Info, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Info{}, fmt.Errorf("creating %s: %w", filepath.Dir(dst), err)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part*")
	if err != nil {
		return Info{}, fmt.Errorf("writing %s: %w", dst, err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		f.Close()
		return Info{}, fmt.Errorf("receiving %s: %w", filepath.Base(dst), err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		f.Close()
		return Info{}, badRequest("sha256 mismatch for %s: got %s, want %s; nothing was replaced", filepath.Base(dst), got, want)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return Info{}, fmt.Errorf("syncing %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return Info{}, err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return Info{}, err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return Info{}, fmt.Errorf("renaming into %s: %w", dst, err)
	}
	return Info{Path: dst, SHA256: got, Size: n}, nil
}

// extractAtomic unpacks a gzipped tar into a fresh directory and swaps it in
// place of dst. The digest is of the compressed stream.
func extractAtomic(dst string, r io.Reader, want string) (Info, error) {
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Info{}, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".part*")
	if err != nil {
		return Info{}, err
	}
	defer os.RemoveAll(tmp)
	h := sha256.New()
	counted := &countingReader{r: io.TeeReader(r, h)}
	zr, err := gzip.NewReader(counted)
	if err != nil {
		return Info{}, badRequest("body is not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Info{}, badRequest("reading tar: %v", err)
		}
		name := filepath.Clean(hdr.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return Info{}, badRequest("tar entry %q leaves the directory", hdr.Name)
		}
		target := filepath.Join(tmp, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return Info{}, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return Info{}, err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(hdr.Mode)&0o755|0o644)
			if err != nil {
				return Info{}, err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return Info{}, badRequest("reading tar entry %s: %v", hdr.Name, err)
			}
			if err := out.Close(); err != nil {
				return Info{}, err
			}
		default:
			return Info{}, badRequest("tar entry %q: only files and directories are accepted", hdr.Name)
		}
	}
	io.Copy(io.Discard, counted) // digest the whole stream, gzip trailer included
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return Info{}, badRequest("sha256 mismatch for %s: got %s, want %s; nothing was replaced", filepath.Base(dst), got, want)
	}
	old := dst + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dst); err == nil {
		if err := os.Rename(dst, old); err != nil {
			return Info{}, err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return Info{}, err
	}
	os.RemoveAll(old)
	return Info{Path: dst, SHA256: got, Size: counted.n, Dir: true}, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func stat(p string) (Info, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, err
	}
	if fi.IsDir() {
		return Info{Path: p, Dir: true}, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Info{}, err
	}
	return Info{Path: p, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
