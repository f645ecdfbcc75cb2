package aliyun

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

func hz(zone string) cloud.Candidate {
	return cloud.Candidate{Region: "cn-hangzhou", Zone: zone, InstanceType: gpuType}
}

func TestCreateSkipsZonesWithoutStock(t *testing.T) {
	srv, b := newTestBackend(t)
	srv.SetStock("cn-hangzhou", zoneH, gpuType, false)

	inst, err := b.Create(ctxT(t), testSpec(hz(zoneH), hz(zoneI)))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.Zone != zoneI {
		t.Errorf("Zone = %s, want %s (the first zone with stock)", inst.Zone, zoneI)
	}
	if len(inst.Attempts) != 2 {
		t.Fatalf("Attempts = %+v, want 2", inst.Attempts)
	}
	if a := inst.Attempts[0]; a.Candidate.Zone != zoneH || a.Code != "NoStock" || a.RequestID == "" {
		t.Errorf("first attempt = %+v, want NoStock in %s with the DescribeAvailableResource request id", a, zoneH)
	}
	if a := inst.Attempts[1]; a.Candidate.Zone != zoneI || a.Code != "" {
		t.Errorf("second attempt = %+v, want success in %s", a, zoneI)
	}
	if calls := srv.Calls("RunInstances"); len(calls) != 1 || calls[0].Params["ZoneId"] != zoneI {
		t.Errorf("RunInstances calls = %+v, want one, in %s (the zone without stock is never tried)", calls, zoneI)
	}
}

func TestCreateWithoutZonePicksAZoneWithStock(t *testing.T) {
	srv, b := newTestBackend(t)
	srv.SetStock("cn-hangzhou", "", gpuType, false)
	srv.SetStock("cn-hangzhou", zoneJ, gpuType, true)

	inst, err := b.Create(ctxT(t), testSpec(hz("")))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.Zone != zoneJ {
		t.Errorf("Zone = %s, want %s, the only zone with stock", inst.Zone, zoneJ)
	}
}

func TestCreateMovesOnAfterCapacityErrors(t *testing.T) {
	tests := []struct {
		code     string
		wantCode string // attempt code recorded for the first candidate
	}{
		{"OperationDenied.NoStock", "OperationDenied.NoStock"},
		{"QuotaExceed.ElasticQuota", "QuotaExceed.ElasticQuota"},
		{"Zone.NotOnSale", "Zone.NotOnSale"},
		{"InvalidInstanceType.ValueNotSupported", "InvalidInstanceType.ValueNotSupported"},
		// A type not offered in a zone is missing from DescribeAvailableResource.
		{"InvalidInstanceType.NotSupported", "NoStock"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			srv, b := newTestBackend(t)
			srv.FailRunInstances(zoneH, gpuType, tt.code)

			inst, err := b.Create(ctxT(t), testSpec(hz(zoneH), hz(zoneI)))
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if inst.Zone != zoneI {
				t.Errorf("Zone = %s, want %s", inst.Zone, zoneI)
			}
			if len(inst.Attempts) != 2 || inst.Attempts[0].Code != tt.wantCode || inst.Attempts[0].RequestID == "" {
				t.Errorf("Attempts = %+v, want first %s with a request id", inst.Attempts, tt.wantCode)
			}
			if n := len(srv.Instances()); n != 1 {
				t.Errorf("instances = %d, want 1", n)
			}
		})
	}
}

