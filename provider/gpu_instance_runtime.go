package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/agent"
)

// sshBlockModel says how the provider reaches a cloud node.
type sshBlockModel struct {
	User               types.String `tfsdk:"user"`
	PrivateKey         types.String `tfsdk:"private_key"`
	Port               types.Int64  `tfsdk:"port"`
	Host               types.String `tfsdk:"host"`
	UseAgent           types.Bool   `tfsdk:"use_agent"`
	HostKeyFingerprint types.String `tfsdk:"host_key_fingerprint"`
	BastionHost        types.String `tfsdk:"bastion_host"`
	BastionPort        types.Int64  `tfsdk:"bastion_port"`
	BastionUser        types.String `tfsdk:"bastion_user"`
	BastionPrivateKey  types.String `tfsdk:"bastion_private_key"`
}

// runtimeBlockModel says how hadrond is installed on a cloud node.
type runtimeBlockModel struct {
	Port            types.Int64  `tfsdk:"port"`
	Prefix          types.String `tfsdk:"prefix"`
	DataDir         types.String `tfsdk:"data_dir"`
	Service         types.String `tfsdk:"service"`
	CheckGPUDriver  types.Bool   `tfsdk:"check_gpu_driver"`
	PublicInference types.Bool   `tfsdk:"public_inference"`
	IdleTimeout     types.String `tfsdk:"idle_timeout"`
	IdleAction      types.String `tfsdk:"idle_action"`
}

// idleActions are the values of runtime.idle_action.
var idleActions = []string{agent.IdleStop, agent.IdlePoweroff}

// sameRuntimeBlock reports whether two runtime blocks install the same way.
func sameRuntimeBlock(a, b *runtimeBlockModel) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

var serviceModes = []string{"auto", "systemd", "supervised"}

// defaultRuntimePort is the agent's port on cloud nodes.
const defaultRuntimePort = 7070

// nodeConn is a connected node: its agent client and the cloud's view.
type nodeConn struct {
	client    *agentclient.Client
	instance  *cloud.Instance
	transport *bootstrap.SSHTransport
}

// nodeRegistry holds the cloud nodes this provider process has connected to
// (by create or refresh), so that jobs and endpoints on them reach their
// agents through the same SSH connection.
type nodeRegistry struct {
	mu    sync.Mutex
	nodes map[string]*nodeConn
}

func (r *nodeRegistry) put(id string, c *nodeConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.nodes[id]; ok && old.transport != nil && old.transport != c.transport {
		old.transport.Close()
	}
	r.nodes[id] = c
}

func (r *nodeRegistry) get(id string) (*nodeConn, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.nodes[id]
	return c, ok
}

func (r *nodeRegistry) drop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.nodes[id]; ok && c.transport != nil {
		c.transport.Close()
	}
	delete(r.nodes, id)
}

// bundle loads the runtime bundle the provider installs on cloud nodes.
func (d *providerData) bundle() (*bootstrap.Bundle, error) {
	d.bundleOnce.Do(func() {
		if d.bundleDir == "" {
			d.bundleErr = errors.New("no runtime bundle found: install the provider with `make install` (which puts bundle/ next to it), " +
				"or set bundle.dir in the provider block or HADRON_BUNDLE_DIR")
			return
		}
		b, err := bootstrap.LoadBundle(d.bundleDir)
		for arch, u := range d.ortURLs {
			if err != nil {
				break
			}
			b, err = b.WithURL(arch, "lib/libonnxruntime.so.1", u, d.ortSHA256s[arch])
		}
		d.bundleVal, d.bundleErr = b, err
	})
	return d.bundleVal, d.bundleErr
}

func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating agent token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// sshConfig builds the SSH settings for a node from the resource.
func sshConfig(m *gpuInstanceModel, inst *cloud.Instance, getenv func(string) string) bootstrap.SSHConfig {
	s := m.SSH
	if s == nil {
		s = &sshBlockModel{}
	}
	user := s.User.ValueString()
	if user == "" {
		user = "ubuntu"
		if m.Cloud.ValueString() == "aliyun" {
			user = "root"
		}
	}
	host := firstNonEmpty(s.Host.ValueString(), inst.PublicIP, inst.PrivateIP)
	cfg := bootstrap.SSHConfig{
		Host: host, Port: int(s.Port.ValueInt64()), User: user, PrivateKey: []byte(s.PrivateKey.ValueString()),
		HostKeyFingerprint: firstNonEmpty(s.HostKeyFingerprint.ValueString(), m.HostKeyFingerprint.ValueString()),
		Name:               inst.ID,
	}
	if s.UseAgent.ValueBool() {
		cfg.AgentSocket = getenv("SSH_AUTH_SOCK")
	}
	if bh := s.BastionHost.ValueString(); bh != "" {
		cfg.Bastion = &bootstrap.SSHConfig{Host: bh, Port: int(s.BastionPort.ValueInt64()),
			User: firstNonEmpty(s.BastionUser.ValueString(), user), PrivateKey: []byte(firstNonEmpty(s.BastionPrivateKey.ValueString(), s.PrivateKey.ValueString())),
			AgentSocket: cfg.AgentSocket}
	}
	return cfg
}

