package bootstrap

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
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
	for _, b := range []struct {
		version string
		out     **Bundle
	}{{testVersion1, &bundleV1}, {testVersion2, &bundleV2}} {
		*b.out, err = BuildBundle(ctx, BuildOptions{
			Version: b.version, OutDir: filepath.Join(dir, b.version), ModuleDir: root,
			Arches: []string{runtime.GOARCH}, ORTLibraries: ort,
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
	host        string
	port        int
	dir         string
	userKeyPEM  []byte
	fingerprint string // the host key's SHA256 fingerprint
	cmd         *exec.Cmd
}

type nodeOptions struct {
	noSFTP bool
	// authorizedKey overrides the authorized public key (authorized_keys line).
	authorizedKey string
}

// requireSSHD skips when OpenSSH's server or root is missing.
func requireSSHD(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("needs OpenSSH's /usr/sbin/sshd: run bash internal/tools/prereqs.sh debs (make test does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to start sshd test nodes on 127.0.0.x: run make test as root")
	}
}

// newUserKey returns an ed25519 key as OpenSSH PEM and authorized_keys line.
func newUserKey(t testing.TB) ([]byte, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "hadron test")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(blk), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

// startNode starts sshd on host (127.0.0.x) with a fresh host key and user key.
func startNode(t testing.TB, host string, o nodeOptions) *testNode {
	t.Helper()
	requireSSHD(t)
	dir := t.TempDir()
	n := &testNode{host: host, dir: dir, port: freePort(t, host)}
	var authorized string
	n.userKeyPEM, authorized = newUserKey(t)
	if o.authorizedKey != "" {
		authorized = o.authorizedKey
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(authorized+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.newHostKey(t)
	n.start(t, o)
	return n
}

// newHostKey generates the node's host key with ssh-keygen.
func (n *testNode) newHostKey(t testing.TB) {
	t.Helper()
	key := filepath.Join(n.dir, "host_ed25519")
	os.Remove(key)
	os.Remove(key + ".pub")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pubLine, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubLine)
	if err != nil {
		t.Fatal(err)
	}
	n.fingerprint = ssh.FingerprintSHA256(pub)
}

func (n *testNode) start(t testing.TB, o nodeOptions) {
	t.Helper()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`ListenAddress %s:%d
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100
MaxSessions 100
LogLevel ERROR
`, n.host, n.port, filepath.Join(n.dir, "host_ed25519"), filepath.Join(n.dir, "authorized_keys"), filepath.Join(n.dir, "sshd.pid"))
	if !o.noSFTP {
		cfg += "Subsystem sftp internal-sftp\n"
	}
	cfgPath := filepath.Join(n.dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfgPath)
	logf, err := os.Create(filepath.Join(n.dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting sshd: %v", err)
	}
	cmd := n.cmd
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
}

// stop stops sshd (for the host-key-change test).
func (n *testNode) stop() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

func (n *testNode) sshConfig() SSHConfig {
	return SSHConfig{Host: n.host, Port: n.port, User: "root", PrivateKey: n.userKeyPEM, Name: "node-" + n.host}
}

// dial connects with a pinned host key.
func (n *testNode) dial(t testing.TB) *SSHTransport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := n.sshConfig()
	cfg.HostKeyFingerprint = n.fingerprint
	tr, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSSH(%s): %v\nsshd log:\n%s", n.host, err, n.log())
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func (n *testNode) log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "sshd.log"))
	return string(b)
}

// freePort returns a port free on host right now.
func freePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("finding a free port on %s: %v", host, err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(p)
	return port
}
