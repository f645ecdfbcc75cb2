package aws

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
)

func TestCreateGetDeleteWithManagedResources(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{PendingPolls: 2})
	ctx := testCtx(t)
	spec := baseSpec("web")
	spec.RootVolumeSizeGB, spec.RootVolumeType = 200, "gp3"
	spec.UserData = "#!/bin/sh\necho hadron\n"
	srv.QueuePublicIPs("127.0.0.2")

	inst, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.State != "running" || inst.Zone != "us-east-1a" || inst.InstanceType != "g5.xlarge" || inst.Cloud != "aws" || inst.Region != "us-east-1" {
		t.Errorf("Create returned %+v, want a running g5.xlarge in us-east-1a", inst)
	}
	if inst.PublicIP != "127.0.0.2" {
		t.Errorf("public IP = %q, want the queued 127.0.0.2", inst.PublicIP)
	}
	if inst.ImageID != fakeec2.DefaultImageID || inst.Name != "web" || inst.Tags["team"] != "ml" {
		t.Errorf("image/name/tags = %q/%q/%v, want %q/web/team=ml", inst.ImageID, inst.Name, inst.Tags, fakeec2.DefaultImageID)
	}
	if len(inst.Attempts) != 1 || inst.Attempts[0].Code != "" || inst.Attempts[0].RequestID == "" {
		t.Errorf("attempts = %v, want one successful attempt with a request id", inst.Attempts)
	}

	fi, ok := srv.Instance(inst.ID)
	if !ok {
		t.Fatalf("fake does not know %s", inst.ID)
	}
	if fi.HTTPTokens != "required" {
		t.Errorf("http tokens = %q, want required (IMDSv2)", fi.HTTPTokens)
	}
	if fi.RootVolumeSizeGB != 200 || fi.RootVolumeType != "gp3" {
		t.Errorf("root volume = %d GiB %s, want 200 GiB gp3", fi.RootVolumeSizeGB, fi.RootVolumeType)
	}
	if fi.UserData != spec.UserData {
		t.Errorf("user data = %q, want %q", fi.UserData, spec.UserData)
	}
	if fi.ClientToken != cloud.ClientToken(spec.IdempotencyKey, spec.Candidates[0], 0, 64) {
		t.Errorf("client token = %q, want generation 0 token", fi.ClientToken)
	}
	for what, tags := range map[string]map[string]string{"instance": fi.Tags, "volume": fi.VolumeTags, "network interface": fi.NetworkIfaceTags} {
		for k, v := range map[string]string{"Name": "web", "team": "ml", "hadron:managed-by": "hadron",
			TagIdempotencyKey: spec.IdempotencyKey, TagManagedSecurityGroup: inst.ManagedSecurityGroupID, TagManagedKeyPair: inst.ManagedKeyName} {
			if tags[k] != v {
				t.Errorf("%s tag %s = %q, want %q", what, k, tags[k], v)
			}
		}
	}

	// Managed security group: SSH and the runtime port from the allowed CIDR only.
	groups := managedGroups(srv)
	if len(groups) != 1 || groups[0].ID != inst.ManagedSecurityGroupID || groups[0].Name != ManagedSecurityGroupName(spec.IdempotencyKey) {
		t.Fatalf("managed groups = %+v, want one named %s with id %s", groups, ManagedSecurityGroupName(spec.IdempotencyKey), inst.ManagedSecurityGroupID)
	}
	if !slices.Equal(fi.SecurityGroupIDs, []string{inst.ManagedSecurityGroupID}) {
		t.Errorf("instance groups = %v, want the managed group", fi.SecurityGroupIDs)
	}
	gotRules := groups[0].Ingress
	sort.Slice(gotRules, func(i, j int) bool { return gotRules[i].FromPort < gotRules[j].FromPort })
	wantRules := []fakeec2.Rule{{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "198.51.100.0/24"}, {Protocol: "tcp", FromPort: 7070, ToPort: 7070, CIDR: "198.51.100.0/24"}}
	if !slices.Equal(gotRules, wantRules) {
		t.Errorf("ingress = %+v, want %+v", gotRules, wantRules)
	}
	if groups[0].Tags[TagIdempotencyKey] != spec.IdempotencyKey {
		t.Errorf("group tags = %v, want the idempotency key", groups[0].Tags)
	}
	keys := srv.KeyPairs()
	if len(keys) != 1 || keys[0].Name != inst.ManagedKeyName || keys[0].PublicKey != testPublicKey || fi.KeyName != inst.ManagedKeyName {
		t.Fatalf("key pairs = %+v, instance key %q; want one managed key %s holding the test key", keys, fi.KeyName, inst.ManagedKeyName)
	}

	got, err := b.Get(ctx, inst.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ID != inst.ID || got.State != "running" || got.PublicIP != "127.0.0.2" || got.ManagedSecurityGroupID != inst.ManagedSecurityGroupID {
		t.Errorf("Get = %+v, want the running instance", got)
	}

	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if fi, _ := srv.Instance(inst.ID); fi.State != "terminated" {
		t.Errorf("state after Delete = %s, want terminated", fi.State)
	}
	if g := managedGroups(srv); len(g) != 0 {
		t.Errorf("managed groups after Delete = %+v, want none", g)
	}
	if k := srv.KeyPairs(); len(k) != 0 {
		t.Errorf("key pairs after Delete = %+v, want none", k)
	}
	if _, err := b.Get(ctx, inst.ID); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want cloud.ErrNotFound", err)
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Errorf("second Delete: %v, want success", err)
	}
	if err := b.Delete(ctx, "i-0123456789abcdef0"); err != nil {
		t.Errorf("Delete of an unknown id: %v, want success", err)
	}
	if _, err := b.Get(ctx, "i-0123456789abcdef0"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Get of an unknown id: err = %v, want cloud.ErrNotFound", err)
	}
}

