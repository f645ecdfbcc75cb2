package aliyun

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

func TestGetGoneInstances(t *testing.T) {
	tests := []struct {
		name string
		spot bool
		gone func(srv *fakeecs.Server, id string) error
	}{
		{"released out of band", false, func(srv *fakeecs.Server, id string) error { return srv.Release(id) }},
		{"spot reclaimed", true, func(srv *fakeecs.Server, id string) error { return srv.Reclaim(id) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, b := newTestBackend(t)
			ctx := ctxT(t)
			c := hz(zoneH)
			c.Spot = tt.spot
			inst, err := b.Create(ctx, testSpec(c))
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := tt.gone(srv, inst.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Get(ctx, inst.ID); !errors.Is(err, cloud.ErrNotFound) {
				t.Errorf("Get: err = %v, want ErrNotFound", err)
			}
			if err := b.Delete(ctx, inst.ID); err != nil {
				t.Errorf("Delete of a gone instance: %v, want nil", err)
			}
		})
	}
}

func TestGetUnknownAndMalformedIDs(t *testing.T) {
	_, b := newTestBackend(t)
	ctx := ctxT(t)
	for _, id := range []string{"i-bp000000000000000000", "cn-shanghai/i-uf000000000000000000"} {
		if _, err := b.Get(ctx, id); !errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("Get(%q): err = %v, want ErrNotFound", id, err)
		}
		if err := b.Delete(ctx, id); err != nil {
			t.Errorf("Delete(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", "sg-123", "Bad Region/i-1", "cn-hangzhou/"} {
		if _, err := b.Get(ctx, id); err == nil || errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("Get(%q): err = %v, want a malformed-id error", id, err)
		}
	}
}

func TestDeleteWaitsAndRetriesBusyInstance(t *testing.T) {
	srv, b := newTestBackend(t)
	ctx := ctxT(t)
	inst, err := b.Create(ctx, testSpec())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	srv.InjectErrors("DeleteInstance", "IncorrectInstanceStatus.Initializing", 2)
	srv.InjectErrors("DeleteSecurityGroup", "DependencyViolation", 2)
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	fi, _ := srv.Instance(inst.ID)
	if !fi.Released {
		t.Errorf("instance %s not released after Delete", inst.ID)
	}
	if n := srv.CallCount("DeleteInstance"); n != 3 {
		t.Errorf("DeleteInstance calls = %d, want 3", n)
	}
	if sgs := srv.SecurityGroups(); len(sgs) != 0 {
		t.Errorf("security groups = %+v, want none", sgs)
	}
}

func TestDeleteKeepsSecurityGroupUsedByAnotherInstance(t *testing.T) {
	srv, b := newTestBackend(t)
	ctx := ctxT(t)
	spec := testSpec()
	first, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// A replacement node (create_before_destroy) that reuses the managed
	// security group and key pair of the first one.
	second, err := b.Create(ctx, cloud.Spec{
		Name: spec.Name, IdempotencyKey: spec.IdempotencyKey + "-next", Candidates: []cloud.Candidate{hz(zoneI)},
		SecurityGroupIDs: []string{first.ManagedSecurityGroupID}, KeyName: first.ManagedKeyName,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, first.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if sgs := srv.SecurityGroups(); len(sgs) != 1 || sgs[0].ID != first.ManagedSecurityGroupID {
		t.Errorf("security groups = %+v, want %s kept for %s", sgs, first.ManagedSecurityGroupID, second.ID)
	}
	if kps := srv.KeyPairs(); len(kps) != 1 {
		t.Errorf("key pairs = %+v, want the shared one kept", kps)
	}
}

func TestSetTags(t *testing.T) {
	srv, b := newTestBackend(t)
	ctx := ctxT(t)
	spec := testSpec()
	spec.Tags = map[string]string{"team": "ml", "cost-center": "42"}
	inst, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetTags(ctx, inst.ID, map[string]string{"team": "research", "env": "dev"}); err != nil {
		t.Fatalf("SetTags: %v", err)
	}
	got, err := b.Get(ctx, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := cloud.Tags(cloud.Spec{Name: spec.Name, IdempotencyKey: spec.IdempotencyKey, Tags: map[string]string{"team": "research", "env": "dev"}})
	if !maps.Equal(got.Tags, want) {
		t.Errorf("Tags = %v, want %v", got.Tags, want)
	}
	fi, _ := srv.Instance(inst.ID)
	if fi.Tags[tagManagedSG] != inst.ManagedSecurityGroupID || fi.Tags[tagManagedKey] != inst.ManagedKeyName {
		t.Errorf("fake tags = %v, want bookkeeping tags kept", fi.Tags)
	}
	if got.ManagedSecurityGroupID != inst.ManagedSecurityGroupID {
		t.Errorf("ManagedSecurityGroupID = %q after SetTags, want %q", got.ManagedSecurityGroupID, inst.ManagedSecurityGroupID)
	}
}

func TestBadCredentials(t *testing.T) {
	tests := []struct {
		name     string
		id, key  string
		token    string
		wantCode string
	}{
		{"wrong secret", fakeecs.TestAccessKeyID, "not-the-secret", "", "SignatureDoesNotMatch"},
		{"unknown key", "LTAIunknown", fakeecs.TestAccessKeySecret, "", "InvalidAccessKeyId.NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, b := newTestBackend(t, func(c *Config) { c.AccessKeyID, c.AccessKeySecret, c.SecurityToken = tt.id, tt.key, tt.token })
			_, err := b.Create(ctxT(t), testSpec())
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Code != tt.wantCode || apiErr.RequestID == "" {
				t.Fatalf("Create error = %v, want %s with a request id", err, tt.wantCode)
			}
			if _, err := b.Get(context.Background(), "i-bp000000000000000000"); !errors.As(err, &apiErr) || apiErr.Code != tt.wantCode {
				t.Errorf("Get error = %v, want %s (not ErrNotFound)", err, tt.wantCode)
			}
			if n := len(srv.AllInstances()); n != 0 {
				t.Errorf("instances = %d, want 0", n)
			}
		})
	}
}

func TestDeleteGivesUpOnSecurityGroupStillInUse(t *testing.T) {
	srv, b := newTestBackend(t, func(c *Config) { c.CleanupTimeout = 50 * time.Millisecond })
	ctx := ctxT(t)
	inst, err := b.Create(ctx, testSpec())
	if err != nil {
		t.Fatal(err)
	}
	srv.InjectErrors("DeleteSecurityGroup", "DependencyViolation", 1<<20)
	err = b.Delete(ctx, inst.ID)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "DependencyViolation" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Delete error = %v, want DependencyViolation after the cleanup timeout", err)
	}
	if fi, _ := srv.Instance(inst.ID); !fi.Released {
		t.Errorf("instance not released")
	}
}

func TestUnreachableEndpointFailsFast(t *testing.T) {
	srv := fakeecs.Start(fakeecs.Options{})
	url := srv.URL
	srv.Close() // nothing listens there any more
	b, err := NewWithEnv(context.Background(), Config{Region: "cn-hangzhou", AccessKeyID: "a", AccessKeySecret: "b",
		Endpoint: url, RetryBaseDelay: time.Millisecond}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Get(ctxT(t), "i-bp000000000000000000")
	if err == nil || errors.Is(err, cloud.ErrNotFound) || !strings.Contains(err.Error(), "DescribeInstances") {
		t.Errorf("Get against a closed endpoint = %v, want a transport error naming the call", err)
	}
}
