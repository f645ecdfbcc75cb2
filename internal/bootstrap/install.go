package bootstrap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/agent"
)

// ServiceMode is how the agent is kept running on the node.
type ServiceMode string

// Service modes. ServiceAuto picks systemd when PID 1 is systemd and the
// install is privileged, the supervised process otherwise.
const (
	ServiceAuto       ServiceMode = ""
	ServiceSystemd    ServiceMode = "systemd"
	ServiceSupervised ServiceMode = "supervised"
)

// FetchMode is how files given by URL reach the node.
type FetchMode string

// Fetch modes; see the package documentation for the trade-off.
const (
	FetchOnNode      FetchMode = ""
	FetchViaProvider FetchMode = "provider"
)

// Change is what Install did.
type Change string

// Changes Install reports.
const (
	ChangeInstalled    Change = "installed"
	ChangeUnchanged    Change = "unchanged"
	ChangeUpgraded     Change = "upgraded"
	ChangeReconfigured Change = "reconfigured"
	ChangeRestarted    Change = "restarted"
	ChangeRepaired     Change = "repaired"
)

// TLS is the agent's certificate and key, PEM encoded. The client through the
// tunnel accepts exactly this certificate.
type TLS struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Options says what to install and how. Only Bundle and Token are required.
type Options struct {
	Bundle *Bundle
	// Token is the agent's bearer token (written into the 0600 config).
	Token string
	// Prefix holds everything; default /opt/hadron when privileged (root or
	// passwordless sudo), $HOME/.hadron otherwise.
	Prefix string
	// DataDir is the agent's data directory; default /var/lib/hadron when
	// privileged, PREFIX/data otherwise.
	DataDir string
	// User runs the agent; default "hadron" (created with useradd --system
	// when missing) when privileged, the login user otherwise.
	User string
	// Service forces systemd or the supervised process; default automatic.
	Service ServiceMode
	// ServiceName is the systemd unit's name; default "hadrond".
	ServiceName string
	// Listen is the agent's host:port on the node; default "127.0.0.1:7070".
	// Port 0 lets the agent pick a free port (found through its addr file).
	// The tunnel always dials 127.0.0.1:<port> on the node.
	Listen string
	// TLS, when set, makes the agent serve HTTPS with this certificate.
	TLS *TLS
	// ExpectGPUs makes nvidia-smi on the node a required phase.
	ExpectGPUs bool
	// PublicInference lets inference routes be called without the token.
	PublicInference bool
	// IdleTimeout stops the agent after this long idle ("30m"); empty: never.
	IdleTimeout string
	// IdleAction is what the idle timeout does: "stop" the agent (default)
	// or "poweroff" the node (needs root or passwordless sudo).
	IdleAction string
	// PoweroffCommand powers the node off for IdleAction "poweroff", run
	// as root by the service manager; default "systemctl poweroff".
	PoweroffCommand string
	// LogLevel is debug, info, warn or error; default info.
	LogLevel string
	// ExecutionProvider is ONNX Runtime's: auto, cpu or cuda; default auto.
	ExecutionProvider string
	// Fetch says who downloads files given by URL; default the node.
	Fetch FetchMode
	// HTTPClient downloads URL files when Fetch is FetchViaProvider.
	HTTPClient *http.Client
	// LogLines is how many agent log lines an error carries; default 30.
	LogLines int
	// PollInterval is how often readiness is polled; default 200ms.
	PollInterval time.Duration
	// KeepData makes Uninstall leave the data directory in place.
	KeepData bool
	// OnPhase, when set, is called as each phase completes.
	OnPhase func(node string, phase Phase, took time.Duration)
}

// Result is what Install found and did.
type Result struct {
	Node       string
	Change     Change
	OldVersion string
	Version    string
	OS         string
	Arch       string
	// Privilege is "root", "sudo" or "user".
	Privilege string
	User      string
	Prefix    string
	DataDir   string
	Service   ServiceMode
	// GPUs are nvidia-smi's lines (name, driver) when GPUs were expected.
	GPUs []string
	// Port is the agent's port on the node.
	Port int
	// Agent talks to the agent through the transport.
	Agent *Agent
	// Info is the agent's GET /v1/node answer.
	Info *NodeInfo
	// BytesUploaded counts bundle bytes sent to the node (zero when unchanged).
	BytesUploaded int64
	// Phases lists how long each phase took, in order.
	Phases []PhaseTime
}

// PhaseTime is one completed phase.
type PhaseTime struct {
	Phase Phase
	Took  time.Duration
}

// String says what happened: "unchanged (0.1.0)", "upgraded 0.1.0 -> 0.2.0".
func (r *Result) String() string {
	if r.Change == ChangeUpgraded {
		return fmt.Sprintf("upgraded %s -> %s", r.OldVersion, r.Version)
	}
	return fmt.Sprintf("%s (%s)", r.Change, r.Version)
}

// facts is what the first probe learns about the node.
type facts struct {
	os, machine, arch string
	uid               int
	login, home, pid1 string
	glibc             string // "2.36"; "" when not glibc (musl) or unknown
	sudo              bool
	has               map[string]bool
	gpus, gpuErr      []string
}

// installed is what the state probe learns about an existing install.
type installed struct {
	state      map[string]string
	current    string
	running    bool
	targetSums string // sha256 of PREFIX/<version>/SHA256SUMS
	targetOK   bool   // PREFIX/<version> verifies
	have       map[string]string
	restarts   int
	addr       string
	lastExit   string
}

// layout is the resolved plan for one node.
type layout struct {
	privilege   string // root, sudo, user
	prefix      string
	dataDir     string
	user        string
	service     ServiceMode
	serviceName string
	unitPath    string
	listen      string
	poweroff    string // command run as root after ExitIdlePoweroff; "" when the idle action is not poweroff
	files       []File
	sums        string
	config      []byte
	serviceFile []byte
	digest      string
}

func (l *layout) versionDir(v string) string { return path.Join(l.prefix, v) }
func (l *layout) logFile() string            { return path.Join(l.prefix, "log", "hadrond.log") }
func (l *layout) addrFile() string           { return path.Join(l.prefix, "run", "agent.addr") }
func (l *layout) configFile() string         { return path.Join(l.prefix, "etc", "hadrond.hcl") }
func (l *layout) supervisor() string         { return path.Join(l.prefix, "bin", "hadron-supervise") }