func TestCreateFallsBackOnCapacityErrors(t *testing.T) {
	for _, code := range CapacityErrorCodes() {
		t.Run(code, func(t *testing.T) {
			b, srv := setup(t, fakeec2.Config{})
			srv.SetFaults(fakeec2.Faults{Capacity: []fakeec2.CapacityFault{{Zone: "us-east-1a", Code: code}}})
			spec := baseSpec("fallback", zones("a", "b")...)
			inst, err := b.Create(testCtx(t), spec)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if inst.Zone != "us-east-1b" {
				t.Errorf("zone = %s, want us-east-1b", inst.Zone)
			}
			if len(inst.Attempts) != 2 {
				t.Fatalf("attempts = %v, want 2", inst.Attempts)
			}
			a := inst.Attempts[0]
			if a.Code != code || a.RequestID == "" || a.Candidate.Zone != "us-east-1a" || a.Message == "" {
				t.Errorf("first attempt = %+v, want %s in us-east-1a with message and request id", a, code)
			}
			if inst.Attempts[1].Code != "" || inst.Attempts[1].Candidate.Zone != "us-east-1b" {
				t.Errorf("second attempt = %+v, want success in us-east-1b", inst.Attempts[1])
			}
			// Capacity errors are not retried by the SDK: one call per candidate.
			if n := srv.CallCount("RunInstances"); n != 2 {
				t.Errorf("RunInstances calls = %d, want 2", n)
			}
			if ids := liveIDs(srv); len(ids) != 1 {
				t.Errorf("live instances = %v, want 1", ids)
			}
		})
	}
}

func TestCreateAllCandidatesFail(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	srv.SetFaults(fakeec2.Faults{Capacity: []fakeec2.CapacityFault{
		{InstanceType: "p5.48xlarge", Code: "VcpuLimitExceeded"},
		{Zone: "us-east-1a"},
		{Zone: "us-east-1b", Code: "Unsupported"},
	}})
	cands := append(zones("a", "b"), cloud.Candidate{Region: "us-east-1", InstanceType: "p5.48xlarge", Spot: true})
	_, err := b.Create(testCtx(t), baseSpec("nocap", cands...))
	var ae *cloud.AttemptsError
	if !errors.As(err, &ae) {
		t.Fatalf("Create err = %v, want *cloud.AttemptsError", err)
	}
	want := []struct{ zone, typ, code string }{
		{"us-east-1a", "g5.xlarge", "InsufficientInstanceCapacity"},
		{"us-east-1b", "g5.xlarge", "Unsupported"},
		{"", "p5.48xlarge", "VcpuLimitExceeded"},
	}
	if ae.Cloud != "aws" || len(ae.Attempts) != len(want) {
		t.Fatalf("attempts = %v, want %d on aws", ae.Attempts, len(want))
	}
	for i, w := range want {
		a := ae.Attempts[i]
		if a.Candidate.Zone != w.zone || a.Candidate.InstanceType != w.typ || a.Code != w.code || a.RequestID == "" {
			t.Errorf("attempt %d = %+v, want %s %s %s with a request id", i, a, w.zone, w.typ, w.code)
		}
		if !strings.Contains(err.Error(), a.RequestID) {
			t.Errorf("error text misses request id %s:\n%v", a.RequestID, err)
		}
	}
	if ids := liveIDs(srv); len(ids) != 0 {
		t.Errorf("live instances = %v, want none", ids)
	}
	if g, k := managedGroups(srv), srv.KeyPairs(); len(g) != 0 || len(k) != 0 {
		t.Errorf("managed groups %v and keys %v left behind, want none", g, k)
	}
}

