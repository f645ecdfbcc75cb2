package provider

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"golang.org/x/crypto/ssh"
)

// Helpers shared by the acceptance tests that point the provider at the
// wire-level cloud fakes (internal/cloud/fakeec2, internal/cloud/fakeecs).

// regionEnvVars are the environment variables the provider reads a default
// region from; the missing-region tests hide them.
var regionEnvVars = []string{"AWS_REGION", "AWS_DEFAULT_REGION", "ALIBABA_CLOUD_REGION_ID", "ALIBABA_CLOUD_REGION"}

// providerFactoriesHiding serves the provider in-process like
// testAccProtoV6ProviderFactories, but with an environment in which the
// named variables are unset. The provider reads its environment only through
// its getenv, so parallel tests need not (and may not) call t.Setenv.
func providerFactoriesHiding(names ...string) map[string]func() (tfprotov6.ProviderServer, error) {
	getenv := func(k string) string {
		for _, n := range names {
			if k == n {
				return ""
			}
		}
		return os.Getenv(k)
	}
	return map[string]func() (tfprotov6.ProviderServer, error){
		"hadron": providerserver.NewProtocol6WithError(&hadronProvider{version: "test", getenv: getenv}),
	}
}

// testSSHPublicKey returns a fresh ed25519 public key in authorized_keys
// format, for the key pairs Hadron imports.
func testSSHPublicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generating an ssh key: %v", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("encoding the ssh key: %v", err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " acc-test"
}

// diagRE matches a diagnostic made of parts in order, whatever the line
// wrapping terraform applies to it.
func diagRE(parts ...string) *regexp.Regexp {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = strings.Join(strings.Fields(regexp.QuoteMeta(p)), `\s+`)
	}
	return regexp.MustCompile(`(?s)` + strings.Join(q, `.*`))
}

// captureID stores the resource's id into *dst.
func captureID(name string, dst *string) func(*terraform.State) error {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s is not in state", name)
		}
		*dst = rs.Primary.ID
		return nil
	}
}

// checkLandedPrice verifies that hourly_price is the price of the pinned
// candidate matching where the instance landed (zone and instance type).
func checkLandedPrice(name string) func(*terraform.State) error {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s is not in state", name)
		}
		a := rs.Primary.Attributes
		n, _ := strconv.Atoi(a["candidates.#"])
		for i := range n {
			p := fmt.Sprintf("candidates.%d.", i)
			if a[p+"zone"] == a["zone"] && a[p+"instance_type"] == a["instance_type"] {
				if a[p+"hourly_price"] != a["hourly_price"] {
					return fmt.Errorf("hourly_price = %s, want %s (candidate %d, where it landed)", a["hourly_price"], a[p+"hourly_price"], i)
				}
				return nil
			}
		}
		return fmt.Errorf("no candidate matches zone %s and instance_type %s (%d candidates)", a["zone"], a["instance_type"], n)
	}
}

// cliRun runs the real terraform CLI as a child process, in its own process
// group, against a provider binary built from this repository and installed
// through a dev_overrides CLI configuration: what a user's shell does, so a
// test can SIGKILL terraform and the provider together.
type cliRun struct {
	terraform string   // the CLI's path
	dir       string   // working directory holding main.tf and the state
	env       []string // environment of every command
}

// newCLIRun builds the provider into a temporary directory and prepares a
// working directory with config as main.tf. Like the harness's tests, it
// needs TF_ACC=1 (make test and make testacc set it) and the terraform CLI
// (TF_ACC_TERRAFORM_PATH, else terraform on PATH).
func newCLIRun(t *testing.T, config string) *cliRun {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 (make testacc, make test) to run the terraform CLI")
	}
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tf == "" {
		var err error
		if tf, err = exec.LookPath("terraform"); err != nil {
			t.Fatalf("no terraform CLI: set TF_ACC_TERRAFORM_PATH or run bash internal/tools/prereqs.sh terraform: %v", err)
		}
	}
	tmp := t.TempDir()
	pluginDir := filepath.Join(tmp, "plugins")
	build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "terraform-provider-hadron"), "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the provider: %v\n%s", err, out)
	}
	rc := filepath.Join(tmp, "terraformrc")
	// Both registries' addresses: terraform resolves "hadron-ai/hadron" on
	// registry.terraform.io, tofu on registry.opentofu.org.
	rcText := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    %q = %q\n    %q = %q\n  }\n  direct {}\n}\n",
		"registry.terraform.io/hadron-ai/hadron", pluginDir, "registry.opentofu.org/hadron-ai/hadron", pluginDir)
	if err := os.WriteFile(rc, []byte(rcText), 0o600); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(tmp, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "main.tf"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TF_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_DATA_DIR="+filepath.Join(tmp, "tfdata"), "HOME="+tmp)
	return &cliRun{terraform: tf, dir: work, env: env}
}

// command returns terraform with args, in its own process group.
func (r *cliRun) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.terraform, append(args, "-no-color")...)
	cmd.Dir = r.dir
	cmd.Env = r.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// run runs terraform with args to completion and fails the test on error.
func (r *cliRun) run(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := r.command(ctx, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// killed starts terraform with args, waits for reached (the fake saw the
// call of interest), then SIGKILLs terraform's whole process group, the
// provider plugin included, and returns terraform's output.
func (r *cliRun) killed(t *testing.T, ctx context.Context, reached func(context.Context) error, args ...string) string {
	t.Helper()
	var out strings.Builder
	cmd := r.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting terraform: %v", err)
	}
	waitErr := reached(ctx)
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Errorf("killing terraform's process group: %v", err)
	}
	err := cmd.Wait()
	if waitErr != nil {
		t.Fatalf("waiting for the call to reach the fake: %v\nterraform output:\n%s", waitErr, out.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); err == nil || !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("terraform was not killed by SIGKILL (exit: %v); it finished first:\n%s", err, out.String())
	}
	return out.String()
}

// stateIDs returns the ids of the hadron_gpu_instance resources in the
// working directory's state file (none when there is no state file).
func (r *cliRun) stateIDs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "terraform.tfstate"))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(b) == 0) {
		return nil // terraform creates the file empty and writes it at the end
	}
	if err != nil {
		t.Fatalf("reading the state: %v", err)
	}
	var st struct {
		Resources []struct {
			Type      string `json:"type"`
			Instances []struct {
				Attributes struct {
					ID string `json:"id"`
				} `json:"attributes"`
			} `json:"instances"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("decoding the state: %v", err)
	}
	var ids []string
	for _, res := range st.Resources {
		if res.Type != "hadron_gpu_instance" {
			continue
		}
		for _, in := range res.Instances {
			ids = append(ids, in.Attributes.ID)
		}
	}
	return ids
}

// testContext is a context ending with the test's deadline (less a margin
// for clean-up), or after ten minutes.
func testContext(t *testing.T) context.Context {
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-10*time.Second))
	t.Cleanup(cancel)
	return ctx
}
