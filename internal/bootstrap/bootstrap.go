package bootstrap

import (
	"context"
	"sync"
	"time"
)

// Target is one node to bootstrap over SSH.
type Target struct {
	SSH     SSHConfig
	Options Options
}

// Outcome is the result of bootstrapping one Target.
type Outcome struct {
	// Result is nil when Err is set.
	Result *Result
	// HostKeyFingerprint is the node's host key as seen ("SHA256:..."), set
	// whenever SSH got that far, so a trust-on-first-use caller records it
	// even when a later phase fails.
	HostKeyFingerprint string
	Err                error
	// Transport stays open after success so that the caller can keep using
	// Result.Agent; the caller closes it. It is nil when Err is set.
	Transport *SSHTransport
}

// Bootstrap connects to one node over SSH (waiting for sshd until ctx ends)
// and runs Install. On success the transport is left open in the outcome.
func Bootstrap(ctx context.Context, target Target) Outcome {
	start := time.Now()
	t, err := DialSSH(ctx, target.SSH)
	if err != nil {
		return Outcome{Err: err}
	}
	if target.Options.OnPhase != nil {
		target.Options.OnPhase(t.Node(), PhaseSSH, time.Since(start))
	}
	res, err := Install(ctx, t, target.Options)
	if err != nil {
		t.Close()
		return Outcome{HostKeyFingerprint: t.HostKeyFingerprint(), Err: err}
	}
	return Outcome{Result: res, HostKeyFingerprint: t.HostKeyFingerprint(), Transport: t}
}

// BootstrapAll bootstraps every target concurrently (one goroutine each, no
// shared lock) and returns the outcomes in the targets' order.
func BootstrapAll(ctx context.Context, targets []Target) []Outcome {
	out := make([]Outcome, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = Bootstrap(ctx, tg)
		}()
	}
	wg.Wait()
	return out
}