func TestCreateStopsOnOtherErrors(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	spec := baseSpec("badkey", zones("a", "b")...)
	spec.SSHPublicKey, spec.KeyName = "", "no-such-key"
	_, err := b.Create(testCtx(t), spec)
	var ae *cloud.AttemptsError
	if err == nil || errors.As(err, &ae) || errorCode(err) != "InvalidKeyPair.NotFound" {
		t.Fatalf("Create err = %v, want InvalidKeyPair.NotFound and no fallback", err)
	}
	if n := srv.CallCount("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d, want 1 (no next candidate)", n)
	}
	if g := managedGroups(srv); len(g) != 0 {
		t.Errorf("managed groups left behind: %+v", g)
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	t.Run("sequential retry", func(t *testing.T) {
		b, srv := setup(t, fakeec2.Config{})
		ctx := testCtx(t)
		spec := baseSpec("twice")
		first, err := b.Create(ctx, spec)
		if err != nil {
			t.Fatalf("first Create: %v", err)
		}
		second, err := b.Create(ctx, spec)
		if err != nil {
			t.Fatalf("second Create: %v", err)
		}
		if second.ID != first.ID {
			t.Errorf("second Create = %s, want %s", second.ID, first.ID)
		}
		if ids := liveIDs(srv); len(ids) != 1 {
			t.Errorf("live instances = %v, want 1", ids)
		}
	})
	t.Run("crash after RunInstances was sent", func(t *testing.T) {
		// The client dies while RunInstances is in flight: EC2 launched the
		// instance but the answer never arrived. The instance is also hidden
		// from filtered listings (eventual consistency), so only the client
		// token can find it again.
		b, srv := setup(t, fakeec2.Config{})
		srv.SetFaults(fakeec2.Faults{HoldRunInstances: true, NotFoundPolls: 3})
		spec := baseSpec("crash", zones("a", "b")...)
		ctx, cancel := context.WithCancel(testCtx(t))
		done := make(chan error, 1)
		go func() {
			_, err := b.Create(ctx, spec)
			done <- err
		}()
		if err := srv.WaitForCalls(testCtx(t), "RunInstances", 1); err != nil {
			t.Fatal(err)
		}
		cancel() // the "crash"
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted Create err = %v, want context.Canceled", err)
		}
		srv.Release()
		if g := managedGroups(srv); len(g) != 1 {
			t.Errorf("managed groups after the crash = %v, want the one the instance uses", g)
		}

		inst, err := b.Create(testCtx(t), spec)
		if err != nil {
			t.Fatalf("Create after the crash: %v", err)
		}
		all := srv.Instances()
		if len(all) != 1 || all[0].ID != inst.ID {
			t.Fatalf("instances = %+v, want exactly the one Create returned (%s)", all, inst.ID)
		}
		if all[0].RunInstancesCalls != 2 {
			t.Errorf("RunInstances calls answered with the instance = %d, want 2", all[0].RunInstancesCalls)
		}
	})
	t.Run("adopts an instance of another candidate", func(t *testing.T) {
		// The interrupted create landed on zone b after zone a had no
		// capacity; zone a has capacity again when the create is retried.
		b, srv := setup(t, fakeec2.Config{})
		srv.SetFaults(fakeec2.Faults{Capacity: []fakeec2.CapacityFault{{Zone: "us-east-1a", Count: 1}}})
		spec := baseSpec("moved", zones("a", "b")...)
		first, err := b.Create(testCtx(t), spec)
		if err != nil {
			t.Fatalf("first Create: %v", err)
		}
		second, err := b.Create(testCtx(t), spec)
		if err != nil {
			t.Fatalf("second Create: %v", err)
		}
		if second.ID != first.ID || second.Zone != "us-east-1b" {
			t.Errorf("second Create = %s in %s, want %s in us-east-1b", second.ID, second.Zone, first.ID)
		}
		if ids := liveIDs(srv); len(ids) != 1 {
			t.Errorf("live instances = %v, want 1", ids)
		}
	})
}

func TestCreateStepsGenerationAfterDestroy(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{ShuttingDownPolls: 1})
	ctx := testCtx(t)
	spec := baseSpec("cycle")
	var ids []string
	for gen := 0; gen < 3; gen++ {
		inst, err := b.Create(ctx, spec)
		if err != nil {
			t.Fatalf("Create generation %d: %v", gen, err)
		}
		ids = append(ids, inst.ID)
		fi, _ := srv.Instance(inst.ID)
		if want := cloud.ClientToken(spec.IdempotencyKey, spec.Candidates[0], gen, 64); fi.ClientToken != want {
			t.Errorf("generation %d token = %s, want %s", gen, fi.ClientToken, want)
		}
		if err := b.Delete(ctx, inst.ID); err != nil {
			t.Fatalf("Delete generation %d: %v", gen, err)
		}
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Errorf("instance ids = %v, want a new instance per create after destroy", ids)
	}
	if live := liveIDs(srv); len(live) != 0 {
		t.Errorf("live instances = %v, want none", live)
	}
}

