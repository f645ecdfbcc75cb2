package local

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

var hadrond string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hadrond-bin")
	if err != nil {
		panic(err)
	}
	hadrond = filepath.Join(dir, "hadrond")
	out, err := exec.Command("go", "build", "-o", hadrond, "../../../runtime/cmd/hadrond").CombinedOutput()
	if err != nil {
		panic("building hadrond: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newBackend(t *testing.T, runtime string) *Backend {
	t.Helper()
	b, err := New(Config{DataDir: t.TempDir(), RuntimePath: runtime, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLifecycle(t *testing.T) {
	b := newBackend(t, hadrond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst, err := b.Create(ctx, cloud.Spec{Name: "n1", IdempotencyKey: "k1", Tags: map[string]string{"team": "ml"}})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Name != "n1" || inst.Tags["team"] != "ml" || inst.Tags["hadron:managed-by"] != "hadron" {
		t.Errorf("instance: got name %q tags %v", inst.Name, inst.Tags)
	}
	req, _ := http.NewRequest("GET", inst.Endpoint+"/v1/node", nil)
	req.Header.Set("Authorization", "Bearer "+inst.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"runtime_version"`) {
		t.Errorf("GET /v1/node: got %d %s", resp.StatusCode, body)
	}

	again, err := b.Create(ctx, cloud.Spec{Name: "n1", IdempotencyKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != inst.ID {
		t.Errorf("create with the same idempotency key: got node %s, want the existing %s", again.ID, inst.ID)
	}

	pid, err := readPID(b.nodeDir(inst.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = b.Get(ctx, inst.ID)
		if errors.Is(err, cloud.ErrNotFound) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(err, cloud.ErrNotFound) {
		t.Fatalf("get after the agent was killed: got %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.nodeDir(inst.ID)); !os.IsNotExist(err) {
		t.Errorf("node directory left after delete: %v", err)
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Errorf("delete of a gone node: got %v, want nil", err)
	}
}

func TestDeleteStopsAgent(t *testing.T) {
	b := newBackend(t, hadrond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst, err := b.Create(ctx, cloud.Spec{Name: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := readPID(b.nodeDir(inst.ID))
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	if alive(pid, b.nodeDir(inst.ID)) {
		t.Errorf("agent pid %d still running after delete", pid)
	}
}

func TestCreateDiagnosesCrash(t *testing.T) {
	script := filepath.Join(t.TempDir(), "crashing-hadrond")
	// Writes its pid like the agent does, complains and exits.
	src := "#!/bin/sh\ndir=$(dirname \"$3\")\necho $$ > \"$dir/agent.pid\"\necho 'fatal: cannot load ORT library' >&2\nexit 3\n"
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, script)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := b.Create(ctx, cloud.Spec{Name: "bad"})
	if err == nil || !strings.Contains(err.Error(), "cannot load ORT library") {
		t.Fatalf("got %v, want an error quoting the agent log", err)
	}
	entries, _ := os.ReadDir(b.nodesDir())
	if len(entries) != 0 {
		t.Errorf("failed create left %d node directories", len(entries))
	}
}

func TestGetRejectsBadIDs(t *testing.T) {
	b := newBackend(t, hadrond)
	for _, id := range []string{"../etc", "i-123", "local-../x"} {
		if _, err := b.Get(context.Background(), id); !errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("Get(%q): got %v, want ErrNotFound", id, err)
		}
	}
}

func TestRestartKeepsEndpoint(t *testing.T) {
	b := newBackend(t, hadrond)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inst, err := b.Create(ctx, cloud.Spec{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Delete(ctx, inst.ID)
	oldPID, _ := readPID(b.nodeDir(inst.ID))
	v, err := b.RuntimeVersion(ctx)
	if err != nil || v == "" {
		t.Fatalf("RuntimeVersion: %q, %v", v, err)
	}
	again, err := b.Restart(ctx, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	newPID, _ := readPID(b.nodeDir(inst.ID))
	if newPID == oldPID || alive(oldPID, b.nodeDir(inst.ID)) {
		t.Errorf("agent not restarted: pid %d -> %d", oldPID, newPID)
	}
	if again.Endpoint != inst.Endpoint || again.Token != inst.Token {
		t.Errorf("restart moved the node: %s -> %s", inst.Endpoint, again.Endpoint)
	}
}
