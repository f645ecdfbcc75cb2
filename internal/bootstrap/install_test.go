package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/agent"
)

// nodeOpts returns install options confined to a temporary prefix, running
// the agent as the login user under the supervised process (never the real
// systemd), on a free port.
func nodeOpts(t testing.TB, b *Bundle) Options {
	t.Helper()
	dir := t.TempDir()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Bundle:       b,
		Token:        "test-token-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Prefix:       filepath.Join(dir, "opt", "hadron"),
		DataDir:      filepath.Join(dir, "data"),
		User:         me.Username,
		Service:      ServiceSupervised,
		Listen:       "127.0.0.1:0",
		PollInterval: 50 * time.Millisecond,
	}
}

// uninstallOnCleanup removes the install even when the test fails, so that
// no supervisor outlives the test.
func uninstallOnCleanup(t testing.TB, tr Transport, o Options) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := Uninstall(ctx, tr, o); err != nil {
			t.Errorf("cleanup Uninstall: %v", err)
		}
	})
}

func install(t *testing.T, tr Transport, o Options) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Install(ctx, tr, o)
	if err != nil {
		t.Fatalf("Install(%s): %v", o.Bundle.Version, err)
	}
	return res
}

func TestInstallEndToEndOverSSH(t *testing.T) {
	t.Parallel()
	n := startNode(t, "127.0.0.10", nodeOptions{})
	tr := n.dial(t)
	o := nodeOpts(t, bundleV1)
	uninstallOnCleanup(t, tr, o)

	// 1. Fresh install: every phase passes and the agent answers /v1/node.
	var phases []Phase
	o.OnPhase = func(_ string, p Phase, _ time.Duration) { phases = append(phases, p) }
	first := install(t, tr, o)
	if first.Change != ChangeInstalled || first.Version != testVersion1 {
		t.Errorf("first install = %s, want installed (%s)", first, testVersion1)
	}
	if want := []Phase{PhaseOS, PhaseBundle, PhaseRunning, PhaseReady}; !equalPhases(phases, want) {
		t.Errorf("phases = %v, want %v", phases, want)
	}
	if first.Info == nil || first.Info.RuntimeVersion != testVersion1 || first.Info.Hostname == "" {
		t.Fatalf("/v1/node = %+v, want runtime_version %s and a hostname", first.Info, testVersion1)
	}
	if want := compressedSize(bundleV1, first.Arch); first.Arch == "" || first.BytesUploaded < want || first.BytesUploaded >= bundleV1.Size(first.Arch) {
		t.Errorf("uploaded %d bytes, want the gzip copies' %d and less than the plain %d", first.BytesUploaded, want, bundleV1.Size(first.Arch))
	}
	assertMode(t, filepath.Join(o.Prefix, "etc", "hadrond.hcl"), 0o600)
	if target, err := os.Readlink(filepath.Join(o.Prefix, "current")); err != nil || target != testVersion1 {
		t.Errorf("current -> %q (err %v), want %s", target, err, testVersion1)
	}
	// The agent rejects a wrong token: the token in the 0600 config is in use.
	bad := NewAgent(tr, first.Port, "wrong", nil)
	if _, err := bad.Node(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("GET /v1/node with a wrong token: err = %v, want 401", err)
	}

	// 2. Re-run with the same version: nothing changes, the same process serves.
	again := install(t, tr, o)
	if again.Change != ChangeUnchanged {
		t.Errorf("re-run = %s, want unchanged", again)
	}
	if again.BytesUploaded > 64*1024 {
		t.Errorf("re-run sent %d bytes, want only probes (< 64 KiB)", again.BytesUploaded)
	}
	if again.Info.PID != first.Info.PID || again.Info.StartedAt != first.Info.StartedAt {
		t.Errorf("re-run restarted the agent: pid %d -> %d", first.Info.PID, again.Info.PID)
	}

	// 3. Upgrade: a bundle with another version replaces the agent in place.
	o2 := o
	o2.Bundle = bundleV2
	up := install(t, tr, o2)
	if up.Change != ChangeUpgraded || up.OldVersion != testVersion1 || up.Version != testVersion2 {
		t.Errorf("upgrade = %s, want upgraded %s -> %s", up, testVersion1, testVersion2)
	}
	if up.String() != "upgraded "+testVersion1+" -> "+testVersion2 {
		t.Errorf("String() = %q", up.String())
	}
	if up.Info.RuntimeVersion != testVersion2 || up.Info.PID == first.Info.PID {
		t.Errorf("after upgrade /v1/node = version %s pid %d, want version %s from a new process", up.Info.RuntimeVersion, up.Info.PID, testVersion2)
	}
	if ort := findFile(bundleV2, up.Arch, ORTFile); ort != nil && up.BytesUploaded >= ort.Size {
		t.Errorf("upgrade sent %d bytes; the unchanged ONNX Runtime (%d bytes) should be copied on the node", up.BytesUploaded, ort.Size)
	}
	if _, err := os.Stat(filepath.Join(o.Prefix, testVersion1)); err != nil {
		t.Errorf("previous version kept for rollback: %v", err)
	}

	ctx := context.Background()
	st, err := Status(ctx, tr, o2)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Version != testVersion2 || !st.Running || st.Port != up.Port || st.Service != ServiceSupervised {
		t.Errorf("Status = %+v, want version %s running on port %d (supervised)", st, testVersion2, up.Port)
	}

	// 4. Uninstall removes the service, the prefix and the data directory.
	supervisorPID := readPID(t, filepath.Join(o.Prefix, "run", "supervisor.pid"))
	if err := Uninstall(ctx, tr, o2); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	for _, p := range []string{o.Prefix, o.DataDir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Uninstall %s: stat err = %v, want not exist", p, err)
		}
	}
	if processAlive(supervisorPID) {
		t.Errorf("supervisor %d still running after Uninstall", supervisorPID)
	}
	if processAlive(up.Info.PID) {
		t.Errorf("hadrond %d still running after Uninstall", up.Info.PID)
	}
	if err := Uninstall(ctx, tr, o2); err != nil {
		t.Errorf("second Uninstall: %v, want nil (nothing installed)", err)
	}
	if _, err := Status(ctx, tr, o2); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Status after Uninstall: err = %v, want ErrNotInstalled", err)
	}
}