type installer struct {
	t    Transport
	o    Options
	node string
	f    facts
	l    layout
	res  *Result
	mark time.Time
}

// Install puts the bundle's runtime on the node behind t, configures and
// starts the agent, and waits until it answers ready through t. It is
// idempotent: with the same bundle and options it changes nothing and reports
// ChangeUnchanged; with a new bundle version it upgrades in place. Failures
// are *PhaseError. ctx bounds the whole install, readiness included.
func Install(ctx context.Context, t Transport, o Options) (*Result, error) {
	if o.Bundle == nil || o.Bundle.Version == "" {
		return nil, &PhaseError{Node: t.Node(), Phase: PhaseBundle, Err: errors.New("no runtime bundle given")}
	}
	if err := validVersion(o.Bundle.Version); err != nil {
		return nil, &PhaseError{Node: t.Node(), Phase: PhaseBundle, Err: err}
	}
	in := &installer{t: t, o: o, node: t.Node(), mark: time.Now()}
	in.res = &Result{Node: in.node, Version: o.Bundle.Version}
	if err := in.detect(ctx); err != nil {
		return nil, err
	}
	if err := in.plan(); err != nil {
		return nil, in.fail(PhaseOS, err)
	}
	cur, err := in.inspect(ctx)
	if err != nil {
		return nil, in.fail(PhaseBundle, err)
	}
	change, old := in.decide(cur)
	in.res.Change, in.res.OldVersion = change, old
	sent0 := t.Stats().BytesSent
	if !cur.targetOK {
		if err := in.installFiles(ctx, cur); err != nil {
			return nil, in.fail(PhaseBundle, err)
		}
	}
	in.res.BytesUploaded = t.Stats().BytesSent - sent0
	in.done(PhaseBundle)

	baseline := cur.restarts
	if change != ChangeUnchanged {
		if err := in.configure(ctx, cur); err != nil {
			return nil, in.fail(PhaseRunning, err)
		}
		baseline = 0
	}
	if err := in.waitReady(ctx, baseline, o.Bundle.Version); err != nil {
		var pe *PhaseError
		if change == ChangeUpgraded && errors.As(err, &pe) {
			// Keep the node serving: back to the version that worked.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			if rerr := in.rollback(rctx, old); rerr != nil {
				pe.Err = fmt.Errorf("%w; rolling back to %s failed too: %v", pe.Err, old, rerr)
			} else {
				pe.Err = fmt.Errorf("%w; rolled back to %s, which answers ready", pe.Err, old)
			}
		}
		return nil, err
	}
	if change == ChangeUpgraded {
		// The previous version stays for a manual rollback; older ones go.
		in.prune(ctx, old)
	}
	return in.res, nil
}

func (in *installer) done(p Phase) {
	took := time.Since(in.mark)
	in.mark = time.Now()
	in.res.Phases = append(in.res.Phases, PhaseTime{Phase: p, Took: took})
	if in.o.OnPhase != nil {
		in.o.OnPhase(in.node, p, took)
	}
}

func (in *installer) fail(p Phase, err error) *PhaseError {
	return &PhaseError{Node: in.node, Phase: p, Err: err}
}

// failWithLog adds the agent's last log lines to the error.
func (in *installer) failWithLog(ctx context.Context, p Phase, err error) *PhaseError {
	pe := in.fail(p, err)
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	pe.Log = in.logTail(lctx)
	return pe
}

func (in *installer) logTail(ctx context.Context) []string {
	n := in.o.LogLines
	if n <= 0 {
		n = 30
	}
	out, err := in.sh(ctx, fmt.Sprintf("tail -n %d %s 2>/dev/null || true\n", n, shellQuote(in.l.logFile())))
	if err != nil || len(out) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

// sh runs a script on the node with the install's privilege.
func (in *installer) sh(ctx context.Context, script string) ([]byte, error) {
	cmd := "sh -s"
	if in.l.privilege == "sudo" {
		cmd = "sudo -n sh -s"
	}
	return in.t.Run(ctx, cmd, strings.NewReader(script))
}

const probeScript = `set -u
echo "os=$(uname -s)"
echo "machine=$(uname -m)"
echo "uid=$(id -u)"
echo "login=$(id -un)"
echo "home=${HOME:-}"
echo "pid1=$(cat /proc/1/comm 2>/dev/null || true)"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')"
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then echo sudo=1; fi
for t in curl wget gzip sha256sum systemctl useradd setpriv runuser setsid nohup nvidia-smi; do
  if command -v "$t" >/dev/null 2>&1; then echo "has=$t"; fi
done
if [ "$gpu" = 1 ]; then
  if out=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1); then
    printf '%s\n' "$out" | sed 's/^/gpu=/'
  else
    printf '%s\n' "$out" | tail -n 5 | sed 's/^/gpuerr=/'
  fi
fi
`

// detect runs the first probe: OS, architecture, identity, tools, GPUs.
func (in *installer) detect(ctx context.Context) error {
	gpu := "0"
	if in.o.ExpectGPUs {
		gpu = "1"
	}
	out, err := in.t.Run(ctx, "sh -s", strings.NewReader("gpu="+gpu+"\n"+probeScript))
	if err != nil {
		return in.fail(PhaseOS, fmt.Errorf("probing the node: %w", err))
	}
	f := facts{has: map[string]bool{}}
	for _, kv := range parseKV(out) {
		switch kv[0] {
		case "os":
			f.os = kv[1]
		case "machine":
			f.machine = kv[1]
		case "uid":
			f.uid, _ = strconv.Atoi(kv[1])
		case "login":
			f.login = kv[1]
		case "home":
			f.home = kv[1]
		case "pid1":
			f.pid1 = kv[1]
		case "glibc":
			f.glibc = kv[1]
		case "sudo":
			f.sudo = kv[1] == "1"
		case "has":
			f.has[kv[1]] = true
		case "gpu":
			f.gpus = append(f.gpus, kv[1])
		case "gpuerr":
			f.gpuErr = append(f.gpuErr, kv[1])
		}
	}
	if f.os != "Linux" {
		return in.fail(PhaseOS, fmt.Errorf("unsupported operating system %q (uname -s), want Linux", f.os))
	}
	f.arch = goArch(f.machine)
	if f.arch == "" {
		return in.fail(PhaseOS, fmt.Errorf("unsupported architecture %q (uname -m), want x86_64 or aarch64", f.machine))
	}
	in.f = f
	in.res.OS, in.res.Arch = "linux", f.arch
	in.done(PhaseOS)
	if in.o.ExpectGPUs {
		switch {
		case !f.has["nvidia-smi"]:
			return in.fail(PhaseGPU, errors.New("nvidia-smi not found: the NVIDIA driver is not installed (use a GPU image such as the Deep Learning AMI, or install the driver in user_data)"))
		case len(f.gpus) == 0:
			return in.fail(PhaseGPU, fmt.Errorf("nvidia-smi sees no GPU: %s", strings.Join(f.gpuErr, "; ")))
		}
		in.res.GPUs = f.gpus
		in.done(PhaseGPU)
	}
	return nil
}

func goArch(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64", "armv8l":
		return "arm64"
	}
	return ""
}

