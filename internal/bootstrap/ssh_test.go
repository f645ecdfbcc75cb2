package bootstrap

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestSSHTransport(t *testing.T) {
	t.Parallel()
	n := startNode(t, "127.0.0.2", nodeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := DialSSH(ctx, n.sshConfig())
	if err != nil {
		t.Fatalf("DialSSH: %v\n%s", err, n.Log())
	}
	defer tr.Close()
	if got, want := tr.HostKeyFingerprint(), n.Fingerprint; got != want {
		t.Errorf("trust on first use: fingerprint %q, want %q (ssh-keygen's)", got, want)
	}

	runs := []struct {
		name, cmd, stdin string
		wantOut          string
		wantCode         int
		wantStderr       string
	}{
		{name: "stdout", cmd: "echo hello", wantOut: "hello\n"},
		{name: "stdin", cmd: "sh -s", stdin: "echo from-stdin\n", wantOut: "from-stdin\n"},
		{name: "exit code", cmd: "echo oops >&2; exit 3", wantCode: 3, wantStderr: "oops"},
	}
	for _, tc := range runs {
		t.Run("run "+tc.name, func(t *testing.T) {
			var in io.Reader
			if tc.stdin != "" {
				in = strings.NewReader(tc.stdin)
			}
			out, err := tr.Run(ctx, tc.cmd, in)
			if got := string(out); got != tc.wantOut {
				t.Errorf("stdout = %q, want %q", got, tc.wantOut)
			}
			var re *RunError
			switch {
			case tc.wantCode == 0 && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tc.wantCode != 0 && !errors.As(err, &re):
				t.Errorf("err = %v, want *RunError", err)
			case tc.wantCode != 0 && (re.ExitCode != tc.wantCode || !strings.Contains(re.Stderr, tc.wantStderr)):
				t.Errorf("RunError = code %d stderr %q, want code %d stderr containing %q", re.ExitCode, re.Stderr, tc.wantCode, tc.wantStderr)
			}
		})
	}

	t.Run("upload over sftp", func(t *testing.T) {
		testUpload(t, tr)
	})

	t.Run("dial through the tunnel", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "tunnelled "+r.URL.Path)
		}))
		defer srv.Close()
		c := &http.Client{Transport: &http.Transport{DialContext: DialFunc(tr)}}
		resp, err := c.Get(srv.URL + "/x")
		if err != nil {
			t.Fatalf("GET through the tunnel: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := string(body), "tunnelled /x"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
	})

	t.Run("keepalive", func(t *testing.T) {
		cfg := n.sshConfig()
		cfg.HostKeyFingerprint = n.Fingerprint
		cfg.KeepAlive = 20 * time.Millisecond
		ka, err := DialSSH(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer ka.Close()
		// sshd answers keepalive@openssh.com: after many intervals the
		// connection is still usable.
		before := ka.Stats().BytesSent
		deadline := time.Now().Add(10 * time.Second)
		for ka.Stats().BytesSent < before+1000 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := ka.Stats().BytesSent - before; got < 1000 {
			t.Fatalf("keepalives sent %d bytes in 10s, want requests every 20ms", got)
		}
		if out, err := ka.Run(ctx, "echo alive", nil); err != nil || string(out) != "alive\n" {
			t.Errorf("after keepalives: %q, %v", out, err)
		}
	})

	st := tr.Stats()
	if st.BytesSent < 4096 || st.BytesReceived == 0 {
		t.Errorf("Stats = %+v, want at least the 4 KiB upload sent and something received", st)
	}
}

// testUpload uploads a file with a mode and checks content and mode on the node.
func testUpload(t *testing.T, tr Transport) {
	ctx := context.Background()
	dst := filepath.Join(t.TempDir(), "f.bin")
	data := bytes.Repeat([]byte("hadron\n"), 1000)
	if err := tr.Upload(ctx, dst, 0o640, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded content: %d bytes (err %v), want %d bytes equal", len(got), err, len(data))
	}
	out, err := tr.Run(ctx, "stat -c %a "+shellQuote(dst), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), "640"; got != want {
		t.Errorf("mode = %s, want %s", got, want)
	}
}

func TestSSHUploadWithoutSFTP(t *testing.T) {
	t.Parallel()
	n := startNode(t, "127.0.0.3", nodeOptions{NoSFTP: true})
	tr := n.dial(t)
	testUpload(t, tr)
}

func TestSSHAgentAuth(t *testing.T) {
	t.Parallel()
	n := startNode(t, "127.0.0.4", nodeOptions{})
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("starting ssh-agent: %v", err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	keyFile := filepath.Join(dir, "id")
	if err := os.WriteFile(keyFile, n.UserKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		add := exec.Command("ssh-add", keyFile)
		add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		out, err := add.CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh-add: %v: %s", err, out)
		}
		time.Sleep(50 * time.Millisecond) // the agent's socket is not there yet
	}
	cfg := n.sshConfig()
	cfg.PrivateKey = nil
	cfg.AgentSocket = sock
	cfg.HostKeyFingerprint = n.Fingerprint
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSSH with ssh-agent: %v", err)
	}
	defer tr.Close()
	out, err := tr.Run(ctx, "id -un", nil)
	if got, want := strings.TrimSpace(string(out)), "root"; err != nil || got != want {
		t.Errorf("id -un = %q (err %v), want %q", got, err, want)
	}
}