func TestCreateSpotReclaimIsGone(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{ShuttingDownPolls: 1})
	ctx := testCtx(t)
	spec := baseSpec("spot", cloud.Candidate{Region: "us-east-1", Zone: "us-east-1c", InstanceType: "g6.xlarge", Spot: true})
	spec.SpotMaxPrice = 1.25
	inst, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !inst.Spot {
		t.Errorf("Spot = false, want true")
	}
	fi, _ := srv.Instance(inst.ID)
	if !fi.Spot || fi.SpotMaxPrice != "1.25" || fi.SpotType != "one-time" || fi.SpotInterruption != "terminate" {
		t.Errorf("spot options = %v %q %q %q, want one-time, terminate, max 1.25", fi.Spot, fi.SpotMaxPrice, fi.SpotType, fi.SpotInterruption)
	}
	if fi.SpotRequestTags["hadron:managed-by"] != "hadron" {
		t.Errorf("spot request tags = %v, want Hadron's", fi.SpotRequestTags)
	}

	if err := srv.Terminate(inst.ID, false); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // shutting-down, then terminated: both are gone
		_, err := b.Get(ctx, inst.ID)
		if !errors.Is(err, cloud.ErrNotFound) {
			t.Fatalf("Get %d after reclaim: err = %v, want cloud.ErrNotFound", i, err)
		}
		if i == 0 && !strings.Contains(err.Error(), "Server.SpotInstanceTermination") {
			t.Errorf("error does not give the reason: %v", err)
		}
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatalf("Delete after reclaim: %v", err)
	}
	if g, k := managedGroups(srv), srv.KeyPairs(); len(g) != 0 || len(k) != 0 {
		t.Errorf("managed groups %v and keys %v left after Delete, want none", g, k)
	}
	// Re-creating the resource launches a new instance (next generation).
	again, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create after reclaim: %v", err)
	}
	if again.ID == inst.ID {
		t.Errorf("Create after reclaim returned the reclaimed instance %s", inst.ID)
	}
}

func TestCreateRetriesThrottlingAndServerErrors(t *testing.T) {
	tests := []struct {
		name     string
		faults   fakeec2.Faults
		wantCode string // the code seen (and retried) in the call log
	}{
		{"throttled RunInstances", fakeec2.Faults{Throttle: 3, ThrottleAction: "RunInstances"}, "RequestLimitExceeded"},
		{"throttled everything", fakeec2.Faults{Throttle: 4}, "RequestLimitExceeded"},
		{"500s on DescribeInstances", fakeec2.Faults{ServerErrors: 3, ServerErrorAction: "DescribeInstances"}, "InternalError"},
		{"500s on RunInstances", fakeec2.Faults{ServerErrors: 2, ServerErrorAction: "RunInstances"}, "InternalError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srv := setup(t, fakeec2.Config{})
			srv.SetFaults(tt.faults)
			if _, err := b.Create(testCtx(t), baseSpec("retry")); err != nil {
				t.Fatalf("Create: %v", err)
			}
			failed := 0
			for _, c := range srv.Calls() {
				if c.Code == tt.wantCode {
					failed++
				}
			}
			if want := tt.faults.Throttle + tt.faults.ServerErrors; failed != want {
				t.Errorf("%s answers = %d, want %d", tt.wantCode, failed, want)
			}
			if ids := liveIDs(srv); len(ids) != 1 {
				t.Errorf("live instances = %v, want 1", ids)
			}
		})
	}
	t.Run("throttled beyond the retry budget", func(t *testing.T) {
		b, srv := setup(t, fakeec2.Config{})
		srv.SetFaults(fakeec2.Faults{Throttle: 1000})
		_, err := b.Create(testCtx(t), baseSpec("throttled"))
		if errorCode(err) != "RequestLimitExceeded" {
			t.Fatalf("Create err = %v, want RequestLimitExceeded", err)
		}
		if n := srv.CallCount(""); n != 5 {
			t.Errorf("calls = %d, want 5 (RetryMaxAttempts)", n)
		}
	})
}