// plan resolves defaults against the node's facts and renders the files.
func (in *installer) plan() error {
	o, f := in.o, in.f
	l := layout{privilege: "user", serviceName: o.ServiceName, listen: o.Listen}
	switch {
	case f.uid == 0:
		l.privilege = "root"
	case f.sudo:
		l.privilege = "sudo"
	}
	priv := l.privilege != "user"
	l.prefix = o.Prefix
	if l.prefix == "" {
		if priv {
			l.prefix = "/opt/hadron"
		} else {
			if f.home == "" {
				return errors.New("no $HOME for the unprivileged install prefix: set a prefix")
			}
			l.prefix = path.Join(f.home, ".hadron")
		}
	}
	if !path.IsAbs(l.prefix) {
		return fmt.Errorf("install prefix %q is not an absolute path", l.prefix)
	}
	l.dataDir = o.DataDir
	if l.dataDir == "" {
		if priv {
			l.dataDir = "/var/lib/hadron"
		} else {
			l.dataDir = path.Join(l.prefix, "data")
		}
	}
	l.user = o.User
	if l.user == "" {
		if priv {
			l.user = "hadron"
		} else {
			l.user = f.login
		}
	}
	if !priv && l.user != f.login {
		return fmt.Errorf("cannot run the agent as %q: login user %q is not root and has no passwordless sudo", l.user, f.login)
	}
	switch o.IdleAction {
	case "", agent.IdleStop:
	case agent.IdlePoweroff:
		if !priv {
			return fmt.Errorf("idle_action %q needs root or passwordless sudo on the node to power it off; login user %q has neither", o.IdleAction, f.login)
		}
		l.poweroff = o.PoweroffCommand
		if l.poweroff == "" {
			l.poweroff = "systemctl poweroff"
		}
	default:
		return fmt.Errorf("idle_action %q is not one of %s, %s", o.IdleAction, agent.IdleStop, agent.IdlePoweroff)
	}
	if l.user != f.login && !f.has["setpriv"] && !f.has["runuser"] {
		return fmt.Errorf("cannot run the agent as %q: neither setpriv nor runuser is installed", l.user)
	}
	systemd := f.pid1 == "systemd" && f.has["systemctl"] && priv
	switch o.Service {
	case ServiceAuto:
		l.service = ServiceSupervised
		if systemd {
			l.service = ServiceSystemd
		}
	case ServiceSystemd:
		if !systemd {
			return fmt.Errorf("systemd requested but not usable (PID 1 is %q, privileged: %t)", f.pid1, priv)
		}
		l.service = ServiceSystemd
	case ServiceSupervised:
		l.service = ServiceSupervised
	default:
		return fmt.Errorf("unknown service mode %q", o.Service)
	}
	if l.serviceName == "" {
		l.serviceName = "hadrond"
	}
	if l.service == ServiceSystemd {
		l.unitPath = "/etc/systemd/system/" + l.serviceName + ".service"
	}
	if l.listen == "" {
		l.listen = "127.0.0.1:7070"
	}
	if _, _, err := net.SplitHostPort(l.listen); err != nil {
		return fmt.Errorf("listen address %q: %w", l.listen, err)
	}
	files, err := o.Bundle.ForArch(f.arch)
	if err != nil {
		return err
	}
	for _, fl := range files {
		if fl.GLIBC == "" {
			continue
		}
		if f.glibc == "" {
			return fmt.Errorf("%s needs glibc %s but the node has no glibc (musl-based images such as Alpine are not supported)", fl.Name, fl.GLIBC)
		}
		if versionLess(f.glibc, fl.GLIBC) {
			return fmt.Errorf("%s needs glibc %s but the node has glibc %s: use a newer image (Ubuntu 22.04+, Debian 12, Amazon Linux 2023)", fl.Name, fl.GLIBC, f.glibc)
		}
	}
	l.files = files
	l.sums = sums(files)
	if !f.has["sha256sum"] {
		return errors.New("sha256sum not found on the node (coreutils): cannot verify the bundle")
	}
	hasORT := false
	for _, fl := range files {
		hasORT = hasORT || fl.Name == ORTFile
	}
	l.config = renderConfig(o, &l, hasORT)
	if l.service == ServiceSystemd {
		l.serviceFile = renderUnit(&l)
	} else {
		l.serviceFile = renderSupervisor(&l, runAs(l.user, f))
	}
	h := sha256.New()
	for _, part := range [][]byte{l.config, l.serviceFile, []byte(l.user), []byte(l.dataDir), []byte(l.service)} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	if o.TLS != nil {
		h.Write(o.TLS.CertPEM)
		h.Write(o.TLS.KeyPEM)
	}
	l.digest = hex.EncodeToString(h.Sum(nil))
	in.l = l
	in.res.Privilege, in.res.Prefix, in.res.DataDir, in.res.User, in.res.Service = l.privilege, l.prefix, l.dataDir, l.user, l.service
	return nil
}

