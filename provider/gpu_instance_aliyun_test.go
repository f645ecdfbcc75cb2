package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

// testAliyunType is the GPU instance type the Alibaba Cloud tests ask for
// (one A10); the catalog offers it in cn-hangzhou-h, -i, -j and -k.
const testAliyunType = "ecs.gn7i-c8g1.2xlarge"

// startFakeECS starts an in-process fake ECS endpoint for one test, in its
// instant mode: instances are Running when created and released at once on
// DeleteInstance, so the backend's 5s poll interval never shows.
func startFakeECS(t *testing.T) *fakeecs.Server {
	t.Helper()
	srv := fakeecs.Start(fakeecs.Options{Instant: true})
	t.Cleanup(srv.Close)
	return srv
}

// aliyunProviderConfig points the provider's aliyun block at a fake endpoint.
func aliyunProviderConfig(endpoint string) string {
	return fmt.Sprintf(`
provider "hadron" {
  aliyun {
    region     = "cn-hangzhou"
    access_key = %q
    secret_key = %q
    endpoint   = %q
  }
}
`, fakeecs.TestAccessKeyID, fakeecs.TestAccessKeySecret, endpoint)
}

// checkECSClean verifies that no instance is left in the fake and that the
// security groups and key pairs Hadron made are gone.
func checkECSClean(srv *fakeecs.Server) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if live := srv.Instances(); len(live) > 0 {
			return fmt.Errorf("%d instances not released after destroy, first %s (%s)", len(live), live[0].ID, live[0].Status)
		}
		for _, sg := range srv.SecurityGroups() {
			if _, ok := sg.Tags["hadron:managed-by"]; ok {
				return fmt.Errorf("managed security group %s (%s) left after destroy", sg.ID, sg.Name)
			}
		}
		if kps := srv.KeyPairs(); len(kps) > 0 {
			return fmt.Errorf("key pair %s left after destroy", kps[0].Name)
		}
		return nil
	}
}