func TestCreateToleratesNotFoundAfterLaunch(t *testing.T) {
	t.Run("within the window", func(t *testing.T) {
		b, srv := setup(t, fakeec2.Config{})
		srv.SetFaults(fakeec2.Faults{NotFoundPolls: 4})
		inst, err := b.Create(testCtx(t), baseSpec("eventual"))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		notFound := 0
		for _, c := range srv.Calls() {
			if c.Code == "InvalidInstanceID.NotFound" {
				notFound++
			}
		}
		if notFound != 4 || inst.State != "running" {
			t.Errorf("NotFound answers = %d, state %s; want 4 and running", notFound, inst.State)
		}
	})
	t.Run("beyond the window", func(t *testing.T) {
		srv := startFake(t, fakeec2.Config{})
		cfg := testConfig(srv)
		cfg.NotFoundTimeout = 20 * time.Millisecond
		b := newBackend(t, cfg)
		srv.SetFaults(fakeec2.Faults{NotFoundPolls: 1 << 30})
		inst, err := b.Create(testCtx(t), baseSpec("lost"))
		if !errors.Is(err, cloud.ErrNotFound) {
			t.Fatalf("Create err = %v, want cloud.ErrNotFound", err)
		}
		if inst == nil || inst.ID == "" {
			t.Errorf("Create returned %+v with the error, want the launched instance's id", inst)
		}
	})
}

func TestCreateWaitsForRunningAndHonoursContext(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{PendingPolls: 1 << 30})
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	inst, err := b.Create(ctx, baseSpec("slow"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create err = %v, want context.DeadlineExceeded", err)
	}
	if inst == nil || inst.ID == "" || inst.State != "pending" {
		t.Fatalf("Create returned %+v, want the pending instance with the error", inst)
	}
	if n := srv.CallCount("DescribeInstances"); n < 3 {
		t.Errorf("DescribeInstances polls = %d, want several", n)
	}
}

func TestCreateMovesOnWhenInstanceTerminatesWhileLaunching(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{PendingPolls: 1 << 30})
	spec := baseSpec("flaky", cloud.Candidate{Region: "us-east-1", Zone: "us-east-1a", InstanceType: "g5.xlarge", Spot: true},
		cloud.Candidate{Region: "us-east-1", Zone: "us-east-1a", InstanceType: "g5.xlarge"})
	go func() {
		// Spot capacity vanishes while the first instance is pending.
		ctx := testCtx(t)
		if srv.WaitForCalls(ctx, "RunInstances", 1) != nil {
			return
		}
		srv.SetPolls(0, 0) // for the next instance; the first one stays pending
		for _, c := range srv.Calls() {
			if c.Action == "RunInstances" && c.InstanceID != "" {
				_ = srv.Terminate(c.InstanceID, true)
				break
			}
		}
	}()
	inst, err := b.Create(testCtx(t), spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.Spot || len(inst.Attempts) != 2 || inst.Attempts[0].Code != "InstanceTerminatedDuringLaunch" {
		t.Errorf("Create = spot %v, attempts %v; want on-demand after a terminated spot attempt", inst.Spot, inst.Attempts)
	}
}