// installOptions builds the install settings for a node from the resource.
func (d *providerData) installOptions(m *gpuInstanceModel, b *bootstrap.Bundle, token string) bootstrap.Options {
	rt := m.Runtime
	if rt == nil {
		rt = &runtimeBlockModel{}
	}
	port := defaultRuntimePort
	if !rt.Port.IsNull() {
		port = int(rt.Port.ValueInt64())
	}
	expectGPUs := false
	if t, ok := d.catalog.Lookup(m.Cloud.ValueString(), m.InstanceType.ValueString()); ok && t.GPUCount > 0 {
		expectGPUs = true
	}
	if !rt.CheckGPUDriver.IsNull() {
		expectGPUs = expectGPUs && rt.CheckGPUDriver.ValueBool()
	}
	service := bootstrap.ServiceMode(rt.Service.ValueString())
	if service == "auto" {
		service = bootstrap.ServiceAuto
	}
	return bootstrap.Options{
		Bundle: b, Token: token, Prefix: rt.Prefix.ValueString(), DataDir: rt.DataDir.ValueString(), Service: service,
		Listen: fmt.Sprintf("0.0.0.0:%d", port), ExpectGPUs: expectGPUs, PublicInference: rt.PublicInference.ValueBool(),
		IdleTimeout: rt.IdleTimeout.ValueString(), IdleAction: rt.IdleAction.ValueString(),
	}
}

// bootstrapNode installs hadrond on a cloud node over SSH and waits until it
// answers ready. The host key seen is recorded even when a later phase fails.
func (r *gpuInstanceResource) bootstrapNode(ctx context.Context, m *gpuInstanceModel, inst *cloud.Instance) error {
	b, err := r.data.bundle()
	if err != nil {
		return err
	}
	token := m.Token.ValueString()
	if token == "" {
		if token, err = newToken(); err != nil {
			return err
		}
		m.Token = types.StringValue(token)
	}
	target := bootstrap.Target{SSH: sshConfig(m, inst, r.data.getenv), Options: r.data.installOptions(m, b, token)}
	target.Options.OnPhase = func(node string, phase bootstrap.Phase, took time.Duration) {
		tflog.Info(ctx, "bootstrap: "+string(phase), map[string]any{"node": node, "took": took.String()})
	}
	out := bootstrap.Bootstrap(ctx, target)
	if out.HostKeyFingerprint != "" {
		m.HostKeyFingerprint = types.StringValue(out.HostKeyFingerprint)
	}
	if out.Err != nil {
		return out.Err
	}
	res := out.Result
	tflog.Info(ctx, "runtime bootstrapped", map[string]any{"node": inst.ID, "change": string(res.Change), "version": res.Version})
	c := &agentclient.Client{BaseURL: res.Agent.BaseURL, Token: token, HTTP: res.Agent.HTTP}
	r.data.nodes.put(inst.ID, &nodeConn{client: c, instance: inst, transport: out.Transport})
	m.Endpoint = types.StringValue(fmt.Sprintf("http://%s", hostPort(firstNonEmpty(inst.PublicIP, inst.PrivateIP), res.Port)))
	n, err := c.Node(ctx)
	if err != nil {
		return fmt.Errorf("asking the agent of %s through SSH: %w", inst.ID, err)
	}
	applyNode(m, n)
	return nil
}

// connectNode reaches the agent of a bootstrapped cloud node for a refresh,
// enforcing the host key recorded in state.
func (r *gpuInstanceResource) connectNode(ctx context.Context, m *gpuInstanceModel, inst *cloud.Instance) error {
	cfg := sshConfig(m, inst, r.data.getenv)
	t, err := bootstrap.DialSSH(ctx, cfg)
	if err != nil {
		return err
	}
	port := endpointPort(m.Endpoint.ValueString())
	a := bootstrap.NewAgent(t, port, m.Token.ValueString(), nil)
	c := &agentclient.Client{BaseURL: a.BaseURL, Token: m.Token.ValueString(), HTTP: a.HTTP}
	n, err := c.Node(ctx)
	if err != nil {
		t.Close()
		return fmt.Errorf("asking the agent of %s through SSH: %w", inst.ID, err)
	}
	r.data.nodes.put(inst.ID, &nodeConn{client: c, instance: inst, transport: t})
	applyNode(m, n)
	return nil
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// endpointPort returns the port of an agent endpoint URL (default 7070).
func endpointPort(endpoint string) int {
	u, err := url.Parse(endpoint)
	if err != nil {
		return defaultRuntimePort
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		return defaultRuntimePort
	}
	return p
}

// uninstallRuntime removes hadrond from a cloud node before it is deleted,
// best effort and briefly: termination removes it anyway, but a node that
// outlives its instance resource (a machine reused, a test node) is left clean.
func (r *gpuInstanceResource) uninstallRuntime(ctx context.Context, m *gpuInstanceModel) {
	if m.Cloud.ValueString() == "local" || !m.InstallRuntime.ValueBool() {
		return
	}
	conn, ok := r.data.nodes.get(m.ID.ValueString())
	if !ok || conn.transport == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := bootstrap.Uninstall(ctx, conn.transport, r.data.installOptions(m, nil, m.Token.ValueString())); err != nil {
		tflog.Warn(ctx, "could not remove the runtime before deleting the instance", map[string]any{"id": m.ID.ValueString(), "error": err.Error()})
	}
}
