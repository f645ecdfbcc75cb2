package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// ErrNotInstalled is returned (wrapped) by Status when the node has no
// runtime installed under the prefix.
var ErrNotInstalled = errors.New("hadron runtime not installed")

// Installed is what Status finds on a node: enough for a refresh to show a
// dead agent or another runtime version as drift.
type Installed struct {
	Version string
	Prefix  string
	User    string
	Service ServiceMode
	// Running says the service (systemd unit or supervisor) is up.
	Running bool
	// Port is the agent's listening port, 0 when it is not listening; Addr
	// is host:port to dial from the node (NewAgentAt).
	Port int
	Addr string
	// Restarts counts agent exits since the last (re)start by Install.
	Restarts int
}

// Status reads what Install left on the node behind t (Options.Prefix as for
// Install; Bundle is not needed). It returns an error wrapping
// ErrNotInstalled when nothing is there.
func Status(ctx context.Context, t Transport, o Options) (*Installed, error) {
	in := &installer{t: t, o: o, node: t.Node(), res: &Result{}, mark: time.Now()}
	in.o.ExpectGPUs = false
	if err := in.detect(ctx); err != nil {
		return nil, err
	}
	if err := in.planForRemoval(); err != nil {
		return nil, fmt.Errorf("reading the runtime status on %s: %w", in.node, err)
	}
	out, err := in.sh(ctx, fmt.Sprintf("cat %s/state 2>/dev/null || true\n", shellQuote(in.l.prefix)))
	if err != nil {
		return nil, fmt.Errorf("reading the runtime status on %s: %w", in.node, err)
	}
	st := map[string]string{}
	for _, kv := range parseKV(out) {
		st[kv[0]] = kv[1]
	}
	if st["version"] == "" {
		return nil, fmt.Errorf("node %s, prefix %s: %w", in.node, in.l.prefix, ErrNotInstalled)
	}
	in.l.service = ServiceMode(st["service"])
	in.l.serviceName = st["service_name"]
	out, err = in.sh(ctx, in.statusScript())
	if err != nil {
		return nil, fmt.Errorf("reading the runtime status on %s: %w", in.node, err)
	}
	res := &Installed{Version: st["version"], Prefix: in.l.prefix, User: st["user"], Service: in.l.service}
	for _, kv := range parseKV(out) {
		switch kv[0] {
		case "running":
			res.Running = true
		case "restarts":
			res.Restarts, _ = strconv.Atoi(kv[1])
		case "addr":
			if host, p, err := agentAddr(kv[1]); err == nil {
				res.Port, res.Addr = p, net.JoinHostPort(host, strconv.Itoa(p))
			}
		}
	}
	return res, nil
}
