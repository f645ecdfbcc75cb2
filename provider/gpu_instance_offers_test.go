package provider

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

// Credentials the in-process fake EC2 of these tests accepts.
const (
	offersAWSAccessKey = "AKIDHADRONOFFERSTEST"
	offersAWSSecretKey = "hadron-offers-test-secret"
)

// offerClouds are fake EC2 and ECS endpoints serving every region and zone
// the GPU catalog prices, so that any candidate the plan pins exists there.
type offerClouds struct {
	ec2 *fakeec2.Server
	ecs *fakeecs.Server
}

func startOfferClouds(t *testing.T) *offerClouds {
	t.Helper()
	cat, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	zones := func(cloudName string) map[string][]string {
		out := map[string][]string{}
		for _, r := range cat.Regions(cloudName) {
			out[r], _ = cat.ZonesFor(cloudName, r)
		}
		return out
	}
	// Instances run at the first poll and are gone at the first poll after
	// delete, so the backends' default poll intervals never make a test wait.
	ec2, err := fakeec2.Start(fakeec2.Config{AccessKeyID: offersAWSAccessKey, SecretAccessKey: offersAWSSecretKey, Zones: zones("aws")}, "")
	if err != nil {
		t.Fatalf("starting fake EC2: %v", err)
	}
	t.Cleanup(func() { _ = ec2.Close() })
	ecs := fakeecs.Start(fakeecs.Options{Instant: true, Zones: zones("aliyun")})
	t.Cleanup(ecs.Close)
	return &offerClouds{ec2: ec2, ecs: ecs}
}

// providerConfig points both clouds of the provider at the fakes.
func (c *offerClouds) providerConfig(budget float64) string {
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
  aliyun {
    region     = "cn-hangzhou"
    access_key = %q
    secret_key = %q
    endpoint   = %q
  }
  budget {
    max_hourly_price = %g
  }
}
`, offersAWSAccessKey, offersAWSSecretKey, c.ec2.URL, fakeecs.TestAccessKeyID, fakeecs.TestAccessKeySecret, c.ecs.URL, budget)
}

// checkNothingLeft verifies that destroy left no instance and no
// Hadron-managed security group in either fake.
func (c *offerClouds) checkNothingLeft(*terraform.State) error {
	if live := c.ec2.LiveInstances(); len(live) > 0 {
		return fmt.Errorf("destroy left %d EC2 instances: %+v", len(live), live)
	}
	if insts := c.ecs.Instances(); len(insts) > 0 {
		return fmt.Errorf("destroy left %d ECS instances: %+v", len(insts), insts)
	}
	for _, g := range c.ec2.SecurityGroups() {
		if g.Tags["hadron:managed-by"] != "" {
			return fmt.Errorf("destroy left EC2 security group %s (%s)", g.ID, g.Name)
		}
	}
	for _, g := range c.ecs.SecurityGroups() {
		if g.Tags["hadron:managed-by"] != "" {
			return fmt.Errorf("destroy left ECS security group %s (%s)", g.ID, g.Name)
		}
	}
	return nil
}

// candidatesKnownValue is the plan value of a candidate list.
func candidatesKnownValue(cands []catalog.Candidate) knownvalue.Check {
	elems := make([]knownvalue.Check, len(cands))
	for i, c := range cands {
		elems[i] = knownvalue.ObjectExact(map[string]knownvalue.Check{
			"cloud":         knownvalue.StringExact(c.Cloud),
			"region":        knownvalue.StringExact(c.Region),
			"zone":          knownvalue.StringExact(c.Zone),
			"instance_type": knownvalue.StringExact(c.InstanceType),
			"spot":          knownvalue.Bool(c.Spot),
			"hourly_price":  knownvalue.Float64Exact(c.HourlyPrice),
		})
	}
	return knownvalue.ListExact(elems)
}

// TestAccGPUInstance_offersAcrossClouds is the "done when": one
// A10-class GPU, cheapest of AWS and Aliyun, under $1.50/h. The plan pins
// the candidates with their prices; with every AWS candidate out of
// capacity, apply lands on the first Aliyun candidate and records it; the
// budget counts the price where it landed.
func TestAccGPUInstance_offersAcrossClouds(t *testing.T) {
	clouds := startOfferClouds(t)
	cat, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	// What the plan must pin: the catalog's candidates for the same
	// requirement (AWS zones first, cheapest; then Aliyun's).
	want, err := cat.Candidates(catalog.Request{Filter: catalog.Filter{
		GPU: mustGPU(t, "A10|A10G:1"), Clouds: []string{"aws", "aliyun"}, MaxHourlyPrice: 1.5}})
	if err != nil {
		t.Fatal(err)
	}
	var awsCands []catalog.Candidate
	landing := -1
	for i, c := range want {
		if c.Cloud == "aws" {
			awsCands = append(awsCands, c)
		} else if landing < 0 {
			landing = i
		}
	}
	// The same candidates as catalog.json prices them, so that a catalog
	// refresh that changes the story shows up here.
	if c := want[0]; c.Cloud != "aws" || c.Zone != "us-east-1a" || c.InstanceType != "g5.xlarge" || c.HourlyPrice != 1.006 {
		t.Fatalf("first candidate = %s, want aws us-east-1a g5.xlarge at $1.006/h", c)
	}
	if landing < 0 || want[landing].Zone != "cn-beijing-h" || want[landing].InstanceType != "ecs.gn7i-c8g1.2xlarge" || want[landing].HourlyPrice != 1.33 {
		t.Fatalf("candidates %v: want the first Aliyun one to be cn-beijing-h ecs.gn7i-c8g1.2xlarge at $1.33/h", want)
	}
	land := want[landing]

	const addr = "hadron_gpu_instance.a10"
	// The data source with the same requirement shows the offer the plan
	// pins first.
	a10 := `
