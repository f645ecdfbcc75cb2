package fakeec2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Remote drives a fake running in another process (cmd/fakeec2) through its
// JSON admin API; its methods mirror the Fake's test hooks.
type Remote struct {
	// URL is the fake's base URL, as printed by cmd/fakeec2.
	URL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

func (r *Remote) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := r.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fake EC2 admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("fake EC2 admin %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fake EC2 admin %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("fake EC2 admin %s %s: decoding: %w", method, path, err)
		}
	}
	return nil
}

// Instances returns every instance, terminated ones included.
func (r *Remote) Instances(ctx context.Context) ([]Instance, error) {
	var out []Instance
	return out, r.do(ctx, http.MethodGet, "/admin/instances", nil, &out)
}

// LiveInstances returns the instances that are not shutting-down or terminated.
func (r *Remote) LiveInstances(ctx context.Context) ([]Instance, error) {
	all, err := r.Instances(ctx)
	var out []Instance
	for _, in := range all {
		if in.State != "shutting-down" && in.State != "terminated" {
			out = append(out, in)
		}
	}
	return out, err
}

// SecurityGroups returns every security group.
func (r *Remote) SecurityGroups(ctx context.Context) ([]SecurityGroup, error) {
	var out []SecurityGroup
	return out, r.do(ctx, http.MethodGet, "/admin/security-groups", nil, &out)
}

// KeyPairs returns every key pair.
func (r *Remote) KeyPairs(ctx context.Context) ([]KeyPair, error) {
	var out []KeyPair
	return out, r.do(ctx, http.MethodGet, "/admin/key-pairs", nil, &out)
}

// Calls returns the call log.
func (r *Remote) Calls(ctx context.Context) ([]Call, error) {
	var out []Call
	return out, r.do(ctx, http.MethodGet, "/admin/calls", nil, &out)
}

// WaitForCalls blocks until n calls of action were handled (or ctx ends).
func (r *Remote) WaitForCalls(ctx context.Context, action string, n int) error {
	timeout := 10 * time.Minute
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	q := url.Values{"action": {action}, "min": {strconv.Itoa(n)}, "timeout": {timeout.String()}}
	return r.do(ctx, http.MethodGet, "/admin/calls?"+q.Encode(), nil, nil)
}

// SetFaults replaces the injected faults.
func (r *Remote) SetFaults(ctx context.Context, f Faults) error {
	return r.do(ctx, http.MethodPut, "/admin/faults", f, nil)
}

// Release lets held RunInstances responses go and stops holding.
func (r *Remote) Release(ctx context.Context) error {
	return r.do(ctx, http.MethodPost, "/admin/release", nil, nil)
}

// Terminate ends an instance out of band (a spot reclaim).
func (r *Remote) Terminate(ctx context.Context, id string, immediate bool) error {
	return r.do(ctx, http.MethodPost, "/admin/instances/"+url.PathEscape(id)+"/terminate?immediate="+strconv.FormatBool(immediate), nil, nil)
}

// QueuePublicIPs sets the public IPs of the next instances.
func (r *Remote) QueuePublicIPs(ctx context.Context, ips ...string) error {
	return r.do(ctx, http.MethodPost, "/admin/public-ips", map[string][]string{"ips": ips}, nil)
}

// SetDefaultPublicIP sets the public IP used once the queue is empty.
func (r *Remote) SetDefaultPublicIP(ctx context.Context, ip string) error {
	return r.do(ctx, http.MethodPost, "/admin/public-ips", map[string]any{"ips": []string{}, "default": ip}, nil)
}

// SetPolls sets how many polls the pending and shutting-down states last.
func (r *Remote) SetPolls(ctx context.Context, pending, shuttingDown int) error {
	return r.do(ctx, http.MethodPut, "/admin/polls", map[string]int{"pending": pending, "shutting_down": shuttingDown}, nil)
}

// Process is cmd/fakeec2 running as a child process.
type Process struct {
	*Remote
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// StartProcess runs the fakeec2 binary at path with args (flags of
// cmd/fakeec2, e.g. -access-key, -secret-key, -pending-polls) and waits for
// the URL it prints. The process exits when Close is called or when the
// calling process dies (its stdin closes).
func StartProcess(ctx context.Context, path string, args ...string) (*Process, error) {
	cmd := exec.Command(path, append([]string{"-exit-on-stdin-eof"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	p := &Process{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	select {
	case line := <-lines:
		u, ok := strings.CutPrefix(strings.TrimSpace(line), "FAKEEC2_URL=")
		if !ok {
			p.Close()
			return nil, fmt.Errorf("starting %s: first line %q is not FAKEEC2_URL=...", path, line)
		}
		p.Remote = &Remote{URL: u}
		return p, nil
	case <-ctx.Done():
		p.Close()
		return nil, fmt.Errorf("starting %s: %w", path, ctx.Err())
	}
}

// Close stops the process and waits for it.
func (p *Process) Close() error {
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}