// TestAccGPUInstanceAliyun_noStockFallbackImportReclaim: cn-hangzhou-h has
// no stock (DescribeAvailableResource says so, and it is skipped) and
// cn-hangzhou-i answers RunInstances with OperationDenied.NoStock, so the
// instance lands in cn-hangzhou-j and state says so; the plan after create is
// empty; import reads it back; reclaimed (spot), it is planned for
// replacement and comes back; reclaimed again and released, it stays in state
// as gone and destroy still leaves nothing behind.
func TestAccGPUInstanceAliyun_noStockFallbackImportReclaim(t *testing.T) {
	srv := startFakeECS(t)
	srv.SetStock("cn-hangzhou", "cn-hangzhou-h", testAliyunType, false)
	srv.FailRunInstances("cn-hangzhou-i", testAliyunType, "OperationDenied.NoStock")
	config := aliyunProviderConfig(srv.URL) + fmt.Sprintf(`
resource "hadron_gpu_instance" "test" {
  name            = "acc-aliyun-fallback"
  cloud           = "aliyun"
  zones           = ["cn-hangzhou-h", "cn-hangzhou-i", "cn-hangzhou-j"]
  instance_type   = %q
  spot            = true
  allowed_cidrs   = ["198.51.100.0/24"]
  ssh_public_key  = %q
  install_runtime = false
  tags            = { team = "ml" }
}
`, testAliyunType, testSSHPublicKey(t))
	const name = "hadron_gpu_instance.test"
	var firstID, secondID string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkECSClean(srv),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(name, "cloud", "aliyun"),
					resource.TestCheckResourceAttr(name, "region", "cn-hangzhou"),
					resource.TestCheckResourceAttr(name, "zone", "cn-hangzhou-j"),
					resource.TestCheckResourceAttr(name, "instance_type", testAliyunType),
					resource.TestCheckResourceAttr(name, "spot", "true"),
					resource.TestCheckResourceAttr(name, "candidates.#", "3"),
					resource.TestCheckResourceAttr(name, "candidates.0.zone", "cn-hangzhou-h"),
					resource.TestCheckResourceAttr(name, "candidates.1.zone", "cn-hangzhou-i"),
					resource.TestCheckResourceAttr(name, "candidates.2.zone", "cn-hangzhou-j"),
					resource.TestCheckResourceAttr(name, "status", "running"),
					resource.TestMatchResourceAttr(name, "id", regexp.MustCompile(`^i-bp[0-9a-z]+$`)),
					resource.TestMatchResourceAttr(name, "image_id", regexp.MustCompile(`^ubuntu_`)),
					checkLandedPrice(name),
					captureID(name, &firstID),
					func(*terraform.State) error { return checkECSLanded(srv, firstID) },
				),
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateIdFunc: func(*terraform.State) (string, error) { return "aliyun:" + firstID, nil },
				ImportStateVerify: true,
				ImportStateVerifyIgnore: []string{
					// Not read back from the cloud: user-set timeouts, and the
					// inputs that only steer a create (where to try, what to
					// allow in, which key to import).
					"timeouts", "zones", "allowed_cidrs", "ssh_public_key",
					// Import cannot tell where apply would have tried: it pins
					// only the candidate the instance is on (hourly_price, the
					// landed candidate's, is verified).
					"candidates",
				},
			},
			{
				// A spot reclaim: the instance is being recycled (still listed,
				// with the Recycling lock), which counts as gone: the plan
				// replaces it, releasing what is left of it.
				PreConfig: func() {
					if err := srv.Reclaim(firstID); err != nil {
						t.Fatalf("reclaiming %s: %v", firstID, err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionReplace),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(name, "zone", "cn-hangzhou-j"),
					captureID(name, &secondID),
					func(*terraform.State) error {
						if secondID == firstID {
							return fmt.Errorf("instance %s was not created again", firstID)
						}
						if err := srv.Release(firstID); err == nil {
							return fmt.Errorf("reclaimed instance %s was not released by the replacement", firstID)
						}
						return checkECSLanded(srv, secondID)
					},
				),
			},
			{
				// The second is reclaimed too: refresh keeps it in state as
				// gone, so that Terraform still knows what to clean up.
				PreConfig: func() {
					if err := srv.Reclaim(secondID); err != nil {
						t.Fatalf("reclaiming %s: %v", secondID, err)
					}
				},
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check:              resource.TestCheckResourceAttr(name, "status", "gone"),
			},
			{
				// ECS finishes recycling it and releases it: no longer listed.
				// The plan still replaces it, and the destroy that ends the
				// test removes its security group and key pair by the ids kept
				// in private state (checkECSClean).
				PreConfig: func() {
					if err := srv.Release(secondID); err != nil {
						t.Fatalf("releasing %s: %v", secondID, err)
					}
				},
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionReplace),
				}},
			},
		},
	})
}