// runAs is the command prefix that drops from the supervisor's user (the
// login user or root) to the service user, or "" when they are the same.
func runAs(user string, f facts) string {
	if user == f.login {
		return ""
	}
	if f.has["setpriv"] {
		u := shellQuote(user)
		return `setpriv --reuid="$(id -u ` + u + `)" --regid="$(id -g ` + u + `)" --init-groups --`
	}
	return "runuser -u " + shellQuote(user) + " --"
}

// renderConfig writes the agent's HCL config.
func renderConfig(o Options, l *layout, hasORT bool) []byte {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	b.AppendUnstructuredTokens(hclwrite.Tokens{{Type: 0, Bytes: []byte("# Written by Hadron's bootstrap; a re-apply overwrites changes.\n")}})
	b.SetAttributeValue("listen", cty.StringVal(l.listen))
	b.SetAttributeValue("data_dir", cty.StringVal(l.dataDir))
	b.SetAttributeValue("token", cty.StringVal(o.Token))
	b.SetAttributeValue("addr_file", cty.StringVal(l.addrFile()))
	b.SetAttributeValue("pid_file", cty.StringVal(path.Join(l.prefix, "run", "agent.pid")))
	level := o.LogLevel
	if level == "" {
		level = "info"
	}
	b.SetAttributeValue("log_level", cty.StringVal(level))
	b.SetAttributeValue("public_inference", cty.BoolVal(o.PublicInference))
	if o.IdleTimeout != "" {
		b.SetAttributeValue("idle_timeout", cty.StringVal(o.IdleTimeout))
	}
	if o.IdleAction != "" {
		b.SetAttributeValue("idle_action", cty.StringVal(o.IdleAction))
	}
	ep := o.ExecutionProvider
	if ep == "" {
		ep = "auto"
	}
	ort := b.AppendNewBlock("ort", nil).Body()
	if hasORT {
		ort.SetAttributeValue("library", cty.StringVal(path.Join(l.prefix, "current", ORTFile)))
	}
	ort.SetAttributeValue("execution_provider", cty.StringVal(ep))
	if o.TLS != nil {
		tb := b.AppendNewBlock("tls", nil).Body()
		tb.SetAttributeValue("cert_file", cty.StringVal(path.Join(l.prefix, "etc", "tls.crt")))
		tb.SetAttributeValue("key_file", cty.StringVal(path.Join(l.prefix, "etc", "tls.key")))
	}
	return hclwrite.Format(f.Bytes())
}

// renderUnit writes the systemd unit.
func renderUnit(l *layout) []byte {
	poweroff := ""
	if l.poweroff != "" {
		// "+": as root whatever User= says; $$ leaves $EXIT_STATUS to sh.
		poweroff = fmt.Sprintf("ExecStopPost=+/bin/sh -c 'if [ \"$${EXIT_STATUS}\" = %d ]; then exec %s; fi'\n", agent.ExitIdlePoweroff, l.poweroff)
	}
	return []byte(fmt.Sprintf(`# Written by Hadron's bootstrap.
[Unit]
Description=Hadron node runtime (hadrond)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=%s
ExecStart=%s agent -config %s
Restart=always
RestartSec=2
# Exit status %d: stopped by its idle_timeout; stay stopped until the next
# apply. %d: the same, and power the node off.
SuccessExitStatus=%d %d
RestartPreventExitStatus=%d %d
%sStandardOutput=append:%s
StandardError=append:%s
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`, l.user, path.Join(l.prefix, "current", AgentFile), l.configFile(), agent.ExitIdle, agent.ExitIdlePoweroff,
		agent.ExitIdle, agent.ExitIdlePoweroff, agent.ExitIdle, agent.ExitIdlePoweroff, poweroff, l.logFile(), l.logFile()))
}

// renderSupervisor writes the shell supervisor used where systemd is not.
func renderSupervisor(l *layout, runAs string) []byte {
	return []byte(fmt.Sprintf(`#!/bin/sh
# hadron-supervise: keeps hadrond running where systemd is not used. Written by
# Hadron's bootstrap; started detached (setsid, nohup). It restarts hadrond
# when it exits, with backoff, and records the restarts for diagnosis. After
# the exit statuses of its idle timeout it leaves it stopped and exits (the
# second, %d, powering the node off first).
P=%s
LOG=%s
echo $$ > "$P/run/supervisor.pid"
child=
stop() {
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi
  rm -f "$P/run/supervisor.pid"
  exit 0
}
trap stop TERM INT HUP
n=0
delay=1
while :; do
  started=$(date +%%s)
  %s "$P/current/bin/hadrond" agent -config %s >>"$LOG" 2>&1 &
  child=$!
  wait "$child"
  rc=$?
  child=
  n=$((n + 1))
  echo "restarts=$n last_exit=$rc" > "$P/run/restarts.tmp" && mv -f "$P/run/restarts.tmp" "$P/run/restarts"
  if [ "$rc" -eq %d ] || [ "$rc" -eq %d ]; then
    echo "hadron-supervise: hadrond stopped after its idle timeout; not restarting" >>"$LOG"
    rm -f "$P/run/supervisor.pid"
    if [ "$rc" -eq %d ]; then
      echo "hadron-supervise: powering the node off" >>"$LOG"
      %s
    fi
    exit 0
  fi
  echo "hadron-supervise: hadrond exited with status $rc; restart $n in ${delay}s" >>"$LOG"
  sleep "$delay" &
  wait $!
  if [ $(( $(date +%%s) - started )) -gt 60 ]; then delay=1; else delay=$((delay * 2)); fi
  if [ "$delay" -gt 30 ]; then delay=30; fi
done
`, agent.ExitIdlePoweroff, shellQuote(l.prefix), shellQuote(l.logFile()), runAs, shellQuote(l.configFile()),
		agent.ExitIdle, agent.ExitIdlePoweroff, agent.ExitIdlePoweroff, poweroffLine(l)))
}

// poweroffLine is the supervisor's command after ExitIdlePoweroff.
func poweroffLine(l *layout) string {
	if l.poweroff == "" {
		return ": # idle_action is not poweroff"
	}
	return l.poweroff + ` >>"$LOG" 2>&1`
}