func TestCreateIdempotentParameterMismatch(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	spec := baseSpec("mismatch")
	spec.SecurityGroupIDs = []string{defaultGroup(t, srv)}
	spec.SSHPublicKey = ""
	// Someone launched with the resource's first token but other parameters.
	token := cloud.ClientToken(spec.IdempotencyKey, spec.Candidates[0], 0, 64)
	_, err := b.client("").RunInstances(testCtx(t), &ec2.RunInstancesInput{
		ImageId: awssdk.String(fakeec2.DefaultImageID), InstanceType: types.InstanceTypeG5Xlarge,
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(1), ClientToken: awssdk.String(token),
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	_, err = b.Create(testCtx(t), spec)
	if errorCode(err) != "IdempotentParameterMismatch" || !strings.Contains(err.Error(), "terminate or import") {
		t.Fatalf("Create err = %v, want IdempotentParameterMismatch naming the live instance", err)
	}
	if ids := liveIDs(srv); len(ids) != 1 {
		t.Errorf("live instances = %v, want only the existing one", ids)
	}

	// Once that instance is gone, the token is skipped.
	if err := srv.Terminate(liveIDs(srv)[0], true); err != nil {
		t.Fatal(err)
	}
	inst, err := b.Create(testCtx(t), spec)
	if err != nil {
		t.Fatalf("Create after termination: %v", err)
	}
	fi, _ := srv.Instance(inst.ID)
	if want := cloud.ClientToken(spec.IdempotencyKey, spec.Candidates[0], 1, 64); fi.ClientToken != want {
		t.Errorf("token = %s, want generation 1", fi.ClientToken)
	}
}

func defaultGroup(t *testing.T, srv *fakeec2.Server) string {
	t.Helper()
	for _, g := range srv.SecurityGroups() {
		if g.Name == "default" && g.Region == "us-east-1" {
			return g.ID
		}
	}
	t.Fatal("fake has no default security group in us-east-1")
	return ""
}

func TestCreateWithUserNetworkAndImage(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	ctx := testCtx(t)
	var subnet fakeec2.Subnet
	for _, s := range srv.Subnets() {
		if s.Zone == "us-east-1c" {
			subnet = s
		}
	}
	// A user key pair, imported beforehand.
	if _, err := b.client("").ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: awssdk.String("mine"), PublicKeyMaterial: []byte(testPublicKey)}); err != nil {
		t.Fatalf("ImportKeyPair: %v", err)
	}
	spec := baseSpec("byo", cloud.Candidate{Region: "us-east-1", InstanceType: "g4dn.xlarge"})
	spec.SubnetID, spec.SecurityGroupIDs, spec.KeyName = subnet.ID, []string{defaultGroup(t, srv)}, "mine"
	spec.ImageID, spec.PublicIP = "ami-0ubuntu0000000001", false
	inst, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	fi, _ := srv.Instance(inst.ID)
	if fi.SubnetID != subnet.ID || inst.Zone != "us-east-1c" || fi.KeyName != "mine" || fi.ImageID != spec.ImageID || inst.PublicIP != "" {
		t.Errorf("instance = subnet %s zone %s key %s image %s public %q; want %s us-east-1c mine %s and no public IP",
			fi.SubnetID, inst.Zone, fi.KeyName, fi.ImageID, inst.PublicIP, subnet.ID, spec.ImageID)
	}
	if inst.ManagedSecurityGroupID != "" || inst.ManagedKeyName != "" || len(managedGroups(srv)) != 0 {
		t.Errorf("managed resources created although the user gave their own")
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if len(srv.KeyPairs()) != 1 || defaultGroup(t, srv) == "" {
		t.Errorf("Delete removed the user's key pair or group")
	}

	// A managed group in a user subnet lives in the subnet's VPC.
	spec2 := baseSpec("insubnet", cloud.Candidate{Region: "us-east-1", InstanceType: "g4dn.xlarge"})
	spec2.SubnetID = subnet.ID
	inst2, err := b.Create(ctx, spec2)
	if err != nil {
		t.Fatalf("Create in subnet with managed group: %v", err)
	}
	for _, g := range managedGroups(srv) {
		if g.ID == inst2.ManagedSecurityGroupID && g.VpcID != subnet.VpcID {
			t.Errorf("managed group VPC = %s, want %s", g.VpcID, subnet.VpcID)
		}
	}
}

func TestCreateAcrossRegions(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	srv.SetFaults(fakeec2.Faults{Capacity: []fakeec2.CapacityFault{{Zone: "us-east-1a"}}})
	spec := baseSpec("multi", cloud.Candidate{Region: "us-east-1", Zone: "us-east-1a", InstanceType: "g6e.xlarge"},
		cloud.Candidate{Region: "us-west-2", Zone: "us-west-2b", InstanceType: "g6e.xlarge"})
	inst, err := b.Create(testCtx(t), spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.Region != "us-west-2" || inst.Zone != "us-west-2b" {
		t.Fatalf("landed in %s/%s, want us-west-2/us-west-2b", inst.Region, inst.Zone)
	}
	groups := managedGroups(srv)
	if len(groups) != 1 || groups[0].Region != "us-west-2" {
		t.Errorf("managed groups = %+v, want only the one in us-west-2", groups)
	}
	if _, err := b.Get(testCtx(t), inst.ID); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Get in us-east-1: err = %v, want cloud.ErrNotFound", err)
	}
	west := b.WithRegion("us-west-2")
	if got, err := west.Get(testCtx(t), inst.ID); err != nil || got.Region != "us-west-2" {
		t.Fatalf("Get in us-west-2 = %+v, %v", got, err)
	}
	if err := west.Delete(testCtx(t), inst.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if g, k := managedGroups(srv), srv.KeyPairs(); len(g) != 0 || len(k) != 0 {
		t.Errorf("left behind: groups %v keys %v", g, k)
	}
}

func TestSetTags(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	ctx := testCtx(t)
	spec := baseSpec("tagged")
	inst, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	want := cloud.Tags(cloud.Spec{Name: "tagged", Tags: map[string]string{"owner": "ana"}})
	if err := b.SetTags(ctx, inst.ID, want); err != nil {
		t.Fatalf("SetTags: %v", err)
	}
	fi, _ := srv.Instance(inst.ID)
	for what, tags := range map[string]map[string]string{"instance": fi.Tags, "volume": fi.VolumeTags} {
		if _, ok := tags["team"]; ok || tags["owner"] != "ana" || tags["Name"] != "tagged" {
			t.Errorf("%s tags = %v, want team removed and owner=ana", what, tags)
		}
	}
	for _, k := range []string{TagIdempotencyKey, TagManagedSecurityGroup, TagManagedKeyPair} {
		if fi.Tags[k] == "" {
			t.Errorf("SetTags removed Hadron's own tag %s", k)
		}
	}
	got, err := b.Get(ctx, inst.ID)
	if err != nil || got.Tags["owner"] != "ana" {
		t.Errorf("Get tags = %v, %v; want owner=ana", got, err)
	}
}

func TestBadCredentialsAreAuthFailure(t *testing.T) {
	srv := startFake(t, fakeec2.Config{})
	for _, tt := range []struct{ name, access, secret string }{
		{"wrong secret", testAccessKey, "not-the-secret"},
		{"unknown access key", "AKIDSOMEONEELSE", testSecretKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(srv)
			cfg.AccessKey, cfg.SecretKey = tt.access, tt.secret
			b := newBackend(t, cfg)
			_, err := b.Create(testCtx(t), baseSpec("auth"))
			if errorCode(err) != "AuthFailure" {
				t.Fatalf("Create err = %v, want AuthFailure", err)
			}
			var re *awshttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusUnauthorized {
				t.Errorf("HTTP status = %v, want 401", err)
			}
			if len(srv.Instances()) != 0 {
				t.Errorf("instances created with bad credentials")
			}
		})
	}
}

func TestDefaultImage(t *testing.T) {
	b, _ := setup(t, fakeec2.Config{})
	img, err := b.DefaultImage(testCtx(t), "us-west-2")
	if err != nil {
		t.Fatalf("DefaultImage: %v", err)
	}
	// Newest x86_64 image of owner amazon: not the newer arm64 one, not the
	// look-alike from another owner.
	if img.ID != fakeec2.DefaultImageID || img.Name != fakeec2.DefaultImageName || img.RootDeviceName != "/dev/sda1" {
		t.Errorf("DefaultImage = %+v, want %s", img, fakeec2.DefaultImageID)
	}

	empty, _ := setup(t, fakeec2.Config{Images: []fakeec2.Image{}})
	if _, err := empty.DefaultImage(testCtx(t), ""); err == nil || !strings.Contains(err.Error(), "image_id") {
		t.Errorf("DefaultImage with no images: err = %v, want advice to set image_id", err)
	}
	if _, err := b.LookupImage(testCtx(t), "", "ami-0000000000000dead"); errorCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("LookupImage of unknown id: err = %v, want InvalidAMIID.NotFound", err)
	}
}

