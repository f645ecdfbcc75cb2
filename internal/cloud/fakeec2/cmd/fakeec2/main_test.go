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

func TestRunPrintsURLAndServesAdminAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-exit-on-stdin-eof", "-public-ips", "127.0.0.2,127.0.0.3"}, stdinR, outW)
		outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL line: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "FAKEEC2_URL=http://127.0.0.1:")
	if !ok || url == "" {
		t.Fatalf("first line = %q, want FAKEEC2_URL=http://127.0.0.1:PORT", line)
	}
	base := strings.TrimPrefix(strings.TrimSpace(line), "FAKEEC2_URL=")
	resp, err := http.Get(base + "/admin/instances")
	if err != nil {
		t.Fatal(err)
	}
	var list []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 || len(list) != 0 {
		t.Errorf("GET /admin/instances = %d %v %v, want 200 and an empty list", resp.StatusCode, list, err)
	}
	resp.Body.Close()
	stdinW.Close() // the parent went away
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("run did not return after stdin closed")
	}
}

func TestRunRejectsNonLoopback(t *testing.T) {
	err := run(context.Background(), []string{"-listen", "0.0.0.0:0"}, strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("run -listen 0.0.0.0:0: err = %v, want a loopback error", err)
	}
}
