package bootstrap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/agent"
)

// NodeInfo is the agent's GET /v1/node answer.
type NodeInfo = agent.NodeInfo

// Agent talks to a node's agent through a Transport: for SSH, every
// connection is a direct-tcpip channel to 127.0.0.1:port on the node, so the
// agent's port need not be reachable from outside.
type Agent struct {
	// BaseURL is the agent's URL as seen from the node
	// ("http://127.0.0.1:7070"); HTTP dials it through the transport.
	BaseURL string
	Token   string
	// HTTP is a client whose connections go through the transport; use it
	// with BaseURL for any agent route.
	HTTP *http.Client
}

// NewAgent returns a client for the agent listening on port on the node
// behind t. With tlsFiles set it speaks HTTPS and accepts exactly that
// certificate.
func NewAgent(t Transport, port int, token string, tlsFiles *TLS) *Agent {
	return NewAgentAt(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), token, tlsFiles)
}

// NewAgentAt is NewAgent for an agent listening on hostPort as seen from the
// node (for an agent bound to one address rather than all of them).
func NewAgentAt(t Transport, hostPort, token string, tlsFiles *TLS) *Agent {
	scheme := "http"
	tr := &http.Transport{
		DialContext:         DialFunc(t),
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	if tlsFiles != nil {
		scheme = "https"
		tr.TLSClientConfig = pinnedTLS(tlsFiles.CertPEM)
	}
	return &Agent{
		BaseURL: scheme + "://" + hostPort,
		Token:   token,
		HTTP:    &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}
}

// DialFunc returns a DialContext function that opens connections from the
// node behind t, for an http.Transport or any other client.
func DialFunc(t Transport) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return t.Dial
}

// pinnedTLS accepts only the given certificate, whatever its names: the
// agent is reached as 127.0.0.1 through the tunnel.
func pinnedTLS(certPEM []byte) *tls.Config {
	var want []byte
	if blk, _ := pem.Decode(certPEM); blk != nil {
		want = blk.Bytes
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || want == nil || !bytes.Equal(raw[0], want) {
				return errors.New("agent presented a certificate other than the configured one")
			}
			return nil
		},
	}
}

// Ready returns nil when GET /v2/health/ready answers 200.
func (a *Agent) Ready(ctx context.Context) error {
	resp, err := a.get(ctx, "/v2/health/ready", false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v2/health/ready: %s", resp.Status)
	}
	return nil
}

// Node returns GET /v1/node, sent with the token.
func (a *Agent) Node(ctx context.Context) (*NodeInfo, error) {
	resp, err := a.get(ctx, "/v1/node", true)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET /v1/node: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/node: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	var info NodeInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("GET /v1/node: decoding: %w", err)
	}
	return &info, nil
}

func (a *Agent) get(ctx context.Context, path string, auth bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.BaseURL+path, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if auth && a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return resp, nil
}