func TestCreateAllCandidatesFail(t *testing.T) {
	srv, b := newTestBackend(t)
	srv.SetStock("cn-hangzhou", zoneH, gpuType, false)
	srv.FailRunInstances(zoneI, gpuType, "QuotaExceed.ElasticQuota")
	srv.FailRunInstances(zoneJ, gpuType, "OperationDenied.NoStock")

	_, err := b.Create(ctxT(t), testSpec(hz(zoneH), hz(zoneI), hz(zoneJ)))
	var ae *cloud.AttemptsError
	if !errors.As(err, &ae) {
		t.Fatalf("Create error = %v, want *cloud.AttemptsError", err)
	}
	wantCodes := []string{"NoStock", "QuotaExceed.ElasticQuota", "OperationDenied.NoStock"}
	if len(ae.Attempts) != len(wantCodes) || ae.Cloud != "aliyun" {
		t.Fatalf("attempts = %+v, want %d on aliyun", ae.Attempts, len(wantCodes))
	}
	for i, a := range ae.Attempts {
		if a.Code != wantCodes[i] || a.RequestID == "" {
			t.Errorf("attempt %d = %+v, want code %s with a request id", i, a, wantCodes[i])
		}
		if !strings.Contains(err.Error(), a.RequestID) {
			t.Errorf("error text lacks request id %s:\n%v", a.RequestID, err)
		}
	}
	if n := len(srv.AllInstances()); n != 0 {
		t.Errorf("instances = %d, want 0", n)
	}
	if sgs, kps := srv.SecurityGroups(), srv.KeyPairs(); len(sgs) != 0 || len(kps) != 0 {
		t.Errorf("left behind security groups %+v and key pairs %+v, want none", sgs, kps)
	}
}

func TestCreateFatalErrorStops(t *testing.T) {
	srv, b := newTestBackend(t)
	spec := testSpec(hz(zoneH), hz(zoneI))
	spec.ImageID = "no_such_image.vhd"

	_, err := b.Create(ctxT(t), spec)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "InvalidImageId.NotFound" || apiErr.RequestID == "" {
		t.Fatalf("Create error = %v, want InvalidImageId.NotFound with a request id", err)
	}
	if n := srv.CallCount("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d, want 1 (a bad image is not a capacity problem)", n)
	}
}

func TestCreateRetriesTransientErrors(t *testing.T) {
	tests := []struct {
		action, code string
		n            int
	}{
		{"RunInstances", "Throttling.User", 3},
		{"RunInstances", "ServiceUnavailable", 2},
		{"DescribeInstances", "Throttling", 2},
		{"DescribeAvailableResource", "InternalError", 2},
		{"CreateSecurityGroup", "ServiceUnavailable", 1},
		{"ImportKeyPair", "Throttling.Api", 1},
		{"", "InternalError", 4},
	}
	for _, tt := range tests {
		t.Run(tt.action+"/"+tt.code, func(t *testing.T) {
			srv, b := newTestBackend(t)
			srv.InjectErrors(tt.action, tt.code, tt.n)

			inst, err := b.Create(ctxT(t), testSpec())
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if n := len(srv.AllInstances()); n != 1 || srv.AllInstances()[0].ID != inst.ID {
				t.Errorf("instances = %d, want exactly the one returned", n)
			}
			failed := 0
			for _, c := range srv.Calls(tt.action) {
				if c.Code == tt.code {
					failed++
				}
			}
			if failed != tt.n {
				t.Errorf("%d calls failed with %s, want %d (each retried)", failed, tt.code, tt.n)
			}
		})
	}
}

func TestCreateGivesUpAfterMaxRetries(t *testing.T) {
	srv, b := newTestBackend(t, func(c *Config) { c.MaxRetries = 2 })
	srv.InjectErrors("RunInstances", "Throttling.User", 10)

	_, err := b.Create(ctxT(t), testSpec())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "Throttling.User" {
		t.Fatalf("Create error = %v, want Throttling.User after retries", err)
	}
	if n := srv.CallCount("RunInstances"); n != 3 {
		t.Errorf("RunInstances calls = %d, want 3 (1 + 2 retries)", n)
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	tests := []struct {
		name string
		// hide makes new instances invisible to that many DescribeInstances, so
		// the retried Create cannot find the first instance by tag and must rely
		// on the ClientToken.
		hide  int
		crash bool
	}{
		{name: "sequential"},
		{name: "crash after RunInstances", crash: true},
		{name: "crash after RunInstances, instance not yet listed", crash: true, hide: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, b := newTestBackend(t)
			srv.HideNewInstances(tt.hide)
			spec := testSpec(hz(zoneH), hz(zoneI))

			if tt.crash {
				ctx, cancel := context.WithCancel(ctxT(t))
				done := make(chan error, 1)
				go func() { _, err := b.Create(ctx, spec); done <- err }()
				if err := srv.WaitForCalls(ctxT(t), "RunInstances", 1); err != nil {
					t.Fatal(err)
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("interrupted Create error = %v, want context.Canceled", err)
				}
			} else if _, err := b.Create(ctxT(t), spec); err != nil {
				t.Fatalf("first Create: %v", err)
			}

			inst, err := b.Create(ctxT(t), spec)
			if err != nil {
				t.Fatalf("retried Create: %v", err)
			}
			all := srv.AllInstances()
			if len(all) != 1 || all[0].ID != inst.ID {
				t.Fatalf("instances = %+v, want exactly one, %s", all, inst.ID)
			}
			if inst.State != "running" || inst.Zone != zoneH {
				t.Errorf("retried Create = %+v, want running in %s", inst, zoneH)
			}
			if sgs := srv.SecurityGroups(); len(sgs) != 1 {
				t.Errorf("security groups = %d, want 1 (reused by ClientToken)", len(sgs))
			}
		})
	}
}