// statusScript prints the service's state: running, restarts, last_exit, addr.
func (in *installer) statusScript() string {
	l := &in.l
	var b strings.Builder
	fmt.Fprintf(&b, "P=%s\n", shellQuote(l.prefix))
	if l.service == ServiceSystemd {
		fmt.Fprintf(&b, `if systemctl is-active --quiet %[1]s; then echo running=1; fi
echo "restarts=$(systemctl show -p NRestarts --value %[1]s 2>/dev/null || echo 0)"
echo "last_exit=$(systemctl show -p ExecMainStatus --value %[1]s 2>/dev/null)"
`, shellQuote(l.serviceName))
	} else {
		b.WriteString(`pid=$(cat "$P/run/supervisor.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q hadron-supervise "/proc/$pid/cmdline" 2>/dev/null; then echo running=1; fi
if [ -f "$P/run/restarts" ]; then cat "$P/run/restarts" | tr ' ' '\n'; fi
`)
	}
	b.WriteString(`if [ -f "$P/run/agent.addr" ]; then echo "addr=$(cat "$P/run/agent.addr")"; fi
`)
	return b.String()
}

// inspect reads what is installed under the prefix.
func (in *installer) inspect(ctx context.Context) (*installed, error) {
	l := &in.l
	v := in.o.Bundle.Version
	script := fmt.Sprintf(`set -u
P=%s
V=%s
if [ -f "$P/state" ]; then sed 's/^/state./' "$P/state"
elif [ -d "$P" ] && [ -n "$(ls -A "$P" 2>/dev/null)" ] && [ ! -L "$P/current" ]; then echo foreign=1
fi
cur=$(readlink "$P/current" 2>/dev/null || true)
echo "current=$cur"
if [ -f "$P/$V/SHA256SUMS" ]; then
  echo "target_sums=$(sha256sum < "$P/$V/SHA256SUMS" | cut -d' ' -f1)"
  if (cd "$P/$V" && sha256sum -c --quiet --strict SHA256SUMS >/dev/null 2>&1); then echo target_ok=1; fi
fi
for d in "$P"/*/; do
  [ -f "$d/SHA256SUMS" ] || continue
  while read -r sum name; do echo "have=$sum $d$name"; done < "$d/SHA256SUMS"
done
`, shellQuote(l.prefix), shellQuote(v)) + in.statusScript()
	out, err := in.sh(ctx, script)
	if err != nil {
		return nil, fmt.Errorf("reading the current install: %w", err)
	}
	cur := &installed{state: map[string]string{}, have: map[string]string{}}
	for _, kv := range parseKV(out) {
		switch k, val := kv[0], kv[1]; {
		case strings.HasPrefix(k, "state."):
			cur.state[strings.TrimPrefix(k, "state.")] = val
		case k == "current":
			cur.current = val
		case k == "target_sums":
			cur.targetSums = val
		case k == "target_ok":
			cur.targetOK = true
		case k == "foreign":
			return nil, fmt.Errorf("install prefix %s already holds files that are not a Hadron install: choose a new or empty directory (Uninstall removes the whole prefix)", l.prefix)
		case k == "have":
			if sum, p, ok := strings.Cut(val, " "); ok && isSHA256(sum) {
				cur.have[sum] = p
			}
		case k == "running":
			cur.running = true
		case k == "restarts":
			cur.restarts, _ = strconv.Atoi(val)
		case k == "last_exit":
			cur.lastExit = val
		case k == "addr":
			cur.addr = val
		}
	}
	want := sha256.Sum256([]byte(l.sums))
	if cur.targetSums != hex.EncodeToString(want[:]) {
		cur.targetOK = false
	}
	return cur, nil
}

// decide compares the install with the wanted one.
func (in *installer) decide(cur *installed) (Change, string) {
	v := in.o.Bundle.Version
	old := cur.state["version"]
	if old == "" {
		old = cur.current
	}
	switch {
	case old == "":
		return ChangeInstalled, ""
	case old != v:
		return ChangeUpgraded, old
	case !cur.targetOK || cur.current != v:
		return ChangeRepaired, old
	case cur.state["digest"] != in.l.digest:
		return ChangeReconfigured, old
	case !cur.running:
		return ChangeRestarted, old
	}
	return ChangeUnchanged, old
}

