package bootstrap

import (
	"context"
	"io"
	"io/fs"
	"net"
	"strings"
	"sync/atomic"
)

// Transport is how Install reaches a node: run a shell command, upload a
// file, and dial a port on the node (the agent's, through a tunnel for SSH).
// Implementations are safe for concurrent use.
type Transport interface {
	// Node names the node in errors and logs (host or instance name).
	Node() string
	// Run runs cmd with sh on the node, feeding stdin (may be nil), and returns
	// its standard output. A non-zero exit is a *RunError.
	Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
	// Upload writes size bytes from r to path on the node with mode.
	Upload(ctx context.Context, path string, mode fs.FileMode, r io.Reader, size int64) error
	// Dial opens a connection to addr as seen from the node ("127.0.0.1:port").
	Dial(ctx context.Context, network, addr string) (net.Conn, error)
	// Stats reports the bytes sent to and received from the node so far.
	Stats() Stats
	// Close releases the connection.
	Close() error
}

// Stats counts the bytes a transport moved.
type Stats struct {
	BytesSent     int64
	BytesReceived int64
}

// counters is embedded by transports.
type counters struct {
	sent, received atomic.Int64
}

func (c *counters) Stats() Stats {
	return Stats{BytesSent: c.sent.Load(), BytesReceived: c.received.Load()}
}

// countingConn counts the bytes through a net.Conn.
type countingConn struct {
	net.Conn
	c *counters
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.c.received.Add(int64(n))
	return n, err
}

func (cc *countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.c.sent.Add(int64(n))
	return n, err
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