func TestInstallRestartsAStoppedAgentAndReconfigures(t *testing.T) {
	t.Parallel()
	tr := &LocalTransport{Name: "local-restart"}
	o := nodeOpts(t, bundleV1)
	uninstallOnCleanup(t, tr, o)
	first := install(t, tr, o)

	// The supervisor is gone (a reboot without systemd): a re-run restarts it.
	pid := readPID(t, filepath.Join(o.Prefix, "run", "supervisor.pid"))
	if err := exec.Command("kill", "-KILL", "--", "-"+strconv.Itoa(pid)).Run(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first.Info.PID)
	res := install(t, tr, o)
	if res.Change != ChangeRestarted || res.Info.PID == first.Info.PID {
		t.Errorf("after the agent died: %s pid %d, want restarted with a new pid", res, res.Info.PID)
	}

	// A new token is a configuration change: rewritten and restarted.
	o.Token = "rotated-token"
	res = install(t, tr, o)
	if res.Change != ChangeReconfigured {
		t.Errorf("token change = %s, want reconfigured", res)
	}
	if _, err := res.Agent.Node(context.Background()); err != nil {
		t.Errorf("GET /v1/node with the rotated token: %v", err)
	}
}

// TestInstallIdleTimeoutStaysStopped: an agent stopped by its idle_timeout
// is not restarted by the supervisor (it would never stop otherwise), and
// the next install starts it again.
func TestInstallIdleTimeoutStaysStopped(t *testing.T) {
	t.Parallel()
	tr := &LocalTransport{Name: "local-idle"}
	o := nodeOpts(t, bundleV1)
	o.IdleTimeout = "3s"
	uninstallOnCleanup(t, tr, o)
	first := install(t, tr, o)
	supervisor := readPID(t, filepath.Join(o.Prefix, "run", "supervisor.pid"))
	waitGone(t, first.Info.PID)
	waitGone(t, supervisor)
	b, err := os.ReadFile(filepath.Join(o.Prefix, "run", "restarts"))
	if err != nil || !strings.Contains(string(b), "last_exit="+strconv.Itoa(agent.ExitIdle)) {
		t.Fatalf("restarts file = %q (%v), want last_exit=%d", b, err, agent.ExitIdle)
	}
	log, _ := os.ReadFile(filepath.Join(o.Prefix, "log", "hadrond.log"))
	if !strings.Contains(string(log), "not restarting") {
		t.Errorf("agent log does not say the supervisor left it stopped:\n%s", log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, err := Status(ctx, tr, o); err != nil || st.Running {
		t.Errorf("status after the idle stop: %+v, %v; want not running", st, err)
	}
	res := install(t, tr, o)
	if res.Change != ChangeRestarted {
		t.Errorf("install after the idle stop = %s, want restarted", res)
	}
}

// TestInstallIdlePoweroff: with idle_action "poweroff" the supervisor runs
// the power-off command (here one that leaves a mark) after the agent's idle
// stop, and does not restart the agent.
func TestInstallIdlePoweroff(t *testing.T) {
	t.Parallel()
	tr := &LocalTransport{Name: "local-poweroff"}
	o := nodeOpts(t, bundleV1)
	o.IdleTimeout, o.IdleAction = "3s", agent.IdlePoweroff
	mark := filepath.Join(t.TempDir(), "powered-off")
	o.PoweroffCommand = "touch " + mark
	uninstallOnCleanup(t, tr, o)
	first := install(t, tr, o)
	supervisor := readPID(t, filepath.Join(o.Prefix, "run", "supervisor.pid"))
	waitGone(t, first.Info.PID)
	waitGone(t, supervisor)
	if _, err := os.Stat(mark); err != nil {
		log, _ := os.ReadFile(filepath.Join(o.Prefix, "log", "hadrond.log"))
		t.Fatalf("the power-off command did not run: %v\n%s", err, log)
	}
	b, _ := os.ReadFile(filepath.Join(o.Prefix, "run", "restarts"))
	if !strings.Contains(string(b), "last_exit="+strconv.Itoa(agent.ExitIdlePoweroff)) {
		t.Errorf("restarts file = %q, want last_exit=%d", b, agent.ExitIdlePoweroff)
	}
}

func TestInstallFailures(t *testing.T) {
	t.Parallel()
	corrupt := *bundleV1
	corrupt.Files = append([]File(nil), bundleV1.Files...)
	for i := range corrupt.Files {
		if corrupt.Files[i].Name == AgentFile {
			corrupt.Files[i].SHA256 = strings.Repeat("0", 64)
		}
	}
	newGLIBC := *bundleV1
	newGLIBC.Files = append([]File(nil), bundleV1.Files...)
	for i := range newGLIBC.Files {
		if newGLIBC.Files[i].Name == AgentFile {
			newGLIBC.Files[i].GLIBC = "9.99"
		}
	}
	tests := []struct {
		name      string
		modify    func(o *Options)
		wantPhase Phase
		wantErr   []string
		wantLog   string
	}{
		{
			name:      "agent crashes at start (bad config)",
			modify:    func(o *Options) { o.LogLevel = "verbose" },
			wantPhase: PhaseRunning,
			wantErr:   []string{"hadrond exited with status 1"},
			wantLog:   "log_level",
		},
		{
			name:      "node glibc too old",
			modify:    func(o *Options) { o.Bundle = &newGLIBC },
			wantPhase: PhaseOS,
			wantErr:   []string{"bin/hadrond needs glibc 9.99 but the node has glibc 2."},
		},
		{
			name:      "bundle digest does not match",
			modify:    func(o *Options) { o.Bundle = &corrupt },
			wantPhase: PhaseBundle,
			wantErr:   []string{"sha256 verification failed", "bin/hadrond: FAILED"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &LocalTransport{Name: "local-failure"}
			o := nodeOpts(t, bundleV1)
			tc.modify(&o)
			uninstallOnCleanup(t, tr, o)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_, err := Install(ctx, tr, o)
			var pe *PhaseError
			if !errors.As(err, &pe) {
				t.Fatalf("Install error = %v, want *PhaseError", err)
			}
			if pe.Phase != tc.wantPhase || pe.Node != "local-failure" {
				t.Errorf("phase, node = %q, %q, want %q, local-failure (error %v)", pe.Phase, pe.Node, tc.wantPhase, err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tc.wantLog != "" && !strings.Contains(strings.Join(pe.Log, "\n"), tc.wantLog) {
				t.Errorf("agent log lines %q do not contain %q", pe.Log, tc.wantLog)
			}
		})
	}
}

// TestInstallExpectGPUs checks the GPU phase against this machine: with an
// NVIDIA driver it passes and reports the GPUs, without one it fails naming
// the phase and nvidia-smi.
func TestInstallExpectGPUs(t *testing.T) {
	t.Parallel()
	tr := &LocalTransport{Name: "local-gpu"}
	o := nodeOpts(t, bundleV1)
	o.ExpectGPUs = true
	uninstallOnCleanup(t, tr, o)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Install(ctx, tr, o)
	if _, lookErr := exec.LookPath("nvidia-smi"); lookErr == nil {
		if err != nil || len(res.GPUs) == 0 {
			t.Fatalf("with nvidia-smi present: Install = %v, %v; want success listing the GPUs", res, err)
		}
		return
	}
	if PhaseOf(err) != PhaseGPU || !strings.Contains(err.Error(), "nvidia-smi not found") {
		t.Errorf("without a driver: err = %v, want phase %q naming nvidia-smi", err, PhaseGPU)
	}
}

func equalPhases(a, b []Phase) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// compressedSize is what uploading a bundle's gzip copies costs.
func compressedSize(b *Bundle, arch string) int64 {
	var n int64
	for _, f := range b.Files {
		if f.Arch == arch {
			n += f.GzipSize
		}
	}
	return n
}

func findFile(b *Bundle, arch, name string) *File {
	for i, f := range b.Files {
		if f.Arch == arch && f.Name == name {
			return &b.Files[i]
		}
	}
	return nil
}

func assertMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s mode = %o, want %o", p, got, want)
	}
}

func readPID(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInstallAsSystemUser runs the default privileged path: a dedicated
// system user created with useradd --system, owning the config and data, and
// removed again by Uninstall. The user gets a unique name so that nothing on
// this machine is touched for longer than the test.
func TestInstallAsSystemUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a system user: run make test as root")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("needs useradd (Debian package passwd)")
	}
	tr := &LocalTransport{Name: "local-user"}
	o := nodeOpts(t, bundleV1)
	o.User = "hadron-t" + strconv.FormatInt(time.Now().UnixNano()%100000, 10)
	// The service user must traverse the test's temporary directories.
	for p := filepath.Dir(filepath.Dir(o.Prefix)); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if exec.Command("id", "-u", o.User).Run() == nil {
			t.Errorf("system user %s still exists after Uninstall", o.User)
			exec.Command("userdel", o.User).Run()
		}
	})
	uninstallOnCleanup(t, tr, o)
	res := install(t, tr, o)

	uidOut, err := exec.Command("id", "-u", o.User).Output()
	if err != nil {
		t.Fatalf("user %s was not created: %v", o.User, err)
	}
	uid := strings.TrimSpace(string(uidOut))
	status, err := os.ReadFile("/proc/" + strconv.Itoa(res.Info.PID) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var gotUID string
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			gotUID = f[1]
		}
	}
	if gotUID != uid {
		t.Errorf("hadrond runs as uid %s, want %s (%s)", gotUID, uid, o.User)
	}
	for _, p := range []string{filepath.Join(o.Prefix, "etc", "hadrond.hcl"), o.DataDir} {
		out, err := exec.Command("stat", "-c", "%U %a", p).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := o.User + " 600"
		if p == o.DataDir {
			want = o.User + " 750"
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s: owner and mode %q, want %q", p, got, want)
		}
	}
}

