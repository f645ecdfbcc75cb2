// Command fakeec2 runs the fake EC2 endpoint (package fakeec2) as its own
// process, so that a test can kill the client (terraform, the provider) while
// the fake keeps its state. It listens on a loopback port, prints
//
//	FAKEEC2_URL=http://127.0.0.1:PORT
//
// as its first line on stdout, persists nothing, and serves until it receives
// SIGINT or SIGTERM or its stdin is closed (-exit-on-stdin-eof). The JSON admin
// API is under /admin/ (see the package documentation of fakeec2).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fakeec2:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("fakeec2", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "loopback `address` to listen on")
	access := fs.String("access-key", "AKIDFAKEEC2TEST", "access key id the fake accepts")
	secret := fs.String("secret-key", "fake-ec2-secret", "secret access key the fake accepts")
	token := fs.String("session-token", "", "session token the fake requires (optional)")
	pending := fs.Int("pending-polls", 0, "DescribeInstances polls an instance stays pending")
	shutting := fs.Int("shutting-down-polls", 0, "DescribeInstances polls an instance stays shutting-down")
	publicIPs := fs.String("public-ips", "", "comma-separated public IPs for the next instances, in order")
	defaultIP := fs.String("default-public-ip", "", "public IP of every instance once the -public-ips are used up")
	eof := fs.Bool("exit-on-stdin-eof", false, "exit when stdin is closed (the parent died)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv, err := fakeec2.Start(fakeec2.Config{
		AccessKeyID: *access, SecretAccessKey: *secret, SessionToken: *token,
		PendingPolls: *pending, ShuttingDownPolls: *shutting,
	}, *addr)
	if err != nil {
		return err
	}
	defer srv.Close()
	if *publicIPs != "" {
		srv.QueuePublicIPs(strings.Split(*publicIPs, ",")...)
	}
	srv.SetDefaultPublicIP(*defaultIP)
	if _, err := fmt.Fprintf(stdout, "FAKEEC2_URL=%s\n", srv.URL); err != nil {
		return err
	}
	if *eof {
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
		}
		return nil
	}
	<-ctx.Done()
	return nil
}