data "hadron_gpu_offers" "a10" {
  gpu              = "A10|A10G:1"
  clouds           = ["aws", "aliyun"]
  max_hourly_price = 1.5
}

resource "hadron_gpu_instance" "a10" {
  name             = "offers-a10"
  clouds           = ["aws", "aliyun"]
  max_hourly_price = 1.5
  install_runtime  = false
  gpu {
    model = "A10|A10G"
    count = 1
  }
}
`
	t4 := `
resource "hadron_gpu_instance" "t4" {
  name            = "offers-t4"
  cloud           = "aws"
  region          = "us-east-1"
  install_runtime = false
  gpu {
    model = "T4"
    count = 1
  }
}
`
	t4Price, ok := cat.Price("aws", "us-east-1", "g4dn.xlarge", false)
	if !ok || t4Price != 0.526 {
		t.Fatalf("catalog price of g4dn.xlarge in us-east-1 = %v (%v), want 0.526", t4Price, ok)
	}

	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             clouds.checkNothingLeft,
		Steps: []resource.TestStep{
			{
				// The plan shows where apply may land, in order, with prices.
				Config:             clouds.providerConfig(1.5) + a10,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("candidates"), candidatesKnownValue(want)),
					// Candidates span clouds and prices: where it lands, and
					// so its price, are known after apply.
					plancheck.ExpectUnknownValue(addr, tfjsonpath.New("cloud")),
					plancheck.ExpectUnknownValue(addr, tfjsonpath.New("instance_type")),
					plancheck.ExpectUnknownValue(addr, tfjsonpath.New("hourly_price")),
				}},
			},
			{
				// Every AWS candidate is out of capacity: apply moves on to Aliyun.
				PreConfig: func() {
					var faults []fakeec2.CapacityFault
					for _, c := range awsCands {
						faults = append(faults, fakeec2.CapacityFault{Zone: c.Zone, InstanceType: c.InstanceType})
					}
					clouds.ec2.SetFaults(fakeec2.Faults{Capacity: faults})
				},
				Config: clouds.providerConfig(1.5) + a10,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("candidates"), candidatesKnownValue(want)),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "cloud", "aliyun"),
					resource.TestCheckResourceAttr(addr, "region", land.Region),
					resource.TestCheckResourceAttr(addr, "zone", land.Zone),
					resource.TestCheckResourceAttr(addr, "instance_type", land.InstanceType),
					resource.TestCheckResourceAttr(addr, "hourly_price", "1.33"),
					resource.TestCheckResourceAttr(addr, "candidates.#", fmt.Sprint(len(want))),
					resource.TestCheckResourceAttr(addr, "candidates.0.instance_type", "g5.xlarge"),
					resource.TestCheckResourceAttrPair("data.hadron_gpu_offers.a10", "cheapest.instance_type", addr, "candidates.0.instance_type"),
					resource.TestCheckResourceAttrPair("data.hadron_gpu_offers.a10", "cheapest.region", addr, "candidates.0.region"),
					resource.TestCheckResourceAttrPair("data.hadron_gpu_offers.a10", "cheapest.hourly_price", addr, "candidates.0.hourly_price"),
					func(*terraform.State) error { return checkLandedAfterAWSCapacity(clouds, awsCands, land) },
				),
			},
			{
				// A second instance takes the plan over budget: $1.33 where the
				// first landed plus $0.526 is more than $1.50.
				Config: clouds.providerConfig(1.5) + a10 + t4,
				ExpectError: wrappedRE(`(?s)Budget Exceeded.*hourly price \$1.856/h of 2 items exceeds the budget of \$1.50/h by \$0.356/h; ` +
					`biggest: offers-a10 \$1.33/h \(72%\), offers-t4 \$0.526/h \(28%\)`),
			},
			{
				// Within budget, the same plan passes.
				Config:             clouds.providerConfig(2) + a10 + t4,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionNoop),
					plancheck.ExpectResourceAction("hadron_gpu_instance.t4", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("hadron_gpu_instance.t4", tfjsonpath.New("hourly_price"), knownvalue.Float64Exact(t4Price)),
					plancheck.ExpectKnownValue("hadron_gpu_instance.t4", tfjsonpath.New("cloud"), knownvalue.StringExact("aws")),
				}},
			},
		},
	})
}

// checkLandedAfterAWSCapacity checks the fakes' side of the fallback: one
// refused RunInstances per AWS candidate, no EC2 instance, and exactly one
// ECS instance, where the state says.
func checkLandedAfterAWSCapacity(c *offerClouds, awsCands []catalog.Candidate, land catalog.Candidate) error {
	var codes []string
	for _, call := range c.ec2.Calls() {
		if call.Action == "RunInstances" {
			codes = append(codes, call.Code)
		}
	}
	if len(codes) != len(awsCands) {
		return fmt.Errorf("EC2 RunInstances calls = %d (%v), want one per AWS candidate (%d)", len(codes), codes, len(awsCands))
	}
	for i, code := range codes {
		if code != "InsufficientInstanceCapacity" {
			return fmt.Errorf("EC2 RunInstances call %d answered %q, want InsufficientInstanceCapacity", i+1, code)
		}
	}
	if n := len(c.ec2.Instances()); n != 0 {
		return fmt.Errorf("fake EC2 holds %d instances, want none", n)
	}
	insts := c.ecs.Instances()
	if len(insts) != 1 {
		return fmt.Errorf("fake ECS holds %d instances, want 1", len(insts))
	}
	got := insts[0]
	if got.Region != land.Region || got.Zone != land.Zone || got.InstanceType != land.InstanceType || got.Status != "Running" {
		return fmt.Errorf("ECS instance %s %s %s is %s, want %s %s running", got.Zone, got.InstanceType, got.ID, got.Status, land.Zone, land.InstanceType)
	}
	if calls := c.ecs.Calls("RunInstances"); len(calls) != 1 || calls[0].Params["ZoneId"] != land.Zone {
		return fmt.Errorf("ECS RunInstances calls = %+v, want one, in %s", calls, land.Zone)
	}
	return nil
}

// TestAccGPUInstance_offersBudget checks the budget at plan time without any
// cloud: instances are priced from the catalog before anything is created.
func TestAccGPUInstance_offersBudget(t *testing.T) {
	instances := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `
resource "hadron_gpu_instance" "g%d" {
  name            = "budget-%d"
  cloud           = "aws"
  region          = "us-west-2"
  install_runtime = false
  gpu {
    model = "A10G"
    count = 1
  }
}
`, i, i)
		}
		return b.String()
	}
	budget := func(max float64) string {
		return fmt.Sprintf("provider \"hadron\" {\n  budget {\n    max_hourly_price = %g\n  }\n}\n", max)
	}
	tests := []struct {
		name    string
		config  string
		wantErr string
	}{
		{"three g5.xlarge over 3.00", budget(3) + instances(3),
			`(?s)Budget Exceeded.*hourly price \$3.018/h of 3 items exceeds the budget of \$3.00/h by \$0.018/h`},
		{"four name the three biggest", budget(3.5) + instances(4),
			`(?s)Budget Exceeded.*\$4.024/h of 4 items exceeds the budget of \$3.50/h by \$0.524/h; biggest: budget-0 \$1.006/h \(25%\), budget-1 \$1.006/h \(25%\), budget-2 \$1.006/h \(25%\)`},
		// Apply may fall back to any pinned candidate: the budget counts the
		// priciest ($1.33/h on Aliyun), not the first ($1.006/h on AWS).
		{"fallbacks count at their price", budget(1.2) + `
resource "hadron_gpu_instance" "a10" {
  name             = "budget-a10"
  clouds           = ["aws", "aliyun"]
  max_hourly_price = 1.5
  install_runtime  = false
  gpu {
    model = "A10|A10G"
    count = 1
  }
}
`, `(?s)Budget Exceeded.*hourly price \$1.33/h of 1 item exceeds the budget of \$1.20/h by \$0.13/h; biggest: budget-a10 \$1.33/h`},
		{"three g5.xlarge within 3.10", budget(3.1) + instances(3), ""},
		{"no budget", instances(3), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step := resource.TestStep{Config: tt.config, PlanOnly: true}
			if tt.wantErr != "" {
				step.ExpectError = wrappedRE(tt.wantErr)
			} else {
				step.ExpectNonEmptyPlan = true
				step.ConfigPlanChecks.PostApplyPreRefresh = []plancheck.PlanCheck{
					plancheck.ExpectKnownValue("hadron_gpu_instance.g0", tfjsonpath.New("hourly_price"), knownvalue.Float64Exact(1.006)),
					plancheck.ExpectKnownValue("hadron_gpu_instance.g2", tfjsonpath.New("instance_type"), knownvalue.StringExact("g5.xlarge")),
				}
			}
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps:                    []resource.TestStep{step},
			})
		})
	}
}