func TestCreateStepsTokenGenerationAfterRelease(t *testing.T) {
	tests := []struct {
		name string
		// userSG keeps RunInstances' parameters identical across generations,
		// so ECS replays the released instance for the old token; with a
		// managed security group (recreated after Delete) the old token's
		// parameters differ and ECS answers IdempotentParameterMismatch.
		userSG   bool
		wantCode string
	}{
		{name: "released instance replayed", userSG: true},
		{name: "parameters changed", wantCode: "IdempotentParameterMismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, b := newTestBackend(t, func(c *Config) { c.NotFoundTimeout = 50 * time.Millisecond })
			ctx := ctxT(t)
			spec := testSpec()
			if tt.userSG {
				sg, err := srv.AddSecurityGroup("cn-hangzhou")
				if err != nil {
					t.Fatal(err)
				}
				spec.SecurityGroupIDs = []string{sg.ID}
			}

			first, err := b.Create(ctx, spec)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := b.Delete(ctx, first.ID); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			second, err := b.Create(ctx, spec)
			if err != nil {
				t.Fatalf("Create after Delete: %v", err)
			}
			if second.ID == first.ID {
				t.Fatalf("Create after Delete returned the released instance %s", first.ID)
			}
			fi, _ := srv.Instance(second.ID)
			if want := cloud.ClientToken(spec.IdempotencyKey, spec.Candidates[0], 1, 64); fi.ClientToken != want {
				t.Errorf("ClientToken = %q, want generation 1 %q", fi.ClientToken, want)
			}
			runs := srv.Calls("RunInstances")
			if len(runs) != 3 || runs[1].Code != tt.wantCode || runs[2].Code != "" {
				t.Errorf("RunInstances calls = %+v, want create, gen 0 again (%q), gen 1", runs, tt.wantCode)
			}
			if n := len(srv.Instances()); n != 1 {
				t.Errorf("live instances = %d, want 1", n)
			}
			// A crash-retry of the second Create finds the same instance.
			third, err := b.Create(ctx, spec)
			if err != nil || third.ID != second.ID {
				t.Errorf("retried Create = %v, %v; want %s", third, err, second.ID)
			}
		})
	}
}

func TestCreateToleratesNotFoundWindow(t *testing.T) {
	srv, b := newTestBackend(t)
	srv.HideNewInstances(3)

	inst, err := b.Create(ctxT(t), testSpec())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if n := srv.CallCount("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d, want 1 (no new token generation while the instance is merely not listed yet)", n)
	}
	if inst.State != "running" {
		t.Errorf("State = %s, want running", inst.State)
	}
}

func TestCreateSpot(t *testing.T) {
	tests := []struct {
		name      string
		spot      bool
		maxPrice  float64
		strategy  string
		wantLimit float64
	}{
		{"on-demand", false, 0, "NoSpot", 0},
		{"spot at market price", true, 0, "SpotAsPriceGo", 0},
		{"spot with a cap", true, 1.25, "SpotWithPriceLimit", 1.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, b := newTestBackend(t)
			c := hz(zoneH)
			c.Spot = tt.spot
			spec := testSpec(c)
			spec.SpotMaxPrice = tt.maxPrice

			inst, err := b.Create(ctxT(t), spec)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			fi, _ := srv.Instance(inst.ID)
			if fi.SpotStrategy != tt.strategy || fi.SpotPriceLimit != tt.wantLimit || inst.Spot != tt.spot {
				t.Errorf("spot = %s limit %g (Instance.Spot %t), want %s limit %g (%t)", fi.SpotStrategy, fi.SpotPriceLimit, inst.Spot, tt.strategy, tt.wantLimit, tt.spot)
			}
			stockCalls := srv.Calls("DescribeAvailableResource")
			wantMarket := "NoSpot"
			if tt.spot {
				wantMarket = "SpotAsPriceGo"
			}
			if len(stockCalls) != 1 || stockCalls[0].Params["SpotStrategy"] != wantMarket || stockCalls[0].Params["InstanceType"] != gpuType {
				t.Errorf("DescribeAvailableResource calls = %+v, want one for %s %s", stockCalls, gpuType, wantMarket)
			}
		})
	}
}

