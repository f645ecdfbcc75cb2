package oip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Loaded models are kept under DataDir/models/<name>/: the model file as
// <sha256>.onnx and the load request as model.json. New restores them, so a
// restarted agent serves what it served before without a new apply.

type persistedModel struct {
	Request LoadRequest `json:"request"` // Source points at the stored file
	Origin  string      `json:"origin"`  // the source it was loaded from
}

func (s *Server) modelDir(name string) string {
	return filepath.Join(s.cfg.DataDir, "models", name)
}

// persist stores a serving model; it is a no-op without a DataDir.
func (s *Server) persist(name string, req LoadRequest, data []byte) error {
	if s.cfg.DataDir == "" {
		return nil
	}
	dir := s.modelDir(name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("storing model %q: %w", name, err)
	}
	file := filepath.Join(dir, req.SHA256+".onnx")
	if _, err := os.Stat(file); err != nil {
		if err := writeAtomic(file, data); err != nil {
			return fmt.Errorf("storing model %q: %w", name, err)
		}
	}
	rec := persistedModel{Request: req, Origin: req.Source}
	if old, err := readPersisted(dir); err == nil && req.Source == file {
		rec.Origin = old.Origin // restoring: keep where it first came from
	}
	rec.Request.Source = file
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "model.json"), b); err != nil {
		return fmt.Errorf("storing model %q: %w", name, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".onnx") && e.Name() != filepath.Base(file) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// forget removes a stored model; it is a no-op without a DataDir.
func (s *Server) forget(name string) error {
	if s.cfg.DataDir == "" {
		return nil
	}
	if err := os.RemoveAll(s.modelDir(name)); err != nil {
		return fmt.Errorf("removing stored model %q: %w", name, err)
	}
	return nil
}

func readPersisted(dir string) (persistedModel, error) {
	var rec persistedModel
	b, err := os.ReadFile(filepath.Join(dir, "model.json"))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("reading %s: %w", filepath.Join(dir, "model.json"), err)
	}
	return rec, nil
}

// restore reloads the stored models in the background. They count as
// LOADING (and the server as not ready) until each has loaded or failed.
func (s *Server) restore() {
	if s.cfg.DataDir == "" {
		return
	}
	dirs, err := os.ReadDir(filepath.Join(s.cfg.DataDir, "models"))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("cannot restore models", "error", err.Error())
		}
		return
	}
	for _, d := range dirs {
		if !d.IsDir() || !modelNameRE.MatchString(d.Name()) {
			continue
		}
		rec, err := readPersisted(filepath.Join(s.cfg.DataDir, "models", d.Name()))
		if err != nil {
			s.log.Warn("cannot restore model", "model", d.Name(), "error", err.Error())
			continue
		}
		name := d.Name()
		s.mu.Lock()
		s.models[name] = &model{name: name, state: StateLoading}
		s.mu.Unlock()
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if _, err := s.LoadModel(context.Background(), name, rec.Request); err != nil {
				s.log.Warn("restoring model failed", "model", name, "error", err.Error())
				return
			}
			s.log.Info("model restored", "model", name, "version", rec.Request.Version)
		}()
	}
}

// writeAtomic writes a file through a temporary name and a rename.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