func TestNewConfig(t *testing.T) {
	srv := startFake(t, fakeec2.Config{})
	cfg := testConfig(srv)
	cfg.SecretKey = ""
	if _, err := New(context.Background(), cfg); err == nil {
		t.Errorf("New with an access key and no secret key: want an error")
	}
	b := newBackend(t, testConfig(srv))
	if b.Name() != "aws" || b.Region() != "us-east-1" || b.WithRegion("us-west-2").Region() != "us-west-2" || b.WithRegion("") != b {
		t.Errorf("Name/Region/WithRegion wrong: %s %s", b.Name(), b.Region())
	}
}

func TestCreateRejectsBadSpecs(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	tests := []struct {
		name string
		edit func(*cloud.Spec)
		want string
	}{
		{"no key", func(s *cloud.Spec) { s.IdempotencyKey = "" }, "idempotency key"},
		{"no candidates", func(s *cloud.Spec) { s.Candidates = nil }, "no candidates"},
		{"no type", func(s *cloud.Spec) { s.Candidates[0].InstanceType = "" }, "no instance type"},
		{"bad cidr", func(s *cloud.Spec) { s.AllowedCIDRs = []string{"10.0.0.0/33"} }, "allowed CIDR"},
		{"bad port", func(s *cloud.Spec) { s.RuntimePort = 70000 }, "runtime port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := baseSpec("bad")
			tt.edit(&spec)
			if _, err := b.Create(testCtx(t), spec); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Create err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if n := srv.CallCount(""); n != 0 {
		t.Errorf("calls = %d, want none for invalid specs", n)
	}
}

func TestCreateWithLongKeyAndOddName(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	spec := baseSpec("gpu's node <1> ~ä")
	spec.IdempotencyKey = strings.Repeat("k", 300)
	first, err := b.Create(testCtx(t), spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	fi, _ := srv.Instance(first.ID)
	if v := fi.Tags[TagIdempotencyKey]; !strings.HasPrefix(v, "sha256:") || len(v) > 256 {
		t.Errorf("idempotency tag = %q, want a digest within 256 characters", v)
	}
	second, err := b.Create(testCtx(t), spec)
	if err != nil || second.ID != first.ID {
		t.Errorf("second Create = %v, %v; want %s", second, err, first.ID)
	}
}

func TestAssumeRole(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/hadron-deployer"
	srv := startFake(t, fakeec2.Config{Roles: []string{role}})
	cfg := testConfig(srv)
	cfg.AssumeRoleARN, cfg.STSEndpoint, cfg.AssumeRoleExternalID = role, srv.URL, "ext-1"
	b := newBackend(t, cfg)
	if _, err := b.Create(testCtx(t), baseSpec("assumed")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	var sawAssume bool
	for _, c := range srv.Calls() {
		switch {
		case c.Action == "sts:AssumeRole":
			sawAssume = true
		case c.Role != role:
			t.Errorf("%s was signed as %q, want the assumed role", c.Action, c.Role)
		}
	}
	if !sawAssume {
		t.Errorf("no AssumeRole call in %+v", srv.Calls())
	}

	cfg.AssumeRoleARN = "arn:aws:iam::123456789012:role/someone-else"
	denied := newBackend(t, cfg)
	if _, err := denied.Create(testCtx(t), baseSpec("denied")); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("Create with a role that cannot be assumed: err = %v, want AccessDenied", err)
	}
}

func TestCredentialChain(t *testing.T) {
	srv := startFake(t, fakeec2.Config{})
	dir := t.TempDir()
	cfgFile, credFile := dir+"/config", dir+"/credentials"
	writeFile(t, cfgFile, "[profile hadron-test]\nregion = us-west-2\n")
	writeFile(t, credFile, "[hadron-test]\naws_access_key_id = "+testAccessKey+"\naws_secret_access_key = "+testSecretKey+"\n")
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", cfgFile)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", credFile)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	fast := func(c Config) Config {
		c.EC2Endpoint, c.PollInterval, c.RetryMaxBackoff = srv.URL, time.Millisecond, time.Millisecond
		return c
	}
	t.Run("shared profile", func(t *testing.T) {
		b := newBackend(t, fast(Config{Profile: "hadron-test"}))
		if b.Region() != "us-west-2" {
			t.Errorf("region = %s, want the profile's us-west-2", b.Region())
		}
		if _, err := b.DefaultImage(testCtx(t), ""); err != nil {
			t.Errorf("call with profile credentials: %v", err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
		t.Setenv("AWS_REGION", "us-east-1")
		b := newBackend(t, fast(Config{}))
		if b.Region() != "us-east-1" {
			t.Errorf("region = %s, want us-east-1 from AWS_REGION", b.Region())
		}
		if _, err := b.DefaultImage(testCtx(t), ""); err != nil {
			t.Errorf("call with environment credentials: %v", err)
		}
	})
	t.Run("missing profile", func(t *testing.T) {
		if _, err := New(context.Background(), fast(Config{Profile: "nope"})); err == nil {
			t.Errorf("New with an unknown profile: want an error")
		}
	})
	t.Run("no region", func(t *testing.T) {
		t.Setenv("AWS_CONFIG_FILE", dir+"/absent")
		if _, err := New(context.Background(), fast(Config{AccessKey: testAccessKey, SecretKey: testSecretKey})); err == nil || !strings.Contains(err.Error(), "no region") {
			t.Errorf("New without a region: err = %v, want a missing-region error", err)
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteRetriesGroupStillInUse(t *testing.T) {
	t.Run("clears", func(t *testing.T) {
		b, srv := setup(t, fakeec2.Config{})
		inst, err := b.Create(testCtx(t), baseSpec("lag"))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		srv.SetFaults(fakeec2.Faults{GroupInUse: 3})
		if err := b.Delete(testCtx(t), inst.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if g := managedGroups(srv); len(g) != 0 {
			t.Errorf("managed groups = %v, want none", g)
		}
		if n := srv.CallCount("DeleteSecurityGroup"); n != 4 {
			t.Errorf("DeleteSecurityGroup calls = %d, want 4", n)
		}
	})
	t.Run("gives up after the cleanup timeout", func(t *testing.T) {
		srv := startFake(t, fakeec2.Config{})
		cfg := testConfig(srv)
		cfg.CleanupTimeout = 20 * time.Millisecond
		b := newBackend(t, cfg)
		inst, err := b.Create(testCtx(t), baseSpec("stuck"))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		srv.SetFaults(fakeec2.Faults{GroupInUse: 1 << 30})
		err = b.Delete(testCtx(t), inst.ID)
		if errorCode(err) != "DependencyViolation" || !strings.Contains(err.Error(), inst.ManagedSecurityGroupID) {
			t.Fatalf("Delete err = %v, want DependencyViolation naming %s", err, inst.ManagedSecurityGroupID)
		}
		if k := srv.KeyPairs(); len(k) != 0 {
			t.Errorf("key pairs = %v, want the key removed even though the group is stuck", k)
		}
		// A later Delete (terraform destroy retried) finishes the cleanup.
		srv.SetFaults(fakeec2.Faults{})
		if err := b.Delete(testCtx(t), inst.ID); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		if g, k := managedGroups(srv), srv.KeyPairs(); len(g) != 0 || len(k) != 0 {
			t.Errorf("left behind: groups %v keys %v", g, k)
		}
	})
}
