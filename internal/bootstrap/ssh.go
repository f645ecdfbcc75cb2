package bootstrap

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// SSHConfig says how to reach a node over SSH.
type SSHConfig struct {
	// Host is the node's address or name; Port defaults to 22.
	Host string
	Port int
	// User is the login user (for example "ubuntu", "ec2-user" or "root").
	User string
	// PrivateKey is a private key in PEM or OpenSSH format; Passphrase
	// decrypts it when it is encrypted.
	PrivateKey []byte
	Passphrase []byte
	// AgentSocket is the path of an ssh-agent socket (the value of
	// SSH_AUTH_SOCK, read by the caller). Used in addition to PrivateKey.
	AgentSocket string
	// HostKeyFingerprint pins the host key ("SHA256:..."). Empty means trust
	// on first use: the key seen is accepted and reported by
	// SSHTransport.HostKeyFingerprint so that the caller records it.
	HostKeyFingerprint string
	// Bastion, when set, is the jump host the connection goes through.
	Bastion *SSHConfig
	// Name names the node in errors; default Host.
	Name string
	// AttemptTimeout bounds one connection attempt (TCP connect plus
	// handshake); default 15s. The overall wait is bounded by ctx.
	AttemptTimeout time.Duration
	// AuthAttempts is how many authentication rejections are tolerated before
	// giving up (cloud-init may install the key after sshd starts); default 3.
	AuthAttempts int
	// KeepAlive is the interval of keepalive@openssh.com requests that keep
	// an idle connection (and NAT state) alive; default 30s, negative: none.
	KeepAlive time.Duration
}

func (c *SSHConfig) addr() string {
	port := c.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

func (c *SSHConfig) name() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Host
}

// SSHTransport is a Transport over one SSH connection (SFTP for uploads when
// the server offers it, otherwise cat over a session).
type SSHTransport struct {
	cfg         SSHConfig
	client      *ssh.Client
	bastion     *ssh.Client
	fingerprint string
	bastionFP   string
	attempts    int
	counters

	mu       sync.Mutex
	sftp     *sftp.Client
	sftpErr  error
	sftpDone bool
	stop     chan struct{}
	stopOnce sync.Once
}

var _ Transport = (*SSHTransport)(nil)

// DialSSH connects to the node, retrying with backoff while sshd is not up
// yet (connection refused, timeouts, resets) until ctx ends. A changed host
// key fails at once with *HostKeyMismatchError; repeated authentication
// rejections fail with *AuthError. Errors are *PhaseError with PhaseSSH.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSHTransport, error) {
	t, err := dialSSH(ctx, cfg)
	if err != nil {
		return nil, &PhaseError{Node: cfg.name(), Phase: PhaseSSH, Err: err}
	}
	return t, nil
}