func TestSSHBastion(t *testing.T) {
	t.Parallel()
	bastion := startNode(t, "127.0.0.5", nodeOptions{})
	target := startNode(t, "127.0.0.6", nodeOptions{})
	cfg := target.sshConfig()
	cfg.HostKeyFingerprint = target.Fingerprint
	bcfg := bastion.sshConfig()
	cfg.Bastion = &bcfg
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSSH through the bastion: %v", err)
	}
	defer tr.Close()
	if got, want := tr.BastionHostKeyFingerprint(), bastion.Fingerprint; got != want {
		t.Errorf("bastion fingerprint = %q, want %q", got, want)
	}
	// The target's sshd sees the connection coming from the bastion's side
	// of loopback; SSH_CONNECTION names the target's own address.
	out, err := tr.Run(ctx, "echo $SSH_CONNECTION", nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(out)); len(f) != 4 || f[2] != "127.0.0.6" {
		t.Errorf("SSH_CONNECTION = %q, want the target 127.0.0.6 as server address", out)
	}
}

func TestSSHFailures(t *testing.T) {
	t.Parallel()
	n := startNode(t, "127.0.0.7", nodeOptions{})
	wrongKey, _ := newUserKey(t)
	closedPort := freePort(t, "127.0.0.8")
	tests := []struct {
		name    string
		cfg     func() SSHConfig
		timeout time.Duration
		check   func(t *testing.T, err error)
	}{
		{
			name: "sshd never comes up",
			cfg: func() SSHConfig {
				return SSHConfig{Host: "127.0.0.8", Port: closedPort, User: "root", PrivateKey: n.UserKeyPEM}
			},
			timeout: 1500 * time.Millisecond,
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "timeout") || !strings.Contains(err.Error(), "connection refused") {
					t.Errorf("error %q does not say timeout and the last cause (connection refused)", err)
				}
			},
		},
		{
			name: "wrong key",
			cfg: func() SSHConfig {
				c := n.sshConfig()
				c.PrivateKey = wrongKey
				return c
			},
			timeout: 30 * time.Second,
			check: func(t *testing.T, err error) {
				var ae *AuthError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), "authentication") {
					t.Errorf("error %q is not an *AuthError about authentication", err)
				}
			},
		},
		{
			name: "pinned host key differs",
			cfg: func() SSHConfig {
				c := n.sshConfig()
				c.HostKeyFingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
				return c
			},
			timeout: 30 * time.Second,
			check: func(t *testing.T, err error) {
				var me *HostKeyMismatchError
				if !errors.As(err, &me) || !strings.Contains(err.Error(), "expected SHA256:AAAA") || !strings.Contains(err.Error(), "got "+n.Fingerprint) {
					t.Errorf("error %q does not name both fingerprints", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			tr, err := DialSSH(ctx, tc.cfg())
			if err == nil {
				tr.Close()
				t.Fatal("DialSSH succeeded, want an error")
			}
			if got := PhaseOf(err); got != PhaseSSH {
				t.Errorf("phase = %q, want %q (error %v)", got, PhaseSSH, err)
			}
			tc.check(t, err)
		})
	}
}

func TestSSHHostKeyChangedBetweenRuns(t *testing.T) {
	t.Parallel()
	n := startNode(t, "127.0.0.9", nodeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := DialSSH(ctx, n.sshConfig())
	if err != nil {
		t.Fatal(err)
	}
	recorded := first.HostKeyFingerprint()
	first.Close()

	n.Stop()
	old := n.Fingerprint
	if err := n.NewHostKey(); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}

	cfg := n.sshConfig()
	cfg.HostKeyFingerprint = recorded
	_, err = DialSSH(ctx, cfg)
	var me *HostKeyMismatchError
	if !errors.As(err, &me) {
		t.Fatalf("second run: err = %v, want *HostKeyMismatchError", err)
	}
	if me.Expected != old || me.Got != n.Fingerprint {
		t.Errorf("mismatch = expected %s got %s, want expected %s got %s", me.Expected, me.Got, old, n.Fingerprint)
	}
	for _, want := range []string{"changed", old, n.Fingerprint} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestSSHPrivateKeyFormats authenticates with the key formats users paste
// into private_key: OpenSSH (plain and passphrase-protected), PKCS#1 RSA PEM
// and PKCS#8 ECDSA PEM.
func TestSSHPrivateKeyFormats(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := ssh.MarshalPrivateKeyWithPassphrase(edKey, "hadron", []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	keys := []struct {
		name       string
		pem        []byte
		passphrase []byte
		pub        crypto.PublicKey
	}{
		{"PKCS#1 RSA PEM", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), nil, rsaKey.Public()},
		{"PKCS#8 ECDSA PEM", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil, ecKey.Public()},
		{"OpenSSH ed25519 with passphrase", pem.EncodeToMemory(encrypted), []byte("s3cret"), edKey.Public()},
	}
	var lines []string
	for _, k := range keys {
		pub, err := ssh.NewPublicKey(k.pub)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))))
	}
	n := startNode(t, "127.0.0.16", nodeOptions{AuthorizedKey: strings.Join(lines, "\n")})
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			cfg := n.sshConfig()
			cfg.PrivateKey, cfg.Passphrase, cfg.HostKeyFingerprint = k.pem, k.passphrase, n.Fingerprint
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tr, err := DialSSH(ctx, cfg)
			if err != nil {
				t.Fatalf("DialSSH: %v", err)
			}
			defer tr.Close()
			if out, err := tr.Run(ctx, "echo ok", nil); err != nil || string(out) != "ok\n" {
				t.Errorf("Run = %q, %v", out, err)
			}
		})
	}
	t.Run("wrong passphrase", func(t *testing.T) {
		cfg := n.sshConfig()
		cfg.PrivateKey, cfg.Passphrase = keys[2].pem, []byte("nope")
		_, err := DialSSH(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "parsing ssh private key") {
			t.Errorf("err = %v, want a private key parse error", err)
		}
	})
}
