// Command fakeecs runs the fake ECS OpenAPI on a loopback port for tests that
// drive a separate process (for example the Terraform CLI). It prints one line
// with its base URL ("http://127.0.0.1:PORT") to stdout once it listens, serves
// the ECS RPC API on "/" and the JSON admin API under "/_fake/", and exits
// when it receives SIGINT or SIGTERM.
//
// Flags: -addr (default 127.0.0.1:0; only loopback addresses are accepted),
// -access-key-id and -access-key-secret (default the fakeecs test
// credentials), -security-token (require this STS token), -steps-per-state,
// -instant (no Pending/Stopping states, for slowly polling clients).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fakeecs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakeecs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	keyID := fs.String("access-key-id", fakeecs.TestAccessKeyID, "access key id to accept")
	secret := fs.String("access-key-secret", fakeecs.TestAccessKeySecret, "access key secret to accept")
	token := fs.String("security-token", "", "STS security token to require (empty: none)")
	steps := fs.Int("steps-per-state", 1, "DescribeInstances calls an instance spends in each transitional state")
	instant := fs.Bool("instant", false, "create instances Running and release them at once on DeleteInstance")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("parsing -addr %q: %w", *addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: fakeecs only listens on loopback addresses", *addr)
	}
	srv := fakeecs.New(fakeecs.Options{
		Credentials:   []fakeecs.Credential{{AccessKeyID: *keyID, AccessKeySecret: *secret, SecurityToken: *token}},
		StepsPerState: *steps,
		Instant:       *instant,
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	fmt.Fprintf(stdout, "http://%s\n", l.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
