// Package sshdtest starts real OpenSSH servers (/usr/sbin/sshd) on loopback
// addresses (127.0.0.2, 127.0.0.3, ...) to stand in for cloud nodes in tests
// and benchmarks: each has a fresh host key made by ssh-keygen, a fresh
// ed25519 user key for root, and its own port, config and pid file.
package sshdtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// SSHD is the OpenSSH server binary.
const SSHD = "/usr/sbin/sshd"

// Options tune one node.
type Options struct {
	// NoSFTP leaves out the sftp subsystem (uploads then go over cat).
	NoSFTP bool
	// AuthorizedKey replaces the generated user key's authorized_keys line
	// (several keys: one per line).
	AuthorizedKey string
}

// Node is one running sshd.
type Node struct {
	Host string
	Port int
	Dir  string
	// UserKeyPEM is root's private key (OpenSSH PEM) accepted by the node.
	UserKeyPEM []byte
	// Fingerprint is the host key's "SHA256:..." fingerprint.
	Fingerprint string
	opts        Options
	cmd         *exec.Cmd
	logf        *os.File
}

// Available says why sshd nodes cannot run here, or nil when they can.
func Available() error {
	if _, err := os.Stat(SSHD); err != nil {
		return errors.New("needs OpenSSH's /usr/sbin/sshd: run bash internal/tools/prereqs.sh debs (make test does)")
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root to start sshd nodes on 127.0.0.x: run as root")
	}
	return nil
}

// Start starts sshd on host (a 127.0.0.0/8 address) on a free port, keeping
// its files in dir.
func Start(dir, host string, o Options) (*Node, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	port, err := FreePort(host)
	if err != nil {
		return nil, err
	}
	n := &Node{Host: host, Port: port, Dir: dir, opts: o}
	var authorized string
	n.UserKeyPEM, authorized, err = NewUserKey()
	if err != nil {
		return nil, err
	}
	if o.AuthorizedKey != "" {
		authorized = o.AuthorizedKey
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(authorized+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := n.NewHostKey(); err != nil {
		return nil, err
	}
	if err := n.Restart(); err != nil {
		return nil, err
	}
	return n, nil
}

// NewUserKey returns an ed25519 key as OpenSSH PEM and authorized_keys line.
func NewUserKey() ([]byte, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "hadron test")
	if err != nil {
		return nil, "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(blk), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), nil
}

// NewHostKey replaces the host key (ssh-keygen); Restart makes sshd use it.
func (n *Node) NewHostKey() error {
	key := filepath.Join(n.Dir, "host_ed25519")
	os.Remove(key)
	os.Remove(key + ".pub")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hadron-test-host", "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %w: %s", err, out)
	}
	line, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return err
	}
	n.Fingerprint = ssh.FingerprintSHA256(pub)
	return nil
}

// Restart (re)starts sshd with the node's current config and keys.
func (n *Node) Restart() error {
	n.Stop()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return err
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
`, n.Host, n.Port, filepath.Join(n.Dir, "host_ed25519"), filepath.Join(n.Dir, "authorized_keys"), filepath.Join(n.Dir, "sshd.pid"))
	if !n.opts.NoSFTP {
		cfg += "Subsystem sftp internal-sftp\n"
	}
	path := filepath.Join(n.Dir, "sshd_config")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(n.Dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(SSHD, "-D", "-e", "-f", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting sshd on %s:%d: %w", n.Host, n.Port, err)
	}
	n.cmd, n.logf = cmd, logf
	return nil
}

// Stop stops sshd; a stopped node can be restarted.
func (n *Node) Stop() {
	if n.cmd != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		n.cmd = nil
	}
	if n.logf != nil {
		n.logf.Close()
		n.logf = nil
	}
}

// Log returns what sshd wrote (errors only).
func (n *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "sshd.log"))
	return string(b)
}

// FreePort returns a TCP port free on host right now.
func FreePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return strconv.Atoi(p)
}