// installFiles stages, fetches, verifies and moves the version directory in.
func (in *installer) installFiles(ctx context.Context, cur *installed) error {
	l := &in.l
	v := in.o.Bundle.Version
	stage := path.Join(l.prefix, ".stage-"+v)
	var prep strings.Builder
	fmt.Fprintf(&prep, "set -eu\numask 022\nS=%s\nrm -rf \"$S\"\nmkdir -p \"$S/bin\" \"$S/lib\"\n", shellQuote(stage))
	if l.privilege == "sudo" {
		fmt.Fprintf(&prep, "chown -R %s \"$S\"\n", shellQuote(in.f.login))
	}
	if _, err := in.sh(ctx, prep.String()); err != nil {
		return fmt.Errorf("preparing %s: %w", stage, err)
	}

	var fin strings.Builder
	fmt.Fprintf(&fin, "set -eu\numask 022\nS=%s\n", shellQuote(stage))
	for _, f := range l.files {
		dst := path.Join(stage, f.Name)
		switch {
		case cur.have[f.SHA256] != "":
			fmt.Fprintf(&fin, "cp %s %s\n", shellQuote(cur.have[f.SHA256]), shellQuote(dst))
		case f.URL != "" && in.o.Fetch == FetchOnNode:
			if !in.f.has["curl"] && !in.f.has["wget"] {
				return fmt.Errorf("%s is given by url but the node has neither curl nor wget (use the provider fetch mode)", f.Name)
			}
			fmt.Fprintf(&fin, "if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 --connect-timeout 20 -o %[1]s %[2]s; else wget -q -O %[1]s %[2]s; fi || { echo \"downloading %[3]s failed\" >&2; exit 4; }\n",
				shellQuote(dst), shellQuote(f.URL), f.URL)
		case f.URL != "":
			if err := in.uploadURL(ctx, f, dst); err != nil {
				return err
			}
		case f.Gzip != "" && in.f.has["gzip"]:
			if err := in.uploadFile(ctx, f.Gzip, f.GzipSize, dst+".gz"); err != nil {
				return err
			}
			fmt.Fprintf(&fin, "gzip -dc %[1]s.gz > %[1]s\nrm -f %[1]s.gz\n", shellQuote(dst))
		default:
			if err := in.uploadFile(ctx, f.Source, f.Size, dst); err != nil {
				return err
			}
		}
		fmt.Fprintf(&fin, "chmod %04o %s\n", f.Mode.Perm(), shellQuote(dst))
	}
	delim := heredocDelim()
	fmt.Fprintf(&fin, "cat > \"$S/SHA256SUMS\" <<'%s'\n%s%s\n", delim, l.sums, delim)
	fin.WriteString("if ! out=$(cd \"$S\" && sha256sum -c --strict SHA256SUMS 2>&1); then echo \"sha256 verification failed on the node: $out\" >&2; exit 3; fi\n")
	if l.privilege != "user" {
		fin.WriteString("chown -R 0:0 \"$S\"\n")
	}
	fmt.Fprintf(&fin, "chmod 0755 \"$S\" \"$S/bin\" \"$S/lib\"\nrm -rf %[1]s.old\nif [ -e %[1]s ]; then mv %[1]s %[1]s.old; fi\nmv \"$S\" %[1]s\nrm -rf %[1]s.old\n", shellQuote(l.versionDir(v)))
	if _, err := in.sh(ctx, fin.String()); err != nil {
		var re *RunError
		if errors.As(err, &re) && re.ExitCode == 3 {
			return errors.New(strings.TrimSpace(re.Stderr))
		}
		return fmt.Errorf("installing version %s: %w", v, err)
	}
	return nil
}

func (in *installer) uploadFile(ctx context.Context, src string, size int64, dst string) error {
	r, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening bundle file: %w", err)
	}
	defer r.Close()
	return in.t.Upload(ctx, dst, 0o644, r, size)
}

