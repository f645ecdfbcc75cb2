package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
)

// Credentials the fake EC2 endpoints of these tests accept.
const (
	testAWSAccessKey = "AKIDHADRONACCTEST"
	testAWSSecretKey = "hadron-acc-test-secret"
)

// startFakeEC2 starts an in-process fake EC2 endpoint for one test. New
// instances run at their first DescribeInstances and terminate at the first
// poll after TerminateInstances, so the backend's 5s poll interval never
// shows.
func startFakeEC2(t *testing.T, cfg fakeec2.Config) *fakeec2.Server {
	t.Helper()
	cfg.AccessKeyID, cfg.SecretAccessKey = testAWSAccessKey, testAWSSecretKey
	srv, err := fakeec2.Start(cfg, "")
	if err != nil {
		t.Fatalf("starting fake EC2: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// awsProviderConfig points the provider's aws block at a fake endpoint.
func awsProviderConfig(endpoint string) string {
	return fmt.Sprintf(`
provider "hadron" {
  aws {
    region     = "us-east-1"
    access_key = %q
    secret_key = %q
    endpoints {
      ec2 = %q
    }
  }
}
`, testAWSAccessKey, testAWSSecretKey, endpoint)
}

// checkEC2Clean verifies that no instance is live in the fake and that the
// security groups and key pairs Hadron made are gone.
func checkEC2Clean(srv *fakeec2.Server) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if live := srv.LiveInstances(); len(live) > 0 {
			return fmt.Errorf("%d instances still live after destroy, first %s (%s)", len(live), live[0].ID, live[0].State)
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

// TestAccGPUInstanceAWS_capacityFallbackImportReclaim: zone a has no
// capacity, so the instance lands in zone b, and state says so; the plan
// after create is empty; import reads the same instance back; a spot-style
// termination out of band plans a replacement and the instance comes back;
// terminated again, refresh keeps it in state as gone and destroy removes
// what Hadron made for it.
func TestAccGPUInstanceAWS_capacityFallbackImportReclaim(t *testing.T) {
	srv := startFakeEC2(t, fakeec2.Config{})
	srv.SetFaults(fakeec2.Faults{Capacity: []fakeec2.CapacityFault{{Zone: "us-east-1a"}}})
	config := awsProviderConfig(srv.URL) + fmt.Sprintf(`
resource "hadron_gpu_instance" "test" {
  name            = "acc-aws-fallback"
  cloud           = "aws"
  zones           = ["us-east-1a", "us-east-1b"]
  instance_type   = "g5.xlarge"
  allowed_cidrs   = ["198.51.100.0/24"]
  ssh_public_key  = %q
  install_runtime = false
  tags            = { team = "ml" }
}
`, testSSHPublicKey(t))
	const name = "hadron_gpu_instance.test"
	var firstID, secondID string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkEC2Clean(srv),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(name, "cloud", "aws"),
					resource.TestCheckResourceAttr(name, "region", "us-east-1"),
					resource.TestCheckResourceAttr(name, "zone", "us-east-1b"),
					resource.TestCheckResourceAttr(name, "instance_type", "g5.xlarge"),
					resource.TestCheckResourceAttr(name, "candidates.#", "2"),
					resource.TestCheckResourceAttr(name, "candidates.0.zone", "us-east-1a"),
					resource.TestCheckResourceAttr(name, "candidates.1.zone", "us-east-1b"),
					resource.TestCheckResourceAttr(name, "image_id", fakeec2.DefaultImageID),
					resource.TestCheckResourceAttr(name, "status", "running"),
					resource.TestMatchResourceAttr(name, "id", regexp.MustCompile(`^i-[0-9a-f]+$`)),
					resource.TestMatchResourceAttr(name, "private_ip", regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)),
					checkLandedPrice(name),
					captureID(name, &firstID),
					func(*terraform.State) error { return checkEC2Landed(srv, firstID, "us-east-1b") },
				),
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateIdFunc: func(*terraform.State) (string, error) { return "aws:" + firstID, nil },
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
				// Stopped in the console: refresh says so, and the next apply
				// starts the same instance again.
				PreConfig: func() {
					if err := srv.Stop(firstID); err != nil {
						t.Fatalf("stopping %s out of band: %v", firstID, err)
					}
				},
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check:              resource.TestCheckResourceAttr(name, "status", "stopped"),
			},
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(name, "status", "running"),
					resource.TestCheckResourceAttrPtr(name, "id", &firstID),
				),
			},
			{
				// A spot reclaim: the instance terminates out of band, and the
				// plan replaces it.
				PreConfig: func() {
					if err := srv.Terminate(firstID, false); err != nil {
						t.Fatalf("terminating %s out of band: %v", firstID, err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionReplace),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(name, "zone", "us-east-1b"),
					captureID(name, &secondID),
					func(*terraform.State) error {
						if secondID == firstID {
							return fmt.Errorf("instance %s was not created again", firstID)
						}
						return checkEC2Landed(srv, secondID, "us-east-1b")
					},
				),
			},
			{
				// Reclaimed again: refresh keeps it in state as gone, so that
				// Terraform still knows what to clean up.
				PreConfig: func() {
					if err := srv.Terminate(secondID, true); err != nil {
						t.Fatalf("terminating %s out of band: %v", secondID, err)
					}
				},
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check:              resource.TestCheckResourceAttr(name, "status", "gone"),
			},
			{
				// An hour later EC2 no longer lists it; the plan still replaces
				// it, and the destroy that ends the test removes its security
				// group and key pair by the ids kept in private state
				// (checkEC2Clean).
				PreConfig: func() {
					if err := srv.Expire(secondID); err != nil {
						t.Fatalf("expiring %s: %v", secondID, err)
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

// checkEC2Landed verifies in the fake that id is the only live instance, in
// zone, with the tags Hadron sets, and that the first zone was tried first.
func checkEC2Landed(srv *fakeec2.Server, id, zone string) error {
	in, ok := srv.Instance(id)
	if !ok {
		return fmt.Errorf("instance %s is unknown to the fake", id)
	}
	if in.Zone != zone || in.State != "running" {
		return fmt.Errorf("instance %s is %s in %s, want running in %s", id, in.State, in.Zone, zone)
	}
	if in.Tags["Name"] != "acc-aws-fallback" || in.Tags["team"] != "ml" || in.Tags["hadron:managed-by"] == "" {
		return fmt.Errorf("instance %s tags = %v, want Name, team and hadron:managed-by", id, in.Tags)
	}
	if live := srv.LiveInstances(); len(live) != 1 {
		return fmt.Errorf("%d live instances, want 1", len(live))
	}
	var codes []string
	for _, c := range srv.Calls() {
		if c.Action == "RunInstances" {
			codes = append(codes, c.Code)
		}
	}
	// The create that made the instance was refused in zone a first. (A
	// re-create after a reclaim may then see its earlier token answered with
	// the terminated instance, and step to a new token: more answers.)
	n := len(codes)
	for i := range codes {
		if codes[i] == "InsufficientInstanceCapacity" {
			n = i
		}
	}
	if n == len(codes) || n == len(codes)-1 || codes[len(codes)-1] != "" {
		return fmt.Errorf("RunInstances answers = %q, want InsufficientInstanceCapacity (zone a) then success (zone b)", codes)
	}
	return nil
}

// TestAccGPUInstanceAWS_crashAfterRunInstances runs the real terraform CLI
// with a provider binary built from this repository, SIGKILLs it and its
// provider right after RunInstances reached EC2 (the answer is withheld, so
// nothing was saved), and applies again: the instance of the killed apply
// is found, not duplicated, and ends up in state; destroy removes it.
func TestAccGPUInstanceAWS_crashAfterRunInstances(t *testing.T) {
	t.Parallel()
	srv := startFakeEC2(t, fakeec2.Config{})
	srv.SetFaults(fakeec2.Faults{HoldRunInstances: true})
	run := newCLIRun(t, awsProviderConfig(srv.URL)+`
terraform {
  required_providers {
    hadron = { source = "hadron-ai/hadron" }
  }
}

resource "hadron_gpu_instance" "test" {
  name            = "acc-aws-crash"
  cloud           = "aws"
  zones           = ["us-east-1a", "us-east-1b"]
  instance_type   = "g5.xlarge"
  allowed_cidrs   = ["198.51.100.0/24"]
  install_runtime = false
}
`)
	ctx := testContext(t)
	out := run.killed(t, ctx, func(ctx context.Context) error { return srv.WaitForCalls(ctx, "RunInstances", 1) },
		"apply", "-auto-approve", "-input=false")
	if live := srv.LiveInstances(); len(live) != 1 {
		t.Fatalf("after the kill: %d live instances, want the 1 RunInstances made\n%s", len(live), out)
	}
	if ids := run.stateIDs(t); len(ids) != 0 {
		t.Fatalf("the killed apply saved instances %q: it was not killed between RunInstances and the state save", ids)
	}
	srv.SetFaults(fakeec2.Faults{}) // stop withholding answers
	srv.Release()

	run.run(t, ctx, "apply", "-auto-approve", "-input=false")
	all := srv.Instances()
	if len(all) != 1 {
		var ids []string
		for _, in := range all {
			ids = append(ids, in.ID+" ("+in.State+", token "+in.ClientToken+")")
		}
		t.Fatalf("after the re-apply the fake has %d instances (terminated included), want exactly 1: %q", len(all), ids)
	}
	if ids := run.stateIDs(t); len(ids) != 1 || ids[0] != all[0].ID {
		t.Fatalf("state holds instances %q, want [%s]", ids, all[0].ID)
	}
	if plan := run.run(t, ctx, "plan", "-input=false", "-detailed-exitcode"); !strings.Contains(plan, "No changes") {
		t.Fatalf("plan after the re-apply is not empty:\n%s", plan)
	}

	run.run(t, ctx, "destroy", "-auto-approve", "-input=false")
	if err := checkEC2Clean(srv)(nil); err != nil {
		t.Fatal(err)
	}
}

// TestAccGPUInstanceAWS_badInput: placement mistakes fail the plan, naming
// the attribute, before anything reaches EC2.
func TestAccGPUInstanceAWS_badInput(t *testing.T) {
	srv := startFakeEC2(t, fakeec2.Config{})
	tests := []struct {
		name     string
		provider string
		config   string
		want     *regexp.Regexp
	}{
		{"unknown gpu model", awsProviderConfig(srv.URL), `
resource "hadron_gpu_instance" "x" {
  name            = "x"
  cloud           = "aws"
  install_runtime = false
  gpu {
    model = "Z9000"
  }
}`, diagRE("No Matching GPU Offer", "no instance type has GPU Z9000")},
		{"zone not in region", awsProviderConfig(srv.URL), `
resource "hadron_gpu_instance" "x" {
  name            = "x"
  cloud           = "aws"
  instance_type   = "g5.xlarge"
  zone            = "eu-west-1a"
  install_runtime = false
}`, diagRE("Zone Not In Region", `zone = "eu-west-1a"`, `zone "eu-west-1a" is not in region us-east-1`)},
		{"missing region", `
provider "hadron" {
  aws {
    access_key = "` + testAWSAccessKey + `"
    secret_key = "` + testAWSSecretKey + `"
    endpoints {
      ec2 = "` + srv.URL + `"
    }
  }
}`, `
resource "hadron_gpu_instance" "x" {
  name            = "x"
  cloud           = "aws"
  instance_type   = "g5.xlarge"
  install_runtime = false
}`, diagRE("Missing Region", "Set region, or a region in the provider's aws block (or AWS_REGION).")},
		{"idle action without idle timeout", awsProviderConfig(srv.URL), `
resource "hadron_gpu_instance" "x" {
  name          = "x"
  cloud         = "aws"
  instance_type = "g5.xlarge"
  ssh {
    private_key = "unused"
  }
  runtime {
    idle_action = "poweroff"
  }
}`, diagRE("Idle Action Without Idle Timeout", `idle_action = "poweroff"`, "set idle_timeout")},
		{"unknown idle action", awsProviderConfig(srv.URL), `
resource "hadron_gpu_instance" "x" {
  name          = "x"
  cloud         = "aws"
  instance_type = "g5.xlarge"
  ssh {
    private_key = "unused"
  }
  runtime {
    idle_timeout = "1h"
    idle_action  = "halt"
  }
}`, diagRE("Invalid Attribute Value Match", "runtime.idle_action", `"stop" "poweroff"`, `"halt"`)},
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
			t.Errorf("bad input reached EC2: %d calls", n)
		}
	})
}
