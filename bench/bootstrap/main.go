// Command bootstrap benchmarks bootstrapping the node runtime over SSH
// against real OpenSSH servers on loopback (127.0.0.2 and up): one node
// alone, then N nodes concurrently, each a fresh install (uninstalled in
// between). It reports wall times, their ratio (target: N=8 within 2x of one
// node), the bytes each node's SSH connection carried, the bundle size, and
// the time of a no-op re-run; and writes them into docs/benchmarks.md between
// the bench-bootstrap markers.
//
//	go run ./bench/bootstrap [-nodes 8] [-reps 3] [-out docs/benchmarks.md]
//
// It needs root, /usr/sbin/sshd and HADRON_ORT_LIBRARY (make bench-bootstrap
// provides them); HADRON_ORT_LIBRARY_ARM64 and aarch64-linux-gnu-gcc add the
// arm64 bundle's size.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap"
	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap/sshdtest"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/bootstrap:", err)
		os.Exit(1)
	}
}

type sample struct {
	wall time.Duration
	// busy is the machine's CPU busy time during the run, in core-seconds
	// (from /proc/stat: everything running here, not only this benchmark).
	busy     float64
	sent     []int64
	received []int64
	phases   []bootstrap.PhaseTime
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	nodes := fs.Int("nodes", 8, "nodes bootstrapped concurrently (at most 200)")
	reps := fs.Int("reps", 3, "repetitions; the median is reported")
	out := fs.String("out", "docs/benchmarks.md", "markdown file whose bench-bootstrap section is replaced; empty: print only")
	module := fs.String("module", ".", "repository root")
	rtt := fs.Duration("rtt", 50*time.Millisecond, "round-trip time of the simulated distant node (0: skip that run)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 200 || *reps < 1 {
		return errors.New("-nodes must be 1..200 and -reps at least 1")
	}
	if err := sshdtest.Available(); err != nil {
		return err
	}
	ort := getenv("HADRON_ORT_LIBRARY")
	if ort == "" {
		return errors.New("HADRON_ORT_LIBRARY is not set: run make bench-bootstrap or export HADRON_ORT_LIBRARY=$(bash internal/tools/prereqs.sh env | sed -n 's/^HADRON_ORT_LIBRARY=//p')")
	}
	tmp, err := os.MkdirTemp("", "hadron-bench-bootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Fprintln(stdout, "building the runtime bundle ...")
	root, err := filepath.Abs(*module)
	if err != nil {
		return err
	}
	buildStart := time.Now()
	bundle, err := bootstrap.BuildBundle(ctx, bootstrap.BuildOptions{
		Version: "0.0.0-bench", OutDir: filepath.Join(tmp, "bundle"), ModuleDir: root,
		Arches: []string{runtime.GOARCH}, ORTLibraries: map[string]string{runtime.GOARCH: ort},
	})
	if err != nil {
		return err
	}
	buildTook := time.Since(buildStart)
	// The other architecture's bundle is built only for its size.
	other, otherNote := "arm64", ""
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	var otherBundle *bootstrap.Bundle
	if lib := getenv("HADRON_ORT_LIBRARY_ARM64"); other == "arm64" && lib != "" {
		otherBundle, err = bootstrap.BuildBundle(ctx, bootstrap.BuildOptions{
			Version: "0.0.0-bench", OutDir: filepath.Join(tmp, "bundle-"+other), ModuleDir: root,
			Arches: []string{other}, ORTLibraries: map[string]string{other: lib},
		})
		if err != nil {
			otherNote = firstLine(err.Error())
		}
	} else {
		otherNote = "not built (set HADRON_ORT_LIBRARY_ARM64 on an amd64 machine)"
	}

	fmt.Fprintf(stdout, "starting %d sshd nodes ...\n", *nodes)
	var ns []*sshdtest.Node
	defer func() {
		for _, n := range ns {
			n.Stop()
		}
	}()
	for i := 0; i < *nodes; i++ {
		dir := filepath.Join(tmp, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		n, err := sshdtest.Start(dir, fmt.Sprintf("127.0.0.%d", i+2), sshdtest.Options{})
		if err != nil {
			return err
		}
		ns = append(ns, n)
	}
	targets := make([]bootstrap.Target, len(ns))
	for i, n := range ns {
		targets[i] = bootstrap.Target{
			SSH: bootstrap.SSHConfig{Host: n.Host, Port: n.Port, User: "root", PrivateKey: n.UserKeyPEM, HostKeyFingerprint: n.Fingerprint},
			Options: bootstrap.Options{
				Bundle: bundle, Token: "bench-token",
				Prefix: filepath.Join(n.Dir, "opt"), DataDir: filepath.Join(n.Dir, "data"), User: "root",
				Service: bootstrap.ServiceSupervised, Listen: "127.0.0.1:0", PollInterval: 50 * time.Millisecond,
			},
		}
	}

	measure := func(ts []bootstrap.Target) (sample, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		busy0 := cpuBusy()
		start := time.Now()
		outs := bootstrap.BootstrapAll(cctx, ts)
		s := sample{wall: time.Since(start), busy: cpuBusy() - busy0}
		var errs []error
		for _, o := range outs {
			if o.Err != nil {
				errs = append(errs, o.Err)
				continue
			}
			st := o.Transport.Stats()
			s.sent = append(s.sent, st.BytesSent)
			s.received = append(s.received, st.BytesReceived)
			if s.phases == nil {
				s.phases = o.Result.Phases
			}
			o.Transport.Close()
		}
		return s, errors.Join(errs...)
	}
	uninstall := func(ts []bootstrap.Target) error {
		outs := make(chan error, len(ts))
		for _, tg := range ts {
			go func() {
				t, err := bootstrap.DialSSH(ctx, tg.SSH)
				if err != nil {
					outs <- err
					return
				}
				defer t.Close()
				outs <- bootstrap.Uninstall(ctx, t, tg.Options)
			}()
		}
		var errs []error
		for range ts {
			errs = append(errs, <-outs)
		}
		return errors.Join(errs...)
	}

	var one, many, rerun []sample
	for r := 0; r < *reps; r++ {
		s1, err := measure(targets[:1])
		if err != nil {
			return fmt.Errorf("1 node: %w", err)
		}
		one = append(one, s1)
		sr, err := measure(targets[:1])
		if err != nil {
			return fmt.Errorf("1 node re-run: %w", err)
		}
		rerun = append(rerun, sr)
		if err := uninstall(targets[:1]); err != nil {
			return err
		}
		sn, err := measure(targets)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", len(targets), err)
		}
		many = append(many, sn)
		if err := uninstall(targets); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rep %d: 1 node %s, %d nodes %s, re-run %s\n", r+1, s1.wall.Round(time.Millisecond), len(targets), sn.wall.Round(time.Millisecond), sr.wall.Round(time.Millisecond))
	}

	var wan []sample
	if *rtt > 0 {
		p, err := startWANProxy("127.0.0.1", fmt.Sprintf("%s:%d", ns[0].Host, ns[0].Port), *rtt)
		if err != nil {
			return err
		}
		defer p.Close()
		tg := targets[0]
		tg.SSH.Host, tg.SSH.Port = "127.0.0.1", p.Addr().Port
		for r := 0; r < *reps; r++ {
			s, err := measure([]bootstrap.Target{tg})
			if err != nil {
				return fmt.Errorf("1 node at %s RTT: %w", *rtt, err)
			}
			wan = append(wan, s)
			if err := uninstall(targets[:1]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "rep %d: 1 node at %s RTT %s\n", r+1, *rtt, s.wall.Round(time.Millisecond))
		}
	}

	m1, mn, mr := median(one), median(many), median(rerun)
	var b strings.Builder
	cpu := cpuModel()
	fmt.Fprintf(&b, "## Bootstrap over SSH (bench-bootstrap)\n\n")
	fmt.Fprintf(&b, "`go run ./bench/bootstrap -nodes %d -reps %d` on %s: %d CPUs (%s), %s. Nodes are real OpenSSH sshd processes on 127.0.0.2..%d of this same machine (each its own prefix, port and data dir, supervised-process mode); every run is a fresh install from SSH connect to `GET /v1/node` answering through the tunnel. Median of %d repetitions.\n\n",
		*nodes, *reps, hostname(), runtime.NumCPU(), cpu, time.Now().UTC().Format("2006-01-02 15:04 UTC"), *nodes+1, *reps)
	b.WriteString("| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| 1 node, wall | %s |\n", m1.wall.Round(time.Millisecond))
	fmt.Fprintf(&b, "| %d nodes concurrently, wall | %s |\n", *nodes, mn.wall.Round(time.Millisecond))
	fmt.Fprintf(&b, "| ratio %d nodes / 1 node (target <= 2.0) | %.2f |\n", *nodes, float64(mn.wall)/float64(m1.wall))
	fmt.Fprintf(&b, "| machine CPU busy during the 1-node run / %d-node run (core-seconds, all processes) | %.1f / %.1f of %.1f / %.1f available |\n",
		*nodes, m1.busy, mn.busy, m1.wall.Seconds()*float64(runtime.NumCPU()), mn.wall.Seconds()*float64(runtime.NumCPU()))
	// With every node on this machine, N nodes cannot finish faster than the
	// CPU work they need spread over all cores.
	floor := mn.busy / float64(runtime.NumCPU())
	if floor > 0 {
		fmt.Fprintf(&b, "| %d-node wall / CPU floor (busy core-seconds / CPUs = %.1fs; 1.0 = no serialisation) | %.2f |\n", *nodes, floor, mn.wall.Seconds()/floor)
	}
	if len(wan) > 0 {
		mw := median(wan)
		fmt.Fprintf(&b, "| 1 node behind a %s round trip (delaying proxy), wall | %s |\n", *rtt, mw.wall.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "| re-run with the same version (unchanged), 1 node | %s |\n", mr.wall.Round(time.Millisecond))
	fmt.Fprintf(&b, "| bytes sent per node (fresh install) | %s |\n", mib(avg(mn.sent)))
	fmt.Fprintf(&b, "| bytes received per node (fresh install) | %s |\n", mib(avg(mn.received)))
	fmt.Fprintf(&b, "| bytes sent, re-run | %s |\n", mib(avg(mr.sent)))
	fmt.Fprintf(&b, "| bundle size linux/%s (hadrond + libonnxruntime.so.1) | %s |\n", runtime.GOARCH, mib(bundle.Size(runtime.GOARCH)))
	if otherBundle != nil {
		fmt.Fprintf(&b, "| bundle size linux/%s (hadrond + libonnxruntime.so.1) | %s |\n", other, mib(otherBundle.Size(other)))
	} else {
		fmt.Fprintf(&b, "| bundle size linux/%s | %s |\n", other, strings.ReplaceAll(otherNote, "|", "/"))
	}
	fmt.Fprintf(&b, "| bundle build (cross-compile + manifest) | %s |\n", buildTook.Round(time.Millisecond))
	b.WriteString("\nPhases of the median single-node install: ")
	var ps []string
	for _, p := range m1.phases {
		ps = append(ps, fmt.Sprintf("%s %s", p.Phase, p.Took.Round(time.Millisecond)))
	}
	b.WriteString(strings.Join(ps, ", ") + ".\n\n")
	b.WriteString("All nodes share this machine's CPUs: every byte is encrypted by the provider side and decrypted by a local sshd, so the N-node run measures contention on these cores as well as the absence of serialisation in the bootstrap (each node has its own goroutine, connection and SFTP session; there is no shared lock). On real nodes the sshd side runs on each node's own CPUs.\n")

	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, b.String())
	if *out != "" {
		if err := writeSection(*out, "bench-bootstrap", b.String()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nwrote the bench-bootstrap section of %s\n", *out)
	}
	return nil
}

// cpuBusy returns the machine's total non-idle CPU time so far, in seconds.
func cpuBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		var x float64
		fmt.Sscan(v, &x)
		busy += x
	}
	return busy / 100 // USER_HZ
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func median(s []sample) sample {
	sort.Slice(s, func(i, j int) bool { return s[i].wall < s[j].wall })
	return s[len(s)/2]
}

func avg(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	var t int64
	for _, x := range v {
		t += x
	}
	return t / int64(len(v))
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "this machine"
	}
	return h
}

// writeSection replaces the text between <!-- BEGIN name --> and
// <!-- END name --> in file (appending the section when absent, creating the
// file when missing).
func writeSection(file, name, body string) error {
	begin, end := "<!-- BEGIN "+name+" -->", "<!-- END "+name+" -->"
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	section := begin + "\n" + body + end + "\n"
	var out []byte
	i, j := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	switch {
	case i >= 0 && j > i:
		rest := old[j+len(end):]
		rest = bytes.TrimPrefix(rest, []byte("\n"))
		out = append(append(append([]byte{}, old[:i]...), section...), rest...)
	case len(old) == 0:
		out = []byte("# Benchmarks\n\n" + section)
	default:
		out = append(bytes.TrimRight(old, "\n"), []byte("\n\n"+section)...)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}
