package aws

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
)

// childEnv makes the test binary act as a process that runs one Create
// against the fake at that URL (see TestMain), so a test can SIGKILL it.
const childEnv = "HADRON_AWS_TEST_CREATE_AT"

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		os.Exit(runCreateChild(url))
	}
	os.Exit(m.Run())
}

func runCreateChild(url string) int {
	b, err := New(context.Background(), Config{Region: "us-east-1", EC2Endpoint: url, AccessKey: testAccessKey,
		SecretKey: testSecretKey, PollInterval: time.Millisecond, RetryMaxBackoff: time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	inst, err := b.Create(context.Background(), baseSpec("killed", zones("a", "b")...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(inst.ID)
	return 0
}

// TestCreateAfterSIGKILL kills a process right after its RunInstances
// reached EC2 (the answer is withheld), then creates again from another
// process: exactly one instance exists.
func TestCreateAfterSIGKILL(t *testing.T) {
	srv := startFake(t, fakeec2.Config{})
	srv.SetFaults(fakeec2.Faults{HoldRunInstances: true})
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+srv.URL)
	if err := child.Start(); err != nil {
		t.Fatalf("starting the child: %v", err)
	}
	if err := srv.WaitForCalls(testCtx(t), "RunInstances", 1); err != nil {
		_ = child.Process.Kill()
		t.Fatal(err)
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	if err := child.Wait(); err == nil {
		t.Fatalf("the child finished before it was killed")
	}
	srv.Release()

	b := newBackend(t, testConfig(srv))
	inst, err := b.Create(testCtx(t), baseSpec("killed", zones("a", "b")...))
	if err != nil {
		t.Fatalf("Create after the kill: %v", err)
	}
	all := srv.Instances()
	if len(all) != 1 || all[0].ID != inst.ID {
		t.Fatalf("instances = %+v, want exactly %s", all, inst.ID)
	}
}