func TestCreateWithUserNetworkAndImage(t *testing.T) {
	srv, b := newTestBackend(t)
	vsw, err := srv.AddVSwitch(zoneI)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := srv.AddSecurityGroup("cn-hangzhou")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	spec := testSpec(hz(""))
	spec.SubnetID = vsw.ID
	spec.SecurityGroupIDs = []string{sg.ID}
	spec.ImageID = "aliyun_3_x64_20G_alibase_20250117.vhd"
	spec.PublicIP = false
	spec.RootVolumeType = "cloud_auto"

	inst, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	fi, _ := srv.Instance(inst.ID)
	if fi.VSwitchID != vsw.ID || inst.Zone != zoneI || fi.ImageID != spec.ImageID || fi.SystemDiskCategory != "cloud_auto" {
		t.Errorf("instance = %+v, want vSwitch %s in %s, image %s, cloud_auto", fi, vsw.ID, zoneI, spec.ImageID)
	}
	if len(fi.SecurityGroupIDs) != 1 || fi.SecurityGroupIDs[0] != sg.ID || inst.ManagedSecurityGroupID != "" {
		t.Errorf("security groups = %v (managed %q), want only the user's %s", fi.SecurityGroupIDs, inst.ManagedSecurityGroupID, sg.ID)
	}
	if fi.PublicIP != "" || fi.InternetMaxBandwidthOut != 0 || inst.PublicIP != "" {
		t.Errorf("public IP %q with bandwidth %d, want none", fi.PublicIP, fi.InternetMaxBandwidthOut)
	}
	if n := srv.CallCount("DescribeImages"); n != 0 {
		t.Errorf("DescribeImages calls = %d, want 0 with image_id set", n)
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if sgs := srv.SecurityGroups(); len(sgs) != 1 || sgs[0].ID != sg.ID {
		t.Errorf("security groups after Delete = %+v, want the user's kept", sgs)
	}
}

func TestCreateSkipsZonesOutsideTheVSwitch(t *testing.T) {
	srv, b := newTestBackend(t)
	vsw, err := srv.AddVSwitch(zoneI)
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(hz(zoneH), hz(zoneI))
	spec.SubnetID = vsw.ID

	inst, err := b.Create(ctxT(t), spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.Zone != zoneI || len(inst.Attempts) != 2 || inst.Attempts[0].Code != codeVSwitchZoneMismatch {
		t.Errorf("Create = zone %s, attempts %+v; want %s after a %s attempt", inst.Zone, inst.Attempts, zoneI, codeVSwitchZoneMismatch)
	}
}

func TestCreateAcrossRegions(t *testing.T) {
	srv, b := newTestBackend(t)
	srv.SetStock("cn-hangzhou", "", gpuType, false)
	ctx := ctxT(t)
	spec := testSpec(hz(""), cloud.Candidate{Region: "cn-shanghai", InstanceType: gpuType})

	inst, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.Region != "cn-shanghai" || !strings.HasPrefix(inst.ID, "cn-shanghai/i-uf") {
		t.Errorf("Create = %s in %s, want a cn-shanghai/i-... id", inst.ID, inst.Region)
	}
	if sgs := srv.SecurityGroups(); len(sgs) != 1 || sgs[0].Region != "cn-shanghai" {
		t.Errorf("security groups = %+v, want only the one in cn-shanghai", sgs)
	}
	got, err := b.Get(ctx, inst.ID)
	if err != nil || got.ID != inst.ID {
		t.Fatalf("Get(%s) = %+v, %v", inst.ID, got, err)
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if sgs, kps := srv.SecurityGroups(), srv.KeyPairs(); len(sgs) != 0 || len(kps) != 0 || len(srv.Instances()) != 0 {
		t.Errorf("after Delete: security groups %+v, key pairs %+v, want none", sgs, kps)
	}
}

func TestCreateHonoursContext(t *testing.T) {
	srv := fakeecs.Start(fakeecs.Options{StepsPerState: 1 << 20}) // never reaches Running
	t.Cleanup(srv.Close)
	b, err := NewWithEnv(context.Background(), Config{
		Region: "cn-hangzhou", AccessKeyID: fakeecs.TestAccessKeyID, AccessKeySecret: fakeecs.TestAccessKeySecret,
		Endpoint: srv.URL, PollInterval: time.Millisecond, RetryBaseDelay: time.Millisecond,
	}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = b.Create(ctx, testSpec())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create error = %v, want context.DeadlineExceeded", err)
	}
}

func TestCreateWithLongIdempotencyKey(t *testing.T) {
	srv, b := newTestBackend(t)
	spec := testSpec()
	spec.IdempotencyKey = strings.Repeat("module.training.hadron_gpu_instance.node[\"a100\"]/", 5)
	first, err := b.Create(ctxT(t), spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if v := first.Tags[tagIdemKey]; len(v) > 128 || !strings.HasPrefix(v, "sha256:") {
		t.Errorf("idempotency tag = %q, want a digest within ECS's 128 characters", v)
	}
	again, err := b.Create(ctxT(t), spec)
	if err != nil || again.ID != first.ID || len(srv.AllInstances()) != 1 {
		t.Errorf("second Create = %v, %v with %d instances; want the same instance", again, err, len(srv.AllInstances()))
	}
}

func TestCreateConcurrently(t *testing.T) {
	srv, b := newTestBackend(t)
	ctx := ctxT(t)
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			spec := testSpec(hz(zoneH), hz(zoneI))
			spec.Name = fmt.Sprintf("node-%d", i)
			spec.IdempotencyKey = fmt.Sprintf("hadron_gpu_instance.node[%d]", i)
			inst, err := b.Create(ctx, spec)
			if err == nil {
				err = b.Delete(ctx, inst.ID)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if all := srv.AllInstances(); len(all) != n {
		t.Errorf("instances created = %d, want %d", len(all), n)
	}
	if live, sgs := srv.Instances(), srv.SecurityGroups(); len(live) != 0 || len(sgs) != 0 {
		t.Errorf("left %d instances and %d security groups, want none", len(live), len(sgs))
	}
}

func TestCreateAgainstInstantFake(t *testing.T) {
	srv := fakeecs.Start(fakeecs.Options{Instant: true})
	t.Cleanup(srv.Close)
	// Default poll interval: an instant fake must not make Create wait for it.
	b, err := NewWithEnv(context.Background(), Config{
		Region: "cn-hangzhou", AccessKeyID: fakeecs.TestAccessKeyID, AccessKeySecret: fakeecs.TestAccessKeySecret, Endpoint: srv.URL,
	}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	inst, err := b.Create(ctx, testSpec())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n := srv.CallCount("DescribeInstances"); n > 8 {
		t.Errorf("DescribeInstances calls = %d, want a handful (no polling)", n)
	}
}

func TestDefaultImageAcrossPages(t *testing.T) {
	srv, b := newTestBackend(t)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 150 {
		srv.AddImage(fmt.Sprintf("centos_stream_9_x64_20G_alibase_%03d.vhd", i), base)
	}
	newest := "ubuntu_24_04_x64_20G_alibase_20260301.vhd"
	srv.AddImage(newest, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	srv.AddImage("ubuntu_26_10_x64_20G_alibase_20261020.vhd", time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)) // interim release

	inst, err := b.Create(ctxT(t), testSpec())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if fi, _ := srv.Instance(inst.ID); fi.ImageID != newest {
		t.Errorf("ImageID = %s, want %s from the second page", fi.ImageID, newest)
	}
	if n := srv.CallCount("DescribeImages"); n != 2 {
		t.Errorf("DescribeImages calls = %d, want 2 pages", n)
	}
}
