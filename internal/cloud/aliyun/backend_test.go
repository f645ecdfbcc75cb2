package aliyun

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

const (
	gpuType   = "ecs.gn7i-c8g1.2xlarge"
	zoneH     = "cn-hangzhou-h"
	zoneI     = "cn-hangzhou-i"
	zoneJ     = "cn-hangzhou-j"
	newestLTS = "ubuntu_24_04_x64_20G_alibase_20250113.vhd"
)

// testKey is an OpenSSH ed25519 public key (any 32 bytes make a well-formed one).
func testKey() string {
	str := func(b []byte) []byte {
		n := len(b)
		return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, b...)
	}
	blob := append(str([]byte("ssh-ed25519")), str([]byte("0123456789abcdef0123456789abcdef"))...)
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " test@hadron"
}

func noEnv(string) string { return "" }

// newTestBackend returns a fake ECS server and a backend pointed at it with
// fast polling and retries.
func newTestBackend(t *testing.T, mods ...func(*Config)) (*fakeecs.Server, *Backend) {
	t.Helper()
	srv := fakeecs.Start(fakeecs.Options{})
	t.Cleanup(srv.Close)
	cfg := Config{
		Region:          "cn-hangzhou",
		AccessKeyID:     fakeecs.TestAccessKeyID,
		AccessKeySecret: fakeecs.TestAccessKeySecret,
		Endpoint:        srv.URL,
		PollInterval:    time.Millisecond,
		NotFoundTimeout: 5 * time.Second,
		RetryBaseDelay:  time.Millisecond,
	}
	for _, m := range mods {
		m(&cfg)
	}
	b, err := NewWithEnv(context.Background(), cfg, noEnv)
	if err != nil {
		t.Fatalf("NewWithEnv: %v", err)
	}
	return srv, b
}

