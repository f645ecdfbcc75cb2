package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// LocalTransport runs commands and copies files on this machine. The local
// cloud uses it so that its nodes go through the same Install steps as cloud
// nodes.
type LocalTransport struct {
	// Name names the node in errors; default "local".
	Name string
	counters
}

var _ Transport = (*LocalTransport)(nil)

// Node returns the transport's node name.
func (l *LocalTransport) Node() string {
	if l.Name == "" {
		return "local"
	}
	return l.Name
}

// Run runs cmd with sh -c.
func (l *LocalTransport) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Stdin = stdin
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	l.received.Add(int64(stdout.Len()))
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return stdout.Bytes(), &RunError{Cmd: firstLine(cmd), ExitCode: ee.ExitCode(), Stderr: tail(stderr.Bytes(), 4096)}
		}
		return stdout.Bytes(), fmt.Errorf("running %q on %s: %w", firstLine(cmd), l.Node(), err)
	}
	return stdout.Bytes(), nil
}

// Upload copies r to path, replacing it atomically.
func (l *LocalTransport) Upload(ctx context.Context, path string, mode fs.FileMode, r io.Reader, size int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".upload-*")
	if err != nil {
		return fmt.Errorf("uploading %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, &ctxReader{ctx: ctx, r: r})
	l.sent.Add(n)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("copied %d bytes, want %d", n, size)
	}
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("uploading %s: %w", path, err)
	}
	return nil
}

// Dial connects to addr from this machine.
func (l *LocalTransport) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Close does nothing: there is no connection to release.
func (l *LocalTransport) Close() error { return nil }

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
