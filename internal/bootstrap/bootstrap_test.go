package bootstrap

import (
	"context"
	"testing"
	"time"
)

func TestBootstrapAllConcurrently(t *testing.T) {
	t.Parallel()
	hosts := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	var targets []Target
	for _, h := range hosts {
		n := startNode(t, h, nodeOptions{})
		o := nodeOpts(t, bundleV1)
		targets = append(targets, Target{SSH: n.sshConfig(), Options: o})
		t.Cleanup(func() {
			tr := n.dial(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := Uninstall(ctx, tr, o); err != nil {
				t.Errorf("Uninstall(%s): %v", h, err)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	outcomes := BootstrapAll(ctx, targets)
	seen := map[string]bool{}
	for i, oc := range outcomes {
		if oc.Err != nil {
			t.Errorf("node %s: %v", hosts[i], oc.Err)
			continue
		}
		defer oc.Transport.Close()
		if oc.HostKeyFingerprint == "" || seen[oc.HostKeyFingerprint] {
			t.Errorf("node %s: host key fingerprint %q, want a distinct one per node", hosts[i], oc.HostKeyFingerprint)
		}
		seen[oc.HostKeyFingerprint] = true
		if oc.Result.Change != ChangeInstalled || oc.Result.Info.RuntimeVersion != testVersion1 {
			t.Errorf("node %s: %s, runtime %q", hosts[i], oc.Result, oc.Result.Info.RuntimeVersion)
		}
		// The agent stays reachable through the open transport afterwards.
		if _, err := oc.Result.Agent.Node(ctx); err != nil {
			t.Errorf("node %s: GET /v1/node after bootstrap: %v", hosts[i], err)
		}
	}
	if len(seen) != len(hosts) {
		t.Fatalf("%d of %d nodes bootstrapped", len(seen), len(hosts))
	}
}
