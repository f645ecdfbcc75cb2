package bootstrap

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/agent"
)

func TestBuildBundleManifest(t *testing.T) {
	b, err := LoadBundle(filepath.Dir(findFile(bundleV1, bundleV1.Files[0].Arch, AgentFile).Source) + "/..")
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	if b.Version != testVersion1 {
		t.Errorf("version = %q, want %q", b.Version, testVersion1)
	}
	for _, f := range b.Files {
		sum, size, err := fileSHA256(f.Source)
		if err != nil {
			t.Fatal(err)
		}
		if sum != f.SHA256 || size != f.Size {
			t.Errorf("%s/%s: manifest sha256 %s size %d, file has %s %d", f.Arch, f.Name, f.SHA256, f.Size, sum, size)
		}
		if f.Gzip == "" || f.GzipSize <= 0 || f.GzipSize >= f.Size {
			t.Errorf("%s/%s: gzip copy %q of %d bytes, want one smaller than %d", f.Arch, f.Name, f.Gzip, f.GzipSize, f.Size)
			continue
		}
		gz, err := os.Open(f.Gzip)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(gz)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, zr); err != nil {
			t.Fatal(err)
		}
		gz.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			t.Errorf("%s/%s: gzip copy decompresses to sha256 %s, want %s", f.Arch, f.Name, got, f.SHA256)
		}
	}
	agentFile := findFile(b, b.Files[0].Arch, AgentFile)
	if agentFile != nil && agentFile.GLIBC == "" {
		t.Errorf("agent file needs no glibc per the manifest; hadrond is built with cgo, want its GLIBC_ version")
	}
	if agentFile == nil || agentFile.Mode != 0o755 {
		t.Errorf("agent file = %+v, want bin/hadrond with mode 0755", agentFile)
	}
}

func TestBundleForArchAndWithURL(t *testing.T) {
	b := &Bundle{Version: "1.0.0", Files: []File{
		{Arch: "amd64", Name: AgentFile, SHA256: strings.Repeat("a", 64), Size: 10, Mode: 0o755},
		{Arch: "amd64", Name: ORTFile, SHA256: strings.Repeat("b", 64), Size: 20, Mode: 0o644},
		{Arch: "arm64", Name: ORTFile, SHA256: strings.Repeat("c", 64), Size: 30, Mode: 0o644},
	}}
	tests := []struct {
		arch      string
		wantFiles int
		wantErr   string
	}{
		{arch: "amd64", wantFiles: 2},
		{arch: "arm64", wantErr: "no bin/hadrond for linux/arm64"},
		{arch: "riscv64", wantErr: "no files for linux/riscv64"},
	}
	for _, tc := range tests {
		files, err := b.ForArch(tc.arch)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ForArch(%s) err = %v, want %q", tc.arch, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(files) != tc.wantFiles {
			t.Errorf("ForArch(%s) = %d files, %v; want %d", tc.arch, len(files), err, tc.wantFiles)
		}
	}

	nb, err := b.WithURL("amd64", ORTFile, "https://example.invalid/ort-gpu.so", "sha256:"+strings.Repeat("D", 64))
	if err != nil {
		t.Fatal(err)
	}
	got := findFile(nb, "amd64", ORTFile)
	if got == nil || got.URL == "" || got.Source != "" || got.SHA256 != strings.Repeat("d", 64) {
		t.Errorf("WithURL file = %+v, want the url with a lower-case digest", got)
	}
	if len(nb.Files) != len(b.Files) || findFile(b, "amd64", ORTFile).URL != "" {
		t.Errorf("WithURL must replace one file in a copy: %d files, original changed %v", len(nb.Files), findFile(b, "amd64", ORTFile).URL != "")
	}
	bad := []struct{ arch, url, sum, want string }{
		{"amd64", "https://x/y", "abc", "64 hex digits"},
		{"amd64", "ftp://x/y", strings.Repeat("a", 64), "http"},
		{"sparc", "https://x/y", strings.Repeat("a", 64), "unsupported architecture"},
	}
	for _, tc := range bad {
		if _, err := b.WithURL(tc.arch, ORTFile, tc.url, tc.sum); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithURL(%s, %s, %s) err = %v, want %q", tc.arch, tc.url, tc.sum, err, tc.want)
		}
	}
}