// checkECSLanded verifies in the fake that id is the only live instance, in
// cn-hangzhou-j, with the tags Hadron sets, and that the create tried
// cn-hangzhou-i (NoStock) but never cn-hangzhou-h (no stock listed).
func checkECSLanded(srv *fakeecs.Server, id string) error {
	in, ok := srv.Instance(id)
	if !ok {
		return fmt.Errorf("instance %s is unknown to the fake", id)
	}
	if in.Zone != "cn-hangzhou-j" || in.Status != "Running" || in.SpotStrategy == "NoSpot" {
		return fmt.Errorf("instance %s is %s in %s (spot strategy %s), want a Running spot instance in cn-hangzhou-j", id, in.Status, in.Zone, in.SpotStrategy)
	}
	if in.Tags["Name"] != "acc-aliyun-fallback" || in.Tags["team"] != "ml" || in.Tags["hadron:managed-by"] == "" {
		return fmt.Errorf("instance %s tags = %v, want Name, team and hadron:managed-by", id, in.Tags)
	}
	live := 0
	for _, in := range srv.Instances() {
		if !in.Reclaimed {
			live++
		}
	}
	if live != 1 {
		return fmt.Errorf("%d instances neither released nor reclaimed, want 1", live)
	}
	var tried []string
	for _, c := range srv.Calls("RunInstances") {
		tried = append(tried, c.Params["ZoneId"]+":"+c.Code)
	}
	// The create that made the instance was refused in cn-hangzhou-i first,
	// then succeeded in cn-hangzhou-j. (A re-create after a reclaim first
	// gets the released instance's client token refused, and steps to a new
	// token: one more call in cn-hangzhou-j.)
	last := -1
	for i, z := range tried {
		if z == "cn-hangzhou-i:OperationDenied.NoStock" {
			last = i
		}
	}
	if last < 0 || last == len(tried)-1 {
		return fmt.Errorf("RunInstances calls (zone:error) = %q, want cn-hangzhou-i refused with OperationDenied.NoStock, then cn-hangzhou-j", tried)
	}
	if tried[len(tried)-1] != "cn-hangzhou-j:" {
		return fmt.Errorf("RunInstances calls (zone:error) = %q, want the last to succeed in cn-hangzhou-j", tried)
	}
	for _, z := range tried[last+1:] {
		if z != "cn-hangzhou-j:" && z != "cn-hangzhou-j:IdempotentParameterMismatch" {
			return fmt.Errorf("RunInstances calls (zone:error) = %q, want only successes in cn-hangzhou-j after cn-hangzhou-i refused", tried)
		}
	}
	for _, z := range tried {
		if strings.HasPrefix(z, "cn-hangzhou-h:") {
			return fmt.Errorf("RunInstances was sent to cn-hangzhou-h, which had no stock: %q", tried)
		}
	}
	return nil
}

// holdRunInstances serves a fake ECS endpoint but, while holding, withholds
// the answer to RunInstances once the fake has created the instance, until
// the client goes away: what a terraform killed right after sending
// RunInstances experiences.
type holdRunInstances struct {
	next     http.Handler
	hold     atomic.Bool
	received chan struct{} // closed at the first held RunInstances
	once     sync.Once
	release  chan struct{} // closed at clean-up
}

func (h *holdRunInstances) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "RunInstances" || !h.hold.Load() {
		h.next.ServeHTTP(w, r)
		return
	}
	h.next.ServeHTTP(httptest.NewRecorder(), r)
	h.once.Do(func() { close(h.received) })
	select {
	case <-r.Context().Done():
	case <-h.release:
	}
}

// waitReceived waits until a RunInstances answer is being withheld.
func (h *holdRunInstances) waitReceived(ctx context.Context) error {
	select {
	case <-h.received:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no RunInstances reached the fake: %w", ctx.Err())
	}
}

