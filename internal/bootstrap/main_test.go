package bootstrap

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap/sshdtest"
)

// Bundles built once per test binary by TestMain: two versions of hadrond for
// this machine's architecture, with ONNX Runtime when HADRON_ORT_LIBRARY is set.
var (
	bundleV1 *Bundle
	bundleV2 *Bundle
)

const (
	testVersion1 = "0.9.0-test1"
	testVersion2 = "0.9.1-test2"
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hadron-bootstrap-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ort := map[string]string{}
	if lib := os.Getenv("HADRON_ORT_LIBRARY"); lib != "" && runtime.GOARCH == "amd64" {
		ort["amd64"] = lib
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Version 1 ships gzip-compressed copies, version 2 plain files: the
	// install and the upgrade exercise both upload paths.
	for _, b := range []struct {
		version string
		noGzip  bool
		out     **Bundle
	}{{testVersion1, false, &bundleV1}, {testVersion2, true, &bundleV2}} {
		*b.out, err = BuildBundle(ctx, BuildOptions{
			Version: b.version, OutDir: filepath.Join(dir, b.version), ModuleDir: root,
			Arches: []string{runtime.GOARCH}, ORTLibraries: ort, NoGzip: b.noGzip,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "building the test bundle:", err)
			return 1
		}
	}
	return m.Run()
}

// testNode is one OpenSSH sshd started by a test on its own loopback address.
type testNode struct {
	*sshdtest.Node
}

type nodeOptions = sshdtest.Options

// startNode starts sshd on host (127.0.0.x), stopped when the test ends; it
// skips (saying how to enable) when sshd or root is missing.
func startNode(t testing.TB, host string, o nodeOptions) *testNode {
	t.Helper()
	if err := sshdtest.Available(); err != nil {
		t.Skip(err)
	}
	n, err := sshdtest.Start(t.TempDir(), host, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return &testNode{n}
}

func newUserKey(t testing.TB) ([]byte, string) {
	t.Helper()
	k, line, err := sshdtest.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, line
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	p, err := sshdtest.FreePort(host)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (n *testNode) sshConfig() SSHConfig {
	return SSHConfig{Host: n.Host, Port: n.Port, User: "root", PrivateKey: n.UserKeyPEM, Name: "node-" + n.Host}
}

// dial connects with a pinned host key; closed when the test ends.
func (n *testNode) dial(t testing.TB) *SSHTransport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := n.sshConfig()
	cfg.HostKeyFingerprint = n.Fingerprint
	tr, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSSH(%s): %v\nsshd log:\n%s", n.Host, err, n.Log())
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}