// TestInstallAsUnprivilegedUser logs in over SSH as a user that is neither
// root nor a sudoer: Install falls back to a prefix under $HOME, the login
// user and the supervised process, with no option set for it.
func TestInstallAsUnprivilegedUser(t *testing.T) {
	n := startNode(t, "127.0.0.14", nodeOptions{})
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("needs useradd (Debian package passwd)")
	}
	name, home := loginUser(t, n, "hadron-u", false)
	cfg := n.sshConfig()
	cfg.User = name
	cfg.HostKeyFingerprint = n.Fingerprint
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSSH as %s: %v\n%s", name, err, n.Log())
	}
	t.Cleanup(func() { tr.Close() })
	o := Options{Bundle: bundleV1, Token: "user-token", Listen: "127.0.0.1:0", PollInterval: 50 * time.Millisecond}
	uninstallOnCleanup(t, tr, o)
	off := o
	off.IdleTimeout, off.IdleAction = "1h", agent.IdlePoweroff
	if _, err := Install(ctx, tr, off); err == nil || !strings.Contains(err.Error(), "needs root or passwordless sudo") {
		t.Errorf("Install with idle_action poweroff as %s: %v, want an error saying it needs root or sudo", name, err)
	}
	res, err := Install(ctx, tr, o)
	if err != nil {
		t.Fatalf("Install as %s: %v", name, err)
	}
	want := Result{Privilege: "user", User: name, Prefix: filepath.Join(home, ".hadron"), DataDir: filepath.Join(home, ".hadron", "data"), Service: ServiceSupervised}
	if res.Privilege != want.Privilege || res.User != want.User || res.Prefix != want.Prefix || res.DataDir != want.DataDir || res.Service != want.Service {
		t.Errorf("Install as %s = privilege %s user %s prefix %s data %s service %s; want %s %s %s %s %s",
			name, res.Privilege, res.User, res.Prefix, res.DataDir, res.Service, want.Privilege, want.User, want.Prefix, want.DataDir, want.Service)
	}
	if res.Info.RuntimeVersion != testVersion1 {
		t.Errorf("runtime version = %q, want %q", res.Info.RuntimeVersion, testVersion1)
	}
	if err := Uninstall(ctx, tr, o); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	if _, err := os.Stat(want.Prefix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Uninstall %s: %v, want not exist", want.Prefix, err)
	}
}