func testSpec(cands ...cloud.Candidate) cloud.Spec {
	if len(cands) == 0 {
		cands = []cloud.Candidate{{Region: "cn-hangzhou", Zone: zoneH, InstanceType: gpuType}}
	}
	return cloud.Spec{
		Name:             "trainer",
		IdempotencyKey:   "hadron_gpu_instance.trainer/7f3a",
		Candidates:       cands,
		RootVolumeSizeGB: 100,
		AllowedCIDRs:     []string{"198.51.100.0/24"},
		SSHPublicKey:     testKey(),
		PublicIP:         true,
		RuntimePort:      8000,
		UserData:         "#!/bin/sh\necho hadron\n",
		Tags:             map[string]string{"team": "ml"},
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCreateGetDelete(t *testing.T) {
	srv, b := newTestBackend(t)
	ctx := ctxT(t)
	spec := testSpec()

	inst, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.State != "running" || inst.Zone != zoneH || inst.InstanceType != gpuType || inst.Cloud != "aliyun" || inst.Region != "cn-hangzhou" {
		t.Errorf("Create = %+v, want running %s %s in cn-hangzhou", inst, gpuType, zoneH)
	}
	if !strings.HasPrefix(inst.ID, "i-bp") {
		t.Errorf("ID = %q, want a plain cn-hangzhou ECS id", inst.ID)
	}
	if inst.PublicIP == "" || inst.PrivateIP == "" {
		t.Errorf("PublicIP = %q, PrivateIP = %q, want both set", inst.PublicIP, inst.PrivateIP)
	}
	if inst.Name != "trainer" || inst.Tags["team"] != "ml" || inst.Tags["hadron:managed-by"] != "hadron" || inst.Tags[tagIdemKey] != spec.IdempotencyKey {
		t.Errorf("Name = %q, Tags = %v, want trainer with team=ml and hadron tags", inst.Name, inst.Tags)
	}
	if _, ok := inst.Tags[tagManagedSG]; ok {
		t.Errorf("Tags = %v, want bookkeeping tags hidden", inst.Tags)
	}
	if len(inst.Attempts) != 1 || inst.Attempts[0].Code != "" || inst.Attempts[0].RequestID == "" {
		t.Errorf("Attempts = %+v, want one successful attempt with a request id", inst.Attempts)
	}
	if inst.ManagedSecurityGroupID == "" || inst.ManagedKeyName == "" {
		t.Fatalf("ManagedSecurityGroupID = %q, ManagedKeyName = %q, want both", inst.ManagedSecurityGroupID, inst.ManagedKeyName)
	}

	fi, ok := srv.Instance(inst.ID)
	if !ok {
		t.Fatalf("fake has no instance %s", inst.ID)
	}
	if fi.ImageID != newestLTS {
		t.Errorf("ImageID = %q, want the newest Ubuntu LTS %q", fi.ImageID, newestLTS)
	}
	if inst.ImageID != fi.ImageID {
		t.Errorf("Instance.ImageID = %q, want the image it runs, %q", inst.ImageID, fi.ImageID)
	}
	if fi.SystemDiskSize != 100 || fi.SystemDiskCategory != "cloud_essd" {
		t.Errorf("system disk = %d GiB %s, want 100 GiB cloud_essd", fi.SystemDiskSize, fi.SystemDiskCategory)
	}
	if fi.UserData != spec.UserData {
		t.Errorf("UserData = %q, want %q", fi.UserData, spec.UserData)
	}
	if fi.SpotStrategy != "NoSpot" || fi.InternetMaxBandwidthOut != 100 || fi.KeyPairName != inst.ManagedKeyName {
		t.Errorf("fake instance = %+v, want NoSpot, 100 Mbps, key %s", fi, inst.ManagedKeyName)
	}
	if want := cloud.ClientToken(spec.IdempotencyKey, spec.Candidates[0], 0, 64); fi.ClientToken != want {
		t.Errorf("ClientToken = %q, want %q", fi.ClientToken, want)
	}
	sgs := srv.SecurityGroups()
	if len(sgs) != 1 || sgs[0].ID != inst.ManagedSecurityGroupID {
		t.Fatalf("security groups = %+v, want only the managed %s", sgs, inst.ManagedSecurityGroupID)
	}
	wantRules := []fakeecs.Rule{
		{Protocol: "tcp", PortRange: "22/22", SourceCIDR: "198.51.100.0/24", Policy: "accept"},
		{Protocol: "tcp", PortRange: "8000/8000", SourceCIDR: "198.51.100.0/24", Policy: "accept"},
	}
	if !slices.Equal(sgs[0].Rules, wantRules) {
		t.Errorf("rules = %+v, want %+v", sgs[0].Rules, wantRules)
	}
	if kps := srv.KeyPairs(); len(kps) != 1 || kps[0].PublicKey != testKey() {
		t.Errorf("key pairs = %+v, want the imported test key", kps)
	}

	got, err := b.Get(ctx, inst.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ID != inst.ID || got.State != "running" || got.PublicIP != inst.PublicIP || got.ManagedKeyName != inst.ManagedKeyName {
		t.Errorf("Get = %+v, want %+v", got, inst)
	}

	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n := len(srv.Instances()); n != 0 {
		t.Errorf("live instances after Delete = %d, want 0", n)
	}
	if sgs := srv.SecurityGroups(); len(sgs) != 0 {
		t.Errorf("security groups after Delete = %+v, want none", sgs)
	}
	if kps := srv.KeyPairs(); len(kps) != 0 {
		t.Errorf("key pairs after Delete = %+v, want none", kps)
	}
	if _, err := b.Get(ctx, inst.ID); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Errorf("second Delete: %v, want nil (already gone)", err)
	}
	if calls := srv.Calls("DeleteInstance"); len(calls) != 1 || calls[0].Params["Force"] != "true" {
		t.Errorf("DeleteInstance calls = %+v, want one with Force=true", calls)
	}
}