func dialSSH(ctx context.Context, cfg SSHConfig) (*SSHTransport, error) {
	if cfg.Host == "" || cfg.User == "" {
		return nil, errors.New("ssh host and user are required")
	}
	auth, methods, closeAgent, err := authMethods(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAgent()

	t := &SSHTransport{cfg: cfg}
	var bastionT *SSHTransport
	if cfg.Bastion != nil {
		bastionT, err = dialSSH(ctx, *cfg.Bastion)
		if err != nil {
			return nil, fmt.Errorf("bastion %s: %w", cfg.Bastion.addr(), err)
		}
		t.bastion = bastionT.client
		t.bastionFP = bastionT.fingerprint
	}
	fail := func(err error) (*SSHTransport, error) {
		if bastionT != nil {
			bastionT.client.Close()
		}
		return nil, err
	}

	attemptTimeout := cfg.AttemptTimeout
	if attemptTimeout <= 0 {
		attemptTimeout = 15 * time.Second
	}
	authAttempts := cfg.AuthAttempts
	if authAttempts <= 0 {
		authAttempts = 3
	}
	addr := cfg.addr()
	start := time.Now()
	delay := 200 * time.Millisecond
	var lastErr error
	authFailures := 0
	for {
		t.attempts++
		client, fp, err := t.attempt(ctx, addr, auth, attemptTimeout)
		if err == nil {
			t.client = client
			t.fingerprint = fp
			t.stop = make(chan struct{})
			if cfg.KeepAlive >= 0 {
				go t.keepAlive(cmp.Or(cfg.KeepAlive, 30*time.Second))
			}
			return t, nil
		}
		var mismatch *HostKeyMismatchError
		if errors.As(err, &mismatch) {
			return fail(mismatch)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			authFailures++
			if authFailures >= authAttempts {
				return fail(&AuthError{Addr: addr, User: cfg.User, Methods: methods, Err: err})
			}
		}
		lastErr = err
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fail(fmt.Errorf("timeout: sshd at %s not reachable after %s (%d attempts): %w; last error: %v",
				addr, time.Since(start).Round(time.Millisecond), t.attempts, ctx.Err(), lastErr))
		case <-timer.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// attempt makes one TCP connection and SSH handshake.
func (t *SSHTransport) attempt(ctx context.Context, addr string, auth []ssh.AuthMethod, timeout time.Duration) (*ssh.Client, string, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if t.bastion != nil {
		conn, err = t.bastion.DialContext(actx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(actx, "tcp", addr)
	}
	if err != nil {
		return nil, "", err
	}
	// The handshake has no context: bound it by a deadline and by ctx.
	if dl, ok := actx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(actx, func() { conn.Close() })
	defer stop()

	var seen string
	var hostErr error
	cfg := &ssh.ClientConfig{
		User: t.cfg.User,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			seen = ssh.FingerprintSHA256(key)
			if want := t.cfg.HostKeyFingerprint; want != "" && want != seen {
				hostErr = &HostKeyMismatchError{Addr: addr, Expected: want, Got: seen}
				return hostErr
			}
			return nil
		},
		Timeout: timeout,
	}
	cc := &countingConn{Conn: conn, c: &t.counters}
	sc, chans, reqs, err := ssh.NewClientConn(cc, addr, cfg)
	if err != nil {
		conn.Close()
		if hostErr != nil {
			return nil, "", hostErr
		}
		return nil, "", err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), seen, nil
}

// keepAlive sends keepalive requests until Close; a connection that stops
// answering is closed, so later calls fail fast instead of hanging.
func (t *SSHTransport) keepAlive(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		errc := make(chan error, 1)
		go func() {
			_, _, err := t.client.SendRequest("keepalive@openssh.com", true, nil)
			errc <- err
		}()
		select {
		case <-t.stop:
			return
		case err := <-errc:
			if err != nil {
				t.client.Close()
				return
			}
		case <-time.After(max(every, 15*time.Second)):
			t.client.Close()
			return
		}
	}
}

// authMethods builds the client's authentication from the key and the agent.
func authMethods(cfg SSHConfig) ([]ssh.AuthMethod, []string, func(), error) {
	var signers []ssh.Signer
	var methods []string
	closer := func() {}
	if len(cfg.PrivateKey) > 0 {
		var s ssh.Signer
		var err error
		if len(cfg.Passphrase) > 0 {
			s, err = ssh.ParsePrivateKeyWithPassphrase(cfg.PrivateKey, cfg.Passphrase)
		} else {
			s, err = ssh.ParsePrivateKey(cfg.PrivateKey)
		}
		if err != nil {
			return nil, nil, closer, fmt.Errorf("parsing ssh private key: %w", err)
		}
		signers = append(signers, s)
		methods = append(methods, "private key "+ssh.FingerprintSHA256(s.PublicKey()))
	}
	var auth []ssh.AuthMethod
	if len(signers) > 0 {
		auth = append(auth, ssh.PublicKeys(signers...))
	}
	if cfg.AgentSocket != "" {
		conn, err := net.Dial("unix", cfg.AgentSocket)
		if err != nil {
			return nil, nil, closer, fmt.Errorf("connecting to ssh-agent at %s: %w", cfg.AgentSocket, err)
		}
		closer = func() { conn.Close() }
		auth = append(auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		methods = append(methods, "ssh-agent "+cfg.AgentSocket)
	}
	if len(auth) == 0 {
		return nil, nil, closer, errors.New("no ssh credentials: set a private key or an ssh-agent socket")
	}
	return auth, methods, closer, nil
}

// HostKeyFingerprint returns the SHA256 fingerprint of the node's host key
// ("SHA256:..."), to be recorded and pinned on later connections.
func (t *SSHTransport) HostKeyFingerprint() string { return t.fingerprint }

// BastionHostKeyFingerprint returns the bastion's host key fingerprint, or "".
func (t *SSHTransport) BastionHostKeyFingerprint() string { return t.bastionFP }

// Attempts returns how many connection attempts DialSSH made.
func (t *SSHTransport) Attempts() int { return t.attempts }

// Node returns the node's name.
func (t *SSHTransport) Node() string { return t.cfg.name() }

// Run runs cmd in a new session.
func (t *SSHTransport) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	sess, err := t.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("opening ssh session to %s: %w", t.Node(), err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if stdin != nil {
		sess.Stdin = stdin
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		return stdout.Bytes(), fmt.Errorf("running %q on %s: %w", firstLine(cmd), t.Node(), ctx.Err())
	}
	if err != nil {
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return stdout.Bytes(), &RunError{Cmd: firstLine(cmd), ExitCode: ee.ExitStatus(), Stderr: tail(stderr.Bytes(), 4096)}
		}
		return stdout.Bytes(), fmt.Errorf("running %q on %s: %w", firstLine(cmd), t.Node(), err)
	}
	return stdout.Bytes(), nil
}

// sftpClient opens the SFTP subsystem once; nil when the server lacks it.
func (t *SSHTransport) sftpClient() *sftp.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.sftpDone {
		t.sftpDone = true
		t.sftp, t.sftpErr = sftp.NewClient(t.client, sftp.UseConcurrentWrites(true))
	}
	return t.sftp
}

// Upload writes r to path with SFTP, or with cat over a session when the
// server has no SFTP subsystem.
func (t *SSHTransport) Upload(ctx context.Context, path string, mode fs.FileMode, r io.Reader, size int64) error {
	c := t.sftpClient()
	if c == nil {
		cmd := fmt.Sprintf("umask 077 && cat > %s && chmod %04o %s", shellQuote(path), mode.Perm(), shellQuote(path))
		if _, err := t.Run(ctx, cmd, &ctxReader{ctx: ctx, r: r}); err != nil {
			return fmt.Errorf("uploading %s to %s: %w", path, t.Node(), err)
		}
		return nil
	}
	f, err := c.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("uploading %s to %s: %w", path, t.Node(), err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	// Pipelined writes: with one request in flight a 20 MiB upload would pay
	// 600 round trips, which is most of the time on a distant node.
	n, err := f.ReadFromWithConcurrency(&ctxReader{ctx: ctx, r: r}, 64)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("wrote %d bytes, want %d", n, size)
	}
	if err == nil {
		err = f.Chmod(mode.Perm())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("uploading %s to %s: %w", path, t.Node(), err)
	}
	return nil
}

// Dial opens a connection from the node to addr through the SSH connection
// (a direct-tcpip channel), so the agent's port need not be public.
func (t *SSHTransport) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := t.client.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %s on %s through ssh: %w", addr, t.Node(), err)
	}
	return conn, nil
}

// Close closes SFTP, the connection and the bastion connection.
func (t *SSHTransport) Close() error {
	t.stopOnce.Do(func() { close(t.stop) })
	t.mu.Lock()
	if t.sftp != nil {
		t.sftp.Close()
	}
	t.mu.Unlock()
	err := t.client.Close()
	if t.bastion != nil {
		t.bastion.Close()
	}
	return err
}