// loginUser creates a user that can log in to node n with n's key (and,
// with sudoer, run anything through passwordless sudo); both are removed when
// the test ends. It returns the name and home directory.
func loginUser(t *testing.T, n *testNode, prefix string, sudoer bool) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("needs useradd (Debian package passwd)")
	}
	name := prefix + strconv.FormatInt(time.Now().UnixNano()%100000, 10)
	home := filepath.Join(t.TempDir(), "home")
	for p := filepath.Dir(home); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A password of "*" leaves the account unlocked for key logins only.
	// Other tests (and packages) may hold the /etc/passwd lock for a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("useradd", "-m", "-d", home, "-s", "/bin/sh", "-p", "*", name).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("useradd: %v: %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(func() { exec.Command("userdel", "-r", name).Run() })
	if sudoer {
		rule := filepath.Join("/etc/sudoers.d", name)
		if err := os.WriteFile(rule, []byte(name+" ALL=(ALL) NOPASSWD:ALL\n"), 0o440); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(rule) })
	}
	// sshd reads authorized_keys as the user.
	for _, p := range []string{n.Dir, filepath.Dir(n.Dir), filepath.Join(n.Dir, "authorized_keys")} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return name, home
}

// TestInstallWithSudo logs in as a passwordless sudoer (the ubuntu or
// ec2-user of cloud images): Install runs its privileged steps through
// sudo -n, stages uploads as the login user, installs root-owned files and
// runs the agent as a dedicated system user.
func TestInstallWithSudo(t *testing.T) {
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Skip("needs sudo: apt-get install sudo (internal/tools/prereqs.sh debs)")
	}
	n := startNode(t, "127.0.0.15", nodeOptions{})
	login, _ := loginUser(t, n, "hadron-l", true)
	cfg := n.sshConfig()
	cfg.User = login
	cfg.HostKeyFingerprint = n.Fingerprint
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSSH as %s: %v\n%s", login, err, n.Log())
	}
	t.Cleanup(func() { tr.Close() })
	o := nodeOpts(t, bundleV1)
	o.User = "hadron-s" + strconv.FormatInt(time.Now().UnixNano()%100000, 10)
	for p := filepath.Dir(filepath.Dir(o.Prefix)); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if exec.Command("id", "-u", o.User).Run() == nil {
			t.Errorf("system user %s still exists after Uninstall", o.User)
			exec.Command("userdel", o.User).Run()
		}
	})
	uninstallOnCleanup(t, tr, o)
	res, err := Install(ctx, tr, o)
	if err != nil {
		t.Fatalf("Install through sudo: %v", err)
	}
	if res.Privilege != "sudo" || res.User != o.User {
		t.Errorf("privilege, user = %s, %s; want sudo, %s", res.Privilege, res.User, o.User)
	}
	owners := []struct{ path, want string }{
		{filepath.Join(o.Prefix, testVersion1, AgentFile), "root 755"},
		{filepath.Join(o.Prefix, "etc", "hadrond.hcl"), o.User + " 600"},
		{o.DataDir, o.User + " 750"},
	}
	for _, c := range owners {
		out, err := exec.Command("stat", "-c", "%U %a", c.path).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("%s: owner and mode %q, want %q", c.path, got, c.want)
		}
	}
	again, err := Install(ctx, tr, o)
	if err != nil || again.Change != ChangeUnchanged {
		t.Errorf("re-run through sudo = %v, %v; want unchanged", again, err)
	}
}

