package main

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap"
)

func TestRunWritesALoadableBundle(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bundle")
	var stdout bytes.Buffer
	getenv := func(string) string { return "" } // no ONNX Runtime: hadrond alone
	args := []string{"-version", "9.9.9-cmdtest", "-out", out, "-module", "../../../..", "-arch", runtime.GOARCH, "-no-gzip"}
	if err := run(context.Background(), args, getenv, &stdout); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(stdout.String(), "version 9.9.9-cmdtest") {
		t.Errorf("stdout = %q, want the version", stdout.String())
	}
	b, err := bootstrap.LoadBundle(out)
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	files, err := b.ForArch(runtime.GOARCH)
	if err != nil || len(files) != 1 || files[0].Name != bootstrap.AgentFile || files[0].Gzip != "" {
		t.Errorf("bundle files = %+v, %v; want bin/hadrond alone without a gzip copy", files, err)
	}
}

func TestRunRequiresVersion(t *testing.T) {
	err := run(context.Background(), []string{"-out", t.TempDir()}, func(string) string { return "" }, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "-version is required") {
		t.Errorf("run without -version: err = %v, want it to ask for -version", err)
	}
}