// TestAccGPUInstanceAliyun_crashAfterRunInstances runs the real terraform
// CLI with a provider binary built from this repository, SIGKILLs it and its
// provider right after RunInstances reached ECS (the answer is withheld, so
// nothing was saved), and applies again: the instance of the killed apply is
// found, not duplicated, and ends up in state; destroy releases it.
func TestAccGPUInstanceAliyun_crashAfterRunInstances(t *testing.T) {
	t.Parallel()
	fake := fakeecs.New(fakeecs.Options{Instant: true})
	h := &holdRunInstances{next: fake, received: make(chan struct{}), release: make(chan struct{})}
	h.hold.Store(true)
	ts := httptest.NewServer(h)
	t.Cleanup(func() { close(h.release); ts.Close() })

	run := newCLIRun(t, aliyunProviderConfig(ts.URL)+fmt.Sprintf(`
terraform {
  required_providers {
    hadron = { source = "hadron-ai/hadron" }
  }
}

resource "hadron_gpu_instance" "test" {
  name            = "acc-aliyun-crash"
  cloud           = "aliyun"
  zones           = ["cn-hangzhou-h", "cn-hangzhou-i"]
  instance_type   = %q
  allowed_cidrs   = ["198.51.100.0/24"]
  install_runtime = false
}
`, testAliyunType))
	ctx := testContext(t)
	out := run.killed(t, ctx, h.waitReceived, "apply", "-auto-approve", "-input=false")
	if live := fake.Instances(); len(live) != 1 {
		t.Fatalf("after the kill: %d instances, want the 1 RunInstances made\n%s", len(live), out)
	}
	if ids := run.stateIDs(t); len(ids) != 0 {
		t.Fatalf("the killed apply saved instances %q: it was not killed between RunInstances and the state save", ids)
	}
	h.hold.Store(false)

	run.run(t, ctx, "apply", "-auto-approve", "-input=false")
	all := fake.AllInstances()
	if len(all) != 1 {
		var ids []string
		for _, in := range all {
			ids = append(ids, in.ID+" ("+in.Status+", token "+in.ClientToken+")")
		}
		t.Fatalf("after the re-apply the fake has %d instances (released included), want exactly 1: %q", len(all), ids)
	}
	if ids := run.stateIDs(t); len(ids) != 1 || ids[0] != all[0].ID {
		t.Fatalf("state holds instances %q, want [%s]", ids, all[0].ID)
	}
	if plan := run.run(t, ctx, "plan", "-input=false", "-detailed-exitcode"); !strings.Contains(plan, "No changes") {
		t.Fatalf("plan after the re-apply is not empty:\n%s", plan)
	}

	run.run(t, ctx, "destroy", "-auto-approve", "-input=false")
	if err := checkECSClean(fake)(nil); err != nil {
		t.Fatal(err)
	}
}

// TestAccGPUInstanceAliyun_badInput: placement mistakes fail the plan, naming
// the attribute, before anything reaches ECS.
func TestAccGPUInstanceAliyun_badInput(t *testing.T) {
	srv := startFakeECS(t)
	tests := []struct {
		name     string
		provider string
		config   string
		want     *regexp.Regexp
	}{
		{"unknown gpu model", aliyunProviderConfig(srv.URL), `
resource "hadron_gpu_instance" "x" {
  name            = "x"
  cloud           = "aliyun"
  install_runtime = false
  gpu {
    model = "Z9000"
  }
}`, diagRE("No Matching GPU Offer", "no instance type has GPU Z9000")},
		{"zone not in region", aliyunProviderConfig(srv.URL), `
resource "hadron_gpu_instance" "x" {
  name            = "x"
  cloud           = "aliyun"
  instance_type   = "` + testAliyunType + `"
  zones           = ["cn-hangzhou-h", "cn-shanghai-f"]
  install_runtime = false
}`, diagRE("Zone Not In Region", `zones = ["cn-hangzhou-h", "cn-shanghai-f"]`, `"cn-shanghai-f"`, "cn-hangzhou")},
		{"missing region", fmt.Sprintf(`
provider "hadron" {
  aliyun {
    access_key = %q
    secret_key = %q
    endpoint   = %q
  }
}`, fakeecs.TestAccessKeyID, fakeecs.TestAccessKeySecret, srv.URL), `
resource "hadron_gpu_instance" "x" {
  name            = "x"
  cloud           = "aliyun"
  instance_type   = "` + testAliyunType + `"
  install_runtime = false
}`, diagRE("Missing Region", "Set region, or a region in the provider's aliyun block (or ALIBABA_CLOUD_REGION_ID).")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: providerFactoriesHiding(regionEnvVars...),
				Steps: []resource.TestStep{{
					Config:      tt.provider + tt.config,
					PlanOnly:    true,
					ExpectError: tt.want,
				}},
			})
		})
	}
	t.Cleanup(func() {
		if n := srv.CallCount(""); n != 0 {
			t.Errorf("bad input reached ECS: %d calls", n)
		}
	})
}
