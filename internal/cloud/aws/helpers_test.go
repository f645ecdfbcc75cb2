package aws

import (
	"context"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
)

const (
	testAccessKey = "AKIDHADRONTEST"
	testSecretKey = "hadron-test-secret"
	// testPublicKey is an ed25519 public key in authorized_keys format.
	testPublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXb1zBUa5W0dvA0bMpbyrjlqD6cdlAnmbw6Wg0nQ7Ga hadron@test"
)

// startFake starts a fake EC2 endpoint for the test.
func startFake(t *testing.T, cfg fakeec2.Config) *fakeec2.Server {
	t.Helper()
	cfg.AccessKeyID, cfg.SecretAccessKey = testAccessKey, testSecretKey
	srv, err := fakeec2.Start(cfg, "")
	if err != nil {
		t.Fatalf("starting fake EC2: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// testConfig points a backend at srv with fast polling and retries.
func testConfig(srv *fakeec2.Server) Config {
	return Config{
		Region:           "us-east-1",
		EC2Endpoint:      srv.URL,
		AccessKey:        testAccessKey,
		SecretKey:        testSecretKey,
		PollInterval:     time.Millisecond,
		MaxPollInterval:  5 * time.Millisecond,
		NotFoundTimeout:  10 * time.Second,
		CleanupTimeout:   5 * time.Second,
		RetryMaxAttempts: 5,
		RetryMaxBackoff:  2 * time.Millisecond,
	}
}

func newBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// setup starts a fake and a backend pointed at it.
func setup(t *testing.T, cfg fakeec2.Config) (*Backend, *fakeec2.Server) {
	t.Helper()
	srv := startFake(t, cfg)
	return newBackend(t, testConfig(srv)), srv
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// baseSpec is a spec with a managed security group and key pair.
func baseSpec(name string, cands ...cloud.Candidate) cloud.Spec {
	if len(cands) == 0 {
		cands = []cloud.Candidate{{Region: "us-east-1", Zone: "us-east-1a", InstanceType: "g5.xlarge"}}
	}
	return cloud.Spec{
		Name:           name,
		IdempotencyKey: "hadron_gpu_instance." + name,
		Candidates:     cands,
		AllowedCIDRs:   []string{"198.51.100.0/24"},
		SSHPublicKey:   testPublicKey,
		PublicIP:       true,
		RuntimePort:    7070,
		Tags:           map[string]string{"team": "ml"},
	}
}

func zones(letters ...string) []cloud.Candidate {
	out := make([]cloud.Candidate, 0, len(letters))
	for _, l := range letters {
		out = append(out, cloud.Candidate{Region: "us-east-1", Zone: "us-east-1" + l, InstanceType: "g5.xlarge"})
	}
	return out
}

// liveIDs returns the ids of the fake's live instances.
func liveIDs(srv *fakeec2.Server) []string {
	var ids []string
	for _, in := range srv.LiveInstances() {
		ids = append(ids, in.ID)
	}
	return ids
}

// managedGroups returns the non-default security groups.
func managedGroups(srv *fakeec2.Server) []fakeec2.SecurityGroup {
	var out []fakeec2.SecurityGroup
	for _, g := range srv.SecurityGroups() {
		if g.Name != "default" {
			out = append(out, g)
		}
	}
	return out
}
