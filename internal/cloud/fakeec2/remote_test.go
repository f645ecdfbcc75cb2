package fakeec2

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestRemoteMirrorsHooks(t *testing.T) {
	srv := start(t, Config{})
	r := &Remote{URL: srv.URL}
	ctx := ctxT(t)
	c := client(srv, "us-east-1", testAccess, testSecret, "")
	if err := r.QueuePublicIPs(ctx, "127.0.0.9"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetFaults(ctx, Faults{Capacity: []CapacityFault{{Zone: "us-east-1a", Count: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunInstances(ctx, runInput("", "us-east-1a")); code(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("RunInstances err = %v, want the injected capacity error", err)
	}
	out, err := c.RunInstances(ctx, runInput("", "us-east-1a"))
	if err != nil {
		t.Fatalf("RunInstances after the one-shot fault: %v", err)
	}
	id := *out.Instances[0].InstanceId
	if err := r.WaitForCalls(ctx, "RunInstances", 2); err != nil {
		t.Fatal(err)
	}
	live, err := r.LiveInstances(ctx)
	if err != nil || len(live) != 1 || live[0].ID != id || live[0].PublicIP != "127.0.0.9" {
		t.Fatalf("LiveInstances = %+v, %v; want %s with 127.0.0.9", live, err, id)
	}
	if err := r.Terminate(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if live, _ := r.LiveInstances(ctx); len(live) != 0 {
		t.Errorf("LiveInstances after Terminate = %+v, want none", live)
	}
	calls, err := r.Calls(ctx)
	if err != nil || len(calls) != 2 || calls[0].Code != "InsufficientInstanceCapacity" || calls[1].InstanceID != id {
		t.Errorf("Calls = %+v, %v", calls, err)
	}
	if err := r.SetDefaultPublicIP(ctx, "127.0.0.3"); err != nil {
		t.Fatal(err)
	}
	out2, err := c.RunInstances(ctx, runInput("", "us-east-1b"))
	if err != nil {
		t.Fatal(err)
	}
	if ip := *out2.Instances[0].PublicIpAddress; ip != "127.0.0.3" {
		t.Errorf("public IP after SetDefaultPublicIP = %s, want 127.0.0.3", ip)
	}
	if err := r.SetPolls(ctx, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Terminate(ctx, "i-unknown", false); err == nil {
		t.Errorf("Terminate of an unknown id: want an error")
	}
	if g, err := r.SecurityGroups(ctx); err != nil || len(g) != 2 {
		t.Errorf("SecurityGroups = %d, %v; want the 2 default groups", len(g), err)
	}
	if k, err := r.KeyPairs(ctx); err != nil || len(k) != 0 {
		t.Errorf("KeyPairs = %v, %v; want none", k, err)
	}
}

func TestStartProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fakeec2")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(goTool, "build", "-o", bin, "./cmd/fakeec2")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/fakeec2: %v\n%s", err, out)
	}
	p, err := StartProcess(ctxT(t), bin, "-access-key", testAccess, "-secret-key", testSecret, "-public-ips", "127.0.0.2")
	if err != nil {
		t.Fatalf("StartProcess: %v", err)
	}
	defer p.Close()
	c := client(&Server{URL: p.URL}, "us-east-1", testAccess, testSecret, "")
	if _, err := c.RunInstances(ctxT(t), runInput("tok", "")); err != nil {
		t.Fatalf("RunInstances against the process: %v", err)
	}
	live, err := p.LiveInstances(ctxT(t))
	if err != nil || len(live) != 1 || live[0].PublicIP != "127.0.0.2" {
		t.Errorf("LiveInstances = %+v, %v; want one instance with 127.0.0.2", live, err)
	}
}