func TestLoadBundleRejects(t *testing.T) {
	tests := []struct{ name, manifest, want string }{
		{"no version", `{"files":[]}`, "no version"},
		{"bad digest", `{"version":"1","files":[{"arch":"amd64","name":"bin/hadrond","url":"https://x","sha256":"zz","size":1,"mode":"0755"}]}`, "invalid entry"},
		{"escaping name", `{"version":"1","files":[{"arch":"amd64","name":"../etc/passwd","url":"https://x","sha256":"` + strings.Repeat("a", 64) + `","size":1,"mode":"0644"}]}`, "invalid entry"},
		{"missing file", `{"version":"1","files":[{"arch":"amd64","name":"bin/hadrond","path":"linux-amd64/hadrond","sha256":"` + strings.Repeat("a", 64) + `","size":1,"mode":"0755"}]}`, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(tc.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadBundle(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadBundle err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRenderConfigIsReadByTheAgent(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		hasORT bool
		check  func(t *testing.T, c agent.Config)
	}{
		{
			name:   "defaults with ort",
			opts:   Options{Token: `tok"en\with$quotes${x}`},
			hasORT: true,
			check: func(t *testing.T, c agent.Config) {
				if c.Token != `tok"en\with$quotes${x}` {
					t.Errorf("token = %q, want the exact token (escaped)", c.Token)
				}
				if c.ORT.Library != "/opt/hadron/current/lib/libonnxruntime.so.1" || c.ORT.ExecutionProvider != "auto" {
					t.Errorf("ort = %+v", c.ORT)
				}
				if c.AddrFile != "/opt/hadron/run/agent.addr" || c.TLS != nil || c.PublicInference {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "tls, cuda, public inference, idle timeout",
			opts: Options{Token: "t", TLS: &TLS{CertPEM: []byte("c"), KeyPEM: []byte("k")}, ExecutionProvider: "cuda", PublicInference: true, IdleTimeout: "30m", LogLevel: "debug"},
			check: func(t *testing.T, c agent.Config) {
				if c.TLS == nil || c.TLS.CertFile != "/opt/hadron/etc/tls.crt" || c.TLS.KeyFile != "/opt/hadron/etc/tls.key" {
					t.Errorf("tls = %+v", c.TLS)
				}
				if c.ORT.Library != "" || c.ORT.ExecutionProvider != "cuda" || !c.PublicInference || c.IdleTimeout != "30m" || c.LogLevel != "debug" {
					t.Errorf("config = %+v ort %+v", c, c.ORT)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &layout{prefix: "/opt/hadron", dataDir: "/var/lib/hadron", listen: "0.0.0.0:7070"}
			src := renderConfig(tc.opts, l, tc.hasORT)
			c, err := agent.ParseConfig("hadrond.hcl", src)
			if err != nil {
				t.Fatalf("agent.ParseConfig: %v\n%s", err, src)
			}
			if c.Listen != "0.0.0.0:7070" || c.DataDir != "/var/lib/hadron" {
				t.Errorf("listen, data_dir = %q, %q", c.Listen, c.DataDir)
			}
			tc.check(t, c)
		})
	}
}

func TestRenderUnit(t *testing.T) {
	l := &layout{prefix: "/opt/hadron", user: "hadron"}
	unit := string(renderUnit(l))
	for _, want := range []string{"Restart=always", "RestartPreventExitStatus=3 4", "SuccessExitStatus=3 4", "User=hadron", "ExecStart=/opt/hadron/current/bin/hadrond agent -config /opt/hadron/etc/hadrond.hcl", "StandardOutput=append:/opt/hadron/log/hadrond.log", "WantedBy=multi-user.target"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
}

func TestRenderUnitPoweroff(t *testing.T) {
	l := &layout{prefix: "/opt/hadron", user: "hadron", poweroff: "systemctl poweroff"}
	unit := string(renderUnit(l))
	want := `ExecStopPost=+/bin/sh -c 'if [ "$${EXIT_STATUS}" = 4 ]; then exec systemctl poweroff; fi'`
	if !strings.Contains(unit, want) || !strings.Contains(unit, "RestartPreventExitStatus=3 4") {
		t.Errorf("unit lacks %q or RestartPreventExitStatus=3 4:\n%s", want, unit)
	}
	if strings.Contains(string(renderUnit(&layout{prefix: "/opt/hadron", user: "hadron"})), "ExecStopPost") {
		t.Error("a unit without idle_action poweroff powers the node off")
	}
}

// TestRenderUnitVerifies has systemd check the unit offline.
func TestRenderUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	dir := t.TempDir()
	l := &layout{prefix: dir, user: "root", poweroff: "systemctl poweroff"}
	if err := os.MkdirAll(filepath.Join(dir, "current", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "current", AgentFile), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, "hadrond.service")
	if err := os.WriteFile(unit, renderUnit(l), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\n%s", err, out, renderUnit(l))
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "2.17", true},
		{"2.17", "", false},
		{"2.3.2", "2.34", true},
		{"2.34", "2.3.2", false},
		{"2.31", "2.34", true},
		{"2.36", "2.34", false},
		{"2.34", "2.34", false},
	}
	for _, tc := range tests {
		if got := versionLess(tc.a, tc.b); got != tc.want {
			t.Errorf("versionLess(%q, %q) = %t, want %t", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestHelpers(t *testing.T) {
	quotes := []struct{ in, want string }{
		{"plain/path-1.0", "plain/path-1.0"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
	}
	for _, tc := range quotes {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	arches := []struct{ in, want string }{{"x86_64", "amd64"}, {"aarch64", "arm64"}, {"arm64", "arm64"}, {"armv7l", ""}, {"riscv64", ""}}
	for _, tc := range arches {
		if got := goArch(tc.in); got != tc.want {
			t.Errorf("goArch(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	addrs := []struct {
		in   string
		host string
		port int
		err  bool
	}{
		{"http://127.0.0.1:7070\n", "127.0.0.1", 7070, false},
		{"https://[::]:443", "127.0.0.1", 443, false},
		{"http://0.0.0.0:7070", "127.0.0.1", 7070, false},
		{"http://10.0.0.5:7070", "10.0.0.5", 7070, false},
		{"http://127.0.0.1", "", 0, true},
	}
	for _, tc := range addrs {
		host, port, err := agentAddr(tc.in)
		if host != tc.host || port != tc.port || (err != nil) != tc.err {
			t.Errorf("agentAddr(%q) = %q, %d, %v; want %q, %d, error %t", tc.in, host, port, err, tc.host, tc.port, tc.err)
		}
	}
	for v, ok := range map[string]bool{"1.2.3": true, "0.1.0-dev+abc": true, "current": false, "../x": false, ".hidden": false, "a b": false, "": false} {
		if err := validVersion(v); (err == nil) != ok {
			t.Errorf("validVersion(%q) = %v, want ok %t", v, err, ok)
		}
	}
	pe := &PhaseError{Node: "n1", Phase: PhaseReady, Err: errors.New("boom"), Log: []string{"a", "b"}}
	if got, want := pe.Error(), "node n1: phase \"agent ready\" failed: boom\nlast 2 lines of the agent log:\n  a\n  b"; got != want {
		t.Errorf("PhaseError = %q, want %q", got, want)
	}
}

func TestInstallFilesFromURL(t *testing.T) {
	t.Parallel()
	arch := bundleV1.Files[0].Arch
	agentFile := findFile(bundleV1, arch, AgentFile)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hadrond" {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, agentFile.Source)
	}))
	defer srv.Close()
	good, err := bundleV1.WithURL(arch, AgentFile, srv.URL+"/hadrond", agentFile.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := bundleV1.WithURL(arch, AgentFile, srv.URL+"/hadrond", strings.Repeat("e", 64))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		bundle  *Bundle
		fetch   FetchMode
		wantErr string
	}{
		{name: "node fetches", bundle: good, fetch: FetchOnNode},
		{name: "provider fetches and uploads", bundle: good, fetch: FetchViaProvider},
		{name: "node rejects a wrong digest", bundle: wrong, fetch: FetchOnNode, wantErr: "sha256 verification failed"},
		{name: "provider rejects a wrong digest", bundle: wrong, fetch: FetchViaProvider, wantErr: "want " + strings.Repeat("e", 64)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &LocalTransport{Name: "local-url"}
			o := nodeOpts(t, tc.bundle)
			o.Fetch = tc.fetch
			uninstallOnCleanup(t, tr, o)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := Install(ctx, tr, o)
			if tc.wantErr != "" {
				if PhaseOf(err) != PhaseBundle || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Install err = %v, want phase %q containing %q", err, PhaseBundle, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			if res.Info.RuntimeVersion != testVersion1 {
				t.Errorf("runtime version = %q, want %q", res.Info.RuntimeVersion, testVersion1)
			}
		})
	}
}