// uploadURL downloads f on this machine and uploads it (FetchViaProvider).
func (in *installer) uploadURL(ctx context.Context, f File, dst string) error {
	c := in.o.HTTPClient
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", f.URL, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", f.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading %s: %s", f.URL, resp.Status)
	}
	tmp, err := os.CreateTemp("", "hadron-fetch-*")
	if err != nil {
		return fmt.Errorf("downloading %s: %w", f.URL, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := tmp.ReadFrom(io.TeeReader(resp.Body, h))
	if err != nil {
		return fmt.Errorf("downloading %s: %w", f.URL, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("downloading %s: sha256 %s, want %s", f.URL, got, f.SHA256)
	}
	if _, err := tmp.Seek(0, 0); err != nil {
		return fmt.Errorf("downloading %s: %w", f.URL, err)
	}
	return in.t.Upload(ctx, dst, 0o644, tmp, n)
}

// configure writes the user, directories, config, service, current symlink
// and state, then (re)starts the service.
func (in *installer) configure(ctx context.Context, cur *installed) error {
	l := &in.l
	v := in.o.Bundle.Version
	priv := l.privilege != "user"
	created := cur.state["created_user"] == "1"
	var b strings.Builder
	fmt.Fprintf(&b, "set -eu\numask 022\nP=%s\nV=%s\nU=%s\nD=%s\n", shellQuote(l.prefix), shellQuote(v), shellQuote(l.user), shellQuote(l.dataDir))
	b.WriteString("created=" + map[bool]string{true: "1", false: "0"}[created] + "\n")
	// The data directory is removed by Uninstall only when Install made it.
	createdData := cur.state["created_data"] == "1" || cur.state["version"] == ""
	if createdData {
		b.WriteString("created_data=1\n")
	} else {
		b.WriteString("created_data=0\n")
	}
	if cur.state["version"] == "" {
		b.WriteString("[ -e \"$D\" ] && created_data=0\n")
	}
	if priv {
		// /etc/passwd may be locked for a moment (cloud-init at boot, another
		// useradd): retry before giving up.
		b.WriteString(`if ! id -u "$U" >/dev/null 2>&1; then
  i=0
  until id -u "$U" >/dev/null 2>&1; do
    if command -v useradd >/dev/null 2>&1; then
      useradd --system --no-create-home --home-dir "$D" --shell /usr/sbin/nologin "$U" && break
    else
      adduser -S -H -h "$D" -s /sbin/nologin "$U" && break
    fi
    i=$((i + 1))
    if [ $i -ge 20 ]; then echo "could not create the system user $U" >&2; exit 1; fi
    sleep 0.25
  done
  created=1
fi
`)
	}
	b.WriteString(`mkdir -p "$P/etc" "$P/log" "$P/run" "$P/bin" "$D"
chmod 0755 "$P" "$P/bin" "$P/log" "$P/run"
chmod 0750 "$D"
`)
	if priv {
		b.WriteString("chown \"$U\" \"$P/log\" \"$P/run\" \"$D\"\nchown 0:0 \"$P/etc\"\nchmod 0755 \"$P/etc\"\n")
	}
	in.stopScript(&b)
	writeFile := func(dst string, mode string, owner string, content []byte) {
		delim := heredocDelim()
		fmt.Fprintf(&b, "(umask 077 && cat > %s.tmp) <<'%s'\n%s\n%s\n", shellQuote(dst), delim, strings.TrimSuffix(string(content), "\n"), delim)
		if owner != "" {
			fmt.Fprintf(&b, "chown %s %s.tmp\n", owner, shellQuote(dst))
		}
		fmt.Fprintf(&b, "chmod %s %[2]s.tmp\nmv -f %[2]s.tmp %[2]s\n", mode, shellQuote(dst))
	}
	owner := ""
	if priv {
		owner = `"$U"`
	}
	writeFile(l.configFile(), "0600", owner, l.config)
	if in.o.TLS != nil {
		writeFile(path.Join(l.prefix, "etc", "tls.crt"), "0644", owner, in.o.TLS.CertPEM)
		writeFile(path.Join(l.prefix, "etc", "tls.key"), "0600", owner, in.o.TLS.KeyPEM)
	}
	if l.service == ServiceSystemd {
		writeFile(l.unitPath, "0644", "", l.serviceFile)
	} else {
		writeFile(l.supervisor(), "0755", "", l.serviceFile)
	}
	b.WriteString(switchCurrent)
	lines := []string{"version=" + v, "digest=" + l.digest, "user=" + l.user}
	var q []string
	for _, line := range lines {
		q = append(q, shellQuote(line))
	}
	q = append(q, `"created_user=$created"`, `"created_data=$created_data"`)
	for _, line := range []string{"service=" + string(l.service), "service_name=" + l.serviceName, "unit=" + l.unitPath, "data_dir=" + l.dataDir} {
		q = append(q, shellQuote(line))
	}
	fmt.Fprintf(&b, "printf '%%s\\n' %s > \"$P/state.tmp\"\nmv -f \"$P/state.tmp\" \"$P/state\"\n", strings.Join(q, " "))
	in.startScript(&b)
	if _, err := in.sh(ctx, b.String()); err != nil {
		return fmt.Errorf("configuring and starting the agent: %w", err)
	}
	return nil
}

// switchCurrent points PREFIX/current at $V atomically.
const switchCurrent = `ln -sfn "$V" "$P/current.tmp"
mv -T "$P/current.tmp" "$P/current" 2>/dev/null || { rm -f "$P/current"; mv "$P/current.tmp" "$P/current"; }
`

// startScript appends the commands that start the service on $V (with $P
// and $U set), clearing the previous run's address and restart count.
func (in *installer) startScript(b *strings.Builder) {
	l := &in.l
	b.WriteString("rm -f \"$P/run/agent.addr\" \"$P/run/restarts\"\n")
	fmt.Fprintf(b, "echo \"--- hadron bootstrap: starting hadrond $V ($(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ))\" >> %s\n", shellQuote(l.logFile()))
	if l.privilege != "user" {
		fmt.Fprintf(b, "chown \"$U\" %s\n", shellQuote(l.logFile()))
	}
	if l.service == ServiceSystemd {
		fmt.Fprintf(b, "systemctl daemon-reload\nsystemctl enable --quiet %[1]s\nsystemctl reset-failed %[1]s 2>/dev/null || true\nsystemctl restart %[1]s\n", shellQuote(l.serviceName))
		return
	}
	b.WriteString(`cd /
nohup setsid "$P/bin/hadron-supervise" </dev/null >/dev/null 2>&1 &
i=0
while [ ! -s "$P/run/supervisor.pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
`)
}

// rollback points current back at the previous version after a failed
// upgrade and waits until that version answers ready again.
func (in *installer) rollback(ctx context.Context, old string) error {
	l := &in.l
	var b strings.Builder
	fmt.Fprintf(&b, "set -eu\nP=%s\nV=%s\nU=%s\n", shellQuote(l.prefix), shellQuote(old), shellQuote(l.user))
	b.WriteString(`[ -f "$P/$V/SHA256SUMS" ] || { echo "version $V is no longer on the node" >&2; exit 1; }
(cd "$P/$V" && sha256sum -c --quiet --strict SHA256SUMS) >&2
`)
	in.stopScript(&b)
	b.WriteString(switchCurrent)
	// An empty digest makes the next Install rewrite the configuration.
	b.WriteString(`sed -e "s/^version=.*/version=$V/" -e "s/^digest=.*/digest=/" "$P/state" > "$P/state.tmp" && mv -f "$P/state.tmp" "$P/state"
`)
	in.startScript(&b)
	if _, err := in.sh(ctx, b.String()); err != nil {
		return err
	}
	return in.waitReady(ctx, 0, old)
}

// stopScript appends the commands that stop a running service (either mode).
func (in *installer) stopScript(b *strings.Builder) {
	fmt.Fprintf(b, `if command -v systemctl >/dev/null 2>&1 && [ -f /etc/systemd/system/%[1]s.service ] && grep -q "Hadron" /etc/systemd/system/%[1]s.service 2>/dev/null && [ -d /run/systemd/system ]; then
  systemctl stop %[1]s 2>/dev/null || true
fi
pid=$(cat "$P/run/supervisor.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q hadron-supervise "/proc/$pid/cmdline" 2>/dev/null; then
  kill -TERM "$pid" 2>/dev/null || true
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  kill -KILL -- "-$pid" 2>/dev/null || true
fi
rm -f "$P/run/supervisor.pid"
`, shellQuote(in.l.serviceName))
}

// waitReady polls the service until the agent answers ready and /v1/node,
// failing fast when it exits or stops.
func (in *installer) waitReady(ctx context.Context, baseline int, version string) error {
	poll := in.o.PollInterval
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	status := in.statusScript()
	phase := PhaseRunning
	var lastErr error
	for {
		out, err := in.sh(ctx, status)
		if err != nil && ctx.Err() == nil {
			return in.failWithLog(ctx, phase, fmt.Errorf("reading the agent's status: %w", err))
		}
		st := &installed{}
		for _, kv := range parseKV(out) {
			switch kv[0] {
			case "running":
				st.running = true
			case "restarts":
				st.restarts, _ = strconv.Atoi(kv[1])
			case "last_exit":
				st.lastExit = kv[1]
			case "addr":
				st.addr = kv[1]
			}
		}
		if err == nil {
			switch {
			case st.restarts > baseline:
				return in.failWithLog(ctx, PhaseRunning, fmt.Errorf("hadrond exited with status %s and was restarted %d times", st.lastExit, st.restarts-baseline))
			case !st.running:
				return in.failWithLog(ctx, PhaseRunning, fmt.Errorf("the %s service is not running", in.l.service))
			case st.addr != "":
				if phase == PhaseRunning {
					in.done(PhaseRunning)
					phase = PhaseReady
				}
				host, port, perr := agentAddr(st.addr)
				if perr != nil {
					return in.failWithLog(ctx, PhaseReady, perr)
				}
				a := NewAgentAt(in.t, net.JoinHostPort(host, strconv.Itoa(port)), in.o.Token, in.o.TLS)
				if lastErr = a.Ready(ctx); lastErr == nil {
					info, err := a.Node(ctx)
					if err != nil {
						return in.failWithLog(ctx, PhaseReady, err)
					}
					if info.RuntimeVersion != version {
						return in.failWithLog(ctx, PhaseReady, fmt.Errorf("agent reports runtime version %q, want %q (is an old process still serving?)", info.RuntimeVersion, version))
					}
					in.res.Port, in.res.Agent, in.res.Info = port, a, info
					in.done(PhaseReady)
					return nil
				}
			}
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			cause := fmt.Errorf("timeout: %w", ctx.Err())
			if phase == PhaseRunning {
				cause = fmt.Errorf("timeout: the agent did not start listening (no %s): %w", in.l.addrFile(), ctx.Err())
			} else if lastErr != nil {
				cause = fmt.Errorf("timeout: the agent never answered ready: %w (last error: %v)", ctx.Err(), lastErr)
			}
			return in.failWithLog(ctx, phase, cause)
		case <-timer.C:
		}
	}
}

// prune removes version directories other than the current and previous.
func (in *installer) prune(ctx context.Context, previous string) {
	script := fmt.Sprintf(`P=%s
for d in "$P"/*/; do
  v=$(basename "$d")
  [ -f "$d/SHA256SUMS" ] || continue
  if [ "$v" != %s ] && [ "$v" != %s ]; then rm -rf "$d"; fi
done
`, shellQuote(in.l.prefix), shellQuote(in.o.Bundle.Version), shellQuote(previous))
	_, _ = in.sh(ctx, script)
}

// Uninstall stops the agent and removes everything Install created: the
// service, the prefix, the data directory (unless KeepData) and the system
// user when Install created it. Uninstalling where nothing is installed
// succeeds.
func Uninstall(ctx context.Context, t Transport, o Options) error {
	in := &installer{t: t, o: o, node: t.Node(), res: &Result{}, mark: time.Now()}
	in.o.ExpectGPUs = false // removing needs no driver
	if err := in.detect(ctx); err != nil {
		return err
	}
	if err := in.planForRemoval(); err != nil {
		return fmt.Errorf("uninstalling from %s: %w", in.node, err)
	}
	l := &in.l
	var b strings.Builder
	fmt.Fprintf(&b, "set -u\nP=%s\n", shellQuote(l.prefix))
	b.WriteString(`[ -f "$P/state" ] || [ -L "$P/current" ] || { echo absent=1; exit 0; }
st() { sed -n "s/^$1=//p" "$P/state" 2>/dev/null; }
`)
	fmt.Fprintf(&b, "SVC=$(st service_name)\nSVC=${SVC:-%s}\n", shellQuote(o.ServiceName))
	b.WriteString(`if [ -n "$SVC" ] && command -v systemctl >/dev/null 2>&1 && [ -f "/etc/systemd/system/$SVC.service" ] && grep -q Hadron "/etc/systemd/system/$SVC.service"; then
  systemctl disable --now "$SVC" >/dev/null 2>&1 || true
  rm -f "/etc/systemd/system/$SVC.service"
  systemctl daemon-reload || true
fi
pid=$(cat "$P/run/supervisor.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q hadron-supervise "/proc/$pid/cmdline" 2>/dev/null; then
  kill -TERM "$pid" 2>/dev/null || true
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  kill -KILL -- "-$pid" 2>/dev/null || true
fi
D=$(st data_dir)
U=$(st user)
created=$(st created_user)
created_data=$(st created_data)
`)
	if !o.KeepData {
		b.WriteString(`if [ "$created_data" = 1 ] && [ -n "$D" ] && [ "$D" != / ]; then rm -rf "$D"; fi
`)
	}
	b.WriteString(`rm -rf "$P"
if [ "$created" = 1 ] && [ -n "$U" ] && id -u "$U" >/dev/null 2>&1; then userdel "$U" 2>/dev/null || deluser "$U" 2>/dev/null || true; fi
`)
	if _, err := in.sh(ctx, b.String()); err != nil {
		return fmt.Errorf("uninstalling from %s: %w", in.node, err)
	}
	return nil
}

// planForRemoval resolves only what Uninstall needs: privilege and prefix.
func (in *installer) planForRemoval() error {
	l := layout{privilege: "user"}
	switch {
	case in.f.uid == 0:
		l.privilege = "root"
	case in.f.sudo:
		l.privilege = "sudo"
	}
	l.prefix = in.o.Prefix
	if l.prefix == "" {
		if l.privilege != "user" {
			l.prefix = "/opt/hadron"
		} else {
			l.prefix = path.Join(in.f.home, ".hadron")
		}
	}
	if !path.IsAbs(l.prefix) || path.Clean(l.prefix) == "/" {
		return fmt.Errorf("refusing to remove install prefix %q", l.prefix)
	}
	in.l = l
	return nil
}

// validVersion accepts versions usable as a directory name under the prefix
// that cannot collide with the prefix's own entries.
func validVersion(v string) error {
	switch v {
	case ".", "..", "current", "etc", "log", "run", "bin", "data", "state":
		return fmt.Errorf("runtime version %q is reserved", v)
	}
	if v == "" || len(v) > 128 || strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_+") != "" || v[0] == '.' {
		return fmt.Errorf("runtime version %q must be letters, digits and . - _ + (not starting with a dot)", v)
	}
	return nil
}

// parseKV splits "key=value" lines.
func parseKV(out []byte) [][2]string {
	var kvs [][2]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			kvs = append(kvs, [2]string{k, v})
		}
	}
	return kvs
}

// agentAddr returns where to dial the agent from the node, given the URL in
// its addr file: the bound host, or 127.0.0.1 when it listens on all
// addresses.
func agentAddr(addr string) (string, int, error) {
	u, err := url.Parse(strings.TrimSpace(addr))
	if err != nil {
		return "", 0, fmt.Errorf("agent addr file: %w", err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil || p <= 0 {
		return "", 0, fmt.Errorf("agent addr file: no port in %q", addr)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return host, p, nil
}

func heredocDelim() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "HADRON_EOF_" + hex.EncodeToString(b[:])
}
