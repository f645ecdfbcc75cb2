package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRunPrintsURLAndServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-steps-per-state", "2"}, func(string) string { return "" }, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL line: %v", err)
	}
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("URL = %q, want http://127.0.0.1:PORT", url)
	}
	go io.Copy(io.Discard, pr)

	resp, err := http.Get(url + "/_fake/instances")
	if err != nil {
		t.Fatal(err)
	}
	var insts []any
	err = json.NewDecoder(resp.Body).Decode(&insts)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(insts) != 0 {
		t.Errorf("GET /_fake/instances = %d %v %v, want 200 []", resp.StatusCode, insts, err)
	}
	resp, err = http.Get(url + "/?Action=DescribeInstances")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unsigned RPC request = %d, want 400", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunRejectsNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:80", "example:1"} {
		err := run(context.Background(), []string{"-addr", addr}, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("run -addr %s = %v, want a loopback-only error", addr, err)
		}
	}
}
