package bootstrap

import (
	"errors"
	"fmt"
	"strings"
)

// Phase is one step of bringing a node up, in order.
type Phase string

// The phases of Install, in the order they run.
const (
	PhaseSSH     Phase = "ssh reachable"
	PhaseOS      Phase = "os/arch detected"
	PhaseGPU     Phase = "gpu driver visible"
	PhaseBundle  Phase = "bundle installed and verified"
	PhaseRunning Phase = "agent running"
	PhaseReady   Phase = "agent ready"
)

// PhaseError is the error of a failed bootstrap: which node, which phase, the
// cause, and the last lines of the agent's log when there is one.
type PhaseError struct {
	Node  string
	Phase Phase
	Err   error
	// Log holds the last lines of the agent's log (oldest first), if any.
	Log []string
}

func (e *PhaseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s: phase %q failed: %v", e.Node, e.Phase, e.Err)
	if len(e.Log) > 0 {
		fmt.Fprintf(&b, "\nlast %d lines of the agent log:", len(e.Log))
		for _, l := range e.Log {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return b.String()
}

func (e *PhaseError) Unwrap() error { return e.Err }

// PhaseOf returns the phase of the first *PhaseError in err's chain, or "".
func PhaseOf(err error) Phase {
	var pe *PhaseError
	if errors.As(err, &pe) {
		return pe.Phase
	}
	return ""
}

// HostKeyMismatchError is returned when a node presents a host key other than
// the one recorded (or pinned) for it. It is never retried.
type HostKeyMismatchError struct {
	Addr     string
	Expected string
	Got      string
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("host key of %s changed: expected %s, got %s (the machine was replaced or someone is intercepting the connection; if the change is expected, clear the recorded host_key_fingerprint)", e.Addr, e.Expected, e.Got)
}

// AuthError is returned when sshd is reachable but rejects every credential.
type AuthError struct {
	Addr    string
	User    string
	Methods []string
	Err     error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("ssh authentication as %q at %s failed (tried %s): %v", e.User, e.Addr, strings.Join(e.Methods, ", "), e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// RunError is a remote command that exited non-zero.
type RunError struct {
	// Cmd is the first line of the command, for context.
	Cmd      string
	ExitCode int
	// Stderr holds the end of the command's standard error.
	Stderr string
}

func (e *RunError) Error() string {
	s := fmt.Sprintf("command %q exited with status %d", e.Cmd, e.ExitCode)
	if msg := strings.TrimSpace(e.Stderr); msg != "" {
		s += ": " + msg
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// tail keeps the last max bytes of b, cut at a line start when possible.
func tail(b []byte, max int) string {
	if len(b) <= max {
		return string(b)
	}
	b = b[len(b)-max:]
	if i := strings.IndexByte(string(b), '\n'); i >= 0 && i < len(b)-1 {
		b = b[i+1:]
	}
	return string(b)
}