// TestInstallWithTLS serves the agent over HTTPS with a generated
// certificate; the client through the transport accepts only that one.
func TestInstallWithTLS(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := selfSigned(t)
	otherPEM, _ := selfSigned(t)
	tr := &LocalTransport{Name: "local-tls"}
	o := nodeOpts(t, bundleV1)
	o.TLS = &TLS{CertPEM: certPEM, KeyPEM: keyPEM}
	uninstallOnCleanup(t, tr, o)
	res := install(t, tr, o)
	if !strings.HasPrefix(res.Agent.BaseURL, "https://") {
		t.Errorf("agent URL = %s, want https", res.Agent.BaseURL)
	}
	assertMode(t, filepath.Join(o.Prefix, "etc", "tls.key"), 0o600)
	wrong := NewAgent(tr, res.Port, o.Token, &TLS{CertPEM: otherPEM})
	if err := wrong.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate other than the configured one") {
		t.Errorf("client pinned to another certificate: err = %v, want a pin failure", err)
	}
}

func selfSigned(t *testing.T) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "hadrond test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestInstallRollsBackAFailedUpgrade upgrades to a runtime that exits at
// once: the error names the phase and the log, and the node is back on the
// previous version, answering ready.
func TestInstallRollsBackAFailedUpgrade(t *testing.T) {
	t.Parallel()
	tr := &LocalTransport{Name: "local-rollback"}
	o := nodeOpts(t, bundleV1)
	uninstallOnCleanup(t, tr, o)
	first := install(t, tr, o)

	script := filepath.Join(t.TempDir(), "hadrond")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'hadrond: simulated crash at start' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, size, err := fileSHA256(script)
	if err != nil {
		t.Fatal(err)
	}
	broken := &Bundle{Version: "0.9.2-broken"}
	for _, f := range bundleV1.Files {
		if f.Name == AgentFile {
			f = File{Arch: f.Arch, Name: AgentFile, Source: script, SHA256: sum, Size: size, Mode: 0o755}
		}
		broken.Files = append(broken.Files, f)
	}
	o2 := o
	o2.Bundle = broken
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = Install(ctx, tr, o2)
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != PhaseRunning {
		t.Fatalf("upgrade to a crashing runtime: err = %v, want a %q *PhaseError", err, PhaseRunning)
	}
	for _, want := range []string{"exited with status 2", "rolled back to " + testVersion1 + ", which answers ready"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !strings.Contains(strings.Join(pe.Log, "\n"), "simulated crash at start") {
		t.Errorf("log lines %q lack the crash message", pe.Log)
	}
	st, err := Status(ctx, tr, o)
	if err != nil || st.Version != testVersion1 || !st.Running {
		t.Fatalf("after rollback Status = %+v, %v; want %s running", st, err, testVersion1)
	}
	info, err := NewAgent(tr, st.Port, o.Token, nil).Node(ctx)
	if err != nil || info.RuntimeVersion != testVersion1 || info.PID == first.Info.PID {
		t.Errorf("after rollback /v1/node = %+v, %v; want %s from a restarted process", info, err, testVersion1)
	}
	// The next apply with the good version reconciles without a download.
	res := install(t, tr, o)
	if res.Change != ChangeReconfigured || res.BytesUploaded > 64*1024 {
		t.Errorf("re-apply after rollback = %s with %d bytes uploaded, want reconfigured without uploads", res, res.BytesUploaded)
	}
}

// TestInstallListensOnOneAddress binds the agent to one address (not
// 127.0.0.1): readiness and Status dial that address from the node.
func TestInstallListensOnOneAddress(t *testing.T) {
	t.Parallel()
	tr := &LocalTransport{Name: "local-bound"}
	o := nodeOpts(t, bundleV1)
	o.Listen = "127.0.0.21:0"
	uninstallOnCleanup(t, tr, o)
	res := install(t, tr, o)
	if !strings.HasPrefix(res.Agent.BaseURL, "http://127.0.0.21:") {
		t.Errorf("agent URL = %s, want http://127.0.0.21:PORT", res.Agent.BaseURL)
	}
	st, err := Status(context.Background(), tr, o)
	if err != nil || st.Addr != "127.0.0.21:"+strconv.Itoa(res.Port) {
		t.Fatalf("Status = %+v, %v; want addr 127.0.0.21:%d", st, err, res.Port)
	}
	if _, err := NewAgentAt(tr, st.Addr, o.Token, nil).Node(context.Background()); err != nil {
		t.Errorf("GET /v1/node at %s: %v", st.Addr, err)
	}
}

// TestUninstallKeepsADataDirItDidNotCreate points the data directory at an
// existing directory: Uninstall removes the install but not the user's data.
func TestUninstallKeepsADataDirItDidNotCreate(t *testing.T) {
	t.Parallel()
	tr := &LocalTransport{Name: "local-keep"}
	o := nodeOpts(t, bundleV1)
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(o.DataDir, "precious.txt")
	if err := os.WriteFile(precious, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	uninstallOnCleanup(t, tr, o)
	install(t, tr, o)
	if err := Uninstall(context.Background(), tr, o); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Errorf("Uninstall removed a data directory it did not create: %v", err)
	}
	if _, err := os.Stat(o.Prefix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("prefix after Uninstall: %v, want not exist", err)
	}

	// A prefix holding someone else's files is refused, so that Uninstall
	// can never remove them.
	o.Prefix = o.DataDir
	_, err := Install(context.Background(), tr, o)
	if PhaseOf(err) != PhaseBundle || !strings.Contains(err.Error(), "not a Hadron install") {
		t.Errorf("Install into a foreign directory: err = %v, want a refusal", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Errorf("refused install touched the directory: %v", err)
	}
}
