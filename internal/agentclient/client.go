// Package agentclient is the provider's client for a node's hadrond agent:
// readiness, node information, and (through later APIs) models and jobs. The
// HTTP client is injectable so that cloud nodes can be reached through an SSH
// tunnel.
package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client talks to one agent.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// New returns a client with a default HTTP client.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// GPU mirrors the agent's GPU report.
type GPU struct {
	Index         int    `json:"index"`
	Name          string `json:"name"`
	MemoryMiB     int    `json:"memory_mib"`
	DriverVersion string `json:"driver_version"`
}

// Node mirrors GET /v1/node.
type Node struct {
	Hostname       string `json:"hostname"`
	OS             string `json:"os"`
	Arch           string `json:"arch"`
	VCPUs          int    `json:"vcpus"`
	MemoryBytes    uint64 `json:"memory_bytes"`
	GPUs           []GPU  `json:"gpus"`
	GPUError       string `json:"gpu_error"`
	RuntimeVersion string `json:"runtime_version"`
	ORTVersion     string `json:"ort_version"`
}

// Error is an error answer from the agent.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("agent answered %d: %s", e.Status, e.Message)
}

// Ready returns nil when GET /v2/health/ready answers 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.Do(ctx, "GET", "/v2/health/ready", nil, nil)
}

// Node returns the node's description.
func (c *Client) Node(ctx context.Context) (*Node, error) {
	var n Node
	if err := c.Do(ctx, "GET", "/v1/node", nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Do sends a JSON request (in may be nil) and decodes a JSON answer into out
// (may be nil). Non-2xx answers become *Error carrying the agent's message.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.DoWithHeaders(ctx, method, path, nil, in, out)
}

// DoWithHeaders is Do with extra request headers.
func (c *Client) DoWithHeaders(ctx context.Context, method, path string, headers map[string]string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request for %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	return c.send(req, method, path, out)
}

func (c *Client) send(req *http.Request, method, path string, out any) error {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("calling agent %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading agent answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &Error{Status: resp.StatusCode, Message: msg}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding agent answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}
