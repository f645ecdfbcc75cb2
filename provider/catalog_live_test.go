package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

// liveAddr is the resource liveA10GConfig declares.
const liveAddr = "hadron_gpu_instance.live"

// liveA10GConfig asks for one A10G in us-east-1, on demand, and lists the
// spot offers of the same requirement.
const liveA10GConfig = `
resource "hadron_gpu_instance" "live" {
  name            = "live-a10g"
  cloud           = "aws"
  region          = "us-east-1"
  install_runtime = false
  gpu {
    model = "A10G"
    count = 1
  }
}

data "hadron_gpu_offers" "spot" {
  gpu     = "A10G:1"
  clouds  = ["aws"]
  regions = ["us-east-1"]
  spot    = "true"
}
`

// TestAccGPUInstance_liveOfferings shows live data changing the plan: EC2
// (the fake) offers g5.xlarge only in us-east-1b and none of the other
// A10G types in us-east-1, so the plan pins that one zone instead of the
// embedded catalog's, apply lands there, and the spot offer carries the
// live spot price instead of the estimate.
func TestAccGPUInstance_liveOfferings(t *testing.T) {
	srv := startFakeEC2(t, fakeec2.Config{
		Offerings: map[string]map[string][]string{"us-east-1": {"g5.xlarge": {"us-east-1b"}}},
		SpotPriceHistory: []fakeec2.SpotPrice{
			{InstanceType: "g5.xlarge", Zone: "us-east-1b", Price: 0.6, Timestamp: time.Now().Add(-2 * time.Hour)},
			{InstanceType: "g5.xlarge", Zone: "us-east-1b", Price: 0.4321, Timestamp: time.Now().Add(-time.Hour)},
		},
	})
	cat, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	price, ok := cat.Price("aws", "us-east-1", "g5.xlarge", false)
	if !ok {
		t.Fatal("the catalog has no price for g5.xlarge in us-east-1")
	}
	embedded, err := cat.Candidates(catalog.Request{Filter: catalog.Filter{GPU: mustGPU(t, "A10G:1"), Clouds: []string{"aws"}, Regions: []string{"us-east-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(embedded) < 2 {
		t.Fatalf("the embedded catalog gives %d candidates for A10G:1 in us-east-1; the test needs several to show live data narrowing them", len(embedded))
	}
	want := []catalog.Candidate{{Cloud: "aws", Region: "us-east-1", Zone: "us-east-1b", InstanceType: "g5.xlarge", HourlyPrice: price}}
	const addr = liveAddr
	const offers = "data.hadron_gpu_offers.spot"
	config := awsProviderConfig(srv.URL) + liveA10GConfig
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactoriesHiding(regionEnvVars...),
		CheckDestroy:             checkEC2Clean(srv),
		Steps: []resource.TestStep{
			{
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("candidates"), candidatesKnownValue(want)),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("zone"), knownvalue.StringExact("us-east-1b")),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("instance_type"), knownvalue.StringExact("g5.xlarge")),
				}},
			},
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "zone", "us-east-1b"),
					resource.TestCheckResourceAttr(addr, "candidates.#", "1"),
					func(s *terraform.State) error {
						id := s.RootModule().Resources[addr].Primary.ID
						if in, ok := srv.Instance(id); !ok || in.Zone != "us-east-1b" || in.InstanceType != "g5.xlarge" {
							return fmt.Errorf("instance %s in the fake = %+v, want g5.xlarge in us-east-1b", id, in)
						}
						return nil
					},
					resource.TestCheckResourceAttr(offers, "offers.#", "1"),
					resource.TestCheckResourceAttr(offers, "cheapest.instance_type", "g5.xlarge"),
					resource.TestCheckResourceAttr(offers, "cheapest.zones.#", "1"),
					resource.TestCheckResourceAttr(offers, "cheapest.zones.0", "us-east-1b"),
					resource.TestCheckResourceAttr(offers, "cheapest.hourly_price", "0.4321"),
					resource.TestCheckResourceAttr(offers, "cheapest.estimated", "false"),
				),
			},
		},
	})
}

// TestAccGPUInstance_liveLookupFails: when EC2 fails the live lookups, the
// plan still works, from the embedded catalog (the warning is checked by
// TestOfferCatalog).
func TestAccGPUInstance_liveLookupFails(t *testing.T) {
	cat, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	want, err := cat.Candidates(catalog.Request{Filter: catalog.Filter{GPU: mustGPU(t, "A10G:1"), Clouds: []string{"aws"}, Regions: []string{"us-east-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		faults fakeec2.Faults
		secret string
	}{
		{name: "server errors", faults: fakeec2.Faults{ServerErrors: 1000}, secret: testAWSSecretKey},
		{name: "auth failure", secret: "not-the-secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFakeEC2(t, fakeec2.Config{})
			srv.SetFaults(tt.faults)
			config := strings.Replace(awsProviderConfig(srv.URL), testAWSSecretKey, tt.secret, 1) + liveA10GConfig
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: providerFactoriesHiding(regionEnvVars...),
				Steps: []resource.TestStep{{
					Config:             config,
					PlanOnly:           true,
					ExpectNonEmptyPlan: true,
					ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(liveAddr, plancheck.ResourceActionCreate),
						plancheck.ExpectKnownValue(liveAddr, tfjsonpath.New("candidates"), candidatesKnownValue(want)),
					}},
				}},
			})
			if tt.faults.ServerErrors > 0 && srv.CallCount("DescribeInstanceTypeOfferings") == 0 {
				t.Errorf("the plan made no DescribeInstanceTypeOfferings call: the live lookup was not tried")
			}
		})
	}
}

// TestOfferCatalog checks when the provider looks offers up live and how
// it reports a failed lookup, through resolveCandidates.
func TestOfferCatalog(t *testing.T) {
	srv := startFakeEC2(t, fakeec2.Config{Offerings: map[string]map[string][]string{"us-east-1": {"g5.xlarge": {"us-east-1c"}}}})
	awsBlock := func(secret string) *awsBlockModel {
		return &awsBlockModel{Region: types.StringValue("us-east-1"), AccessKey: types.StringValue(testAWSAccessKey),
			SecretKey: types.StringValue(secret), Endpoints: &awsEndpointsModel{EC2: types.StringValue(srv.URL)}}
	}
	tests := []struct {
		name      string
		aws       *awsBlockModel
		env       map[string]string
		wantZones []string // of the candidates, in order
		wantWarn  string   // part of a warning's detail; "" means no diagnostic
		wantCalls bool
	}{
		{name: "aws block: live zones", aws: awsBlock(testAWSSecretKey), wantZones: []string{"us-east-1c"}, wantCalls: true},
		{name: "failing lookup: embedded zones and a warning", aws: awsBlock("wrong"),
			wantZones: embeddedZones(t), wantWarn: "live zone lookup failed, using the embedded catalog"},
		{name: "no credentials: no call", env: map[string]string{"AWS_REGION": "us-east-1", "HADRON_AWS_EC2_ENDPOINT": srv.URL},
			wantZones: embeddedZones(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.CallCount("DescribeInstanceTypeOfferings")
			d, diags := newProviderData(providerModel{AWS: tt.aws}, "test", func(k string) string { return tt.env[k] })
			if diags.HasError() {
				t.Fatalf("newProviderData: %v", diags)
			}
			m := &gpuInstanceModel{Name: types.StringValue("x"), Cloud: types.StringValue("aws"), Region: types.StringValue("us-east-1"),
				GPU: &gpuBlockModel{Model: types.StringValue("A10G"), Count: types.Int64Value(1)}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cands, diags := d.resolveCandidates(ctx, m)
			if diags.HasError() {
				t.Fatalf("resolveCandidates: %v", diags)
			}
			var zones []string
			for _, c := range cands {
				if c.InstanceType == "g5.xlarge" {
					zones = append(zones, c.Zone)
				}
			}
			if fmt.Sprint(zones) != fmt.Sprint(tt.wantZones) {
				t.Errorf("g5.xlarge candidate zones = %v, want %v", zones, tt.wantZones)
			}
			if got := warningDetails(diags); (tt.wantWarn == "") != (got == "") || !strings.Contains(got, tt.wantWarn) {
				t.Errorf("diagnostics = %q, want a warning containing %q", got, tt.wantWarn)
			}
			if made := srv.CallCount("DescribeInstanceTypeOfferings") > before; made != tt.wantCalls {
				t.Errorf("live call made = %v, want %v", made, tt.wantCalls)
			}
		})
	}
}

func embeddedZones(t *testing.T) []string {
	t.Helper()
	cat, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	o, ok := cat.Offer("aws", "us-east-1", "g5.xlarge", false)
	if !ok {
		t.Fatal("the catalog does not offer g5.xlarge in us-east-1")
	}
	if len(o.Zones) < 2 {
		t.Fatalf("the catalog offers g5.xlarge in %v; the test needs zones besides us-east-1c", o.Zones)
	}
	return o.Zones
}

func warningDetails(diags diag.Diagnostics) string {
	var out []string
	for _, d := range diags.Warnings() {
		out = append(out, d.Summary()+": "+d.Detail())
	}
	return strings.Join(out, "; ")
}

func TestLiveCredentials(t *testing.T) {
	tests := []struct {
		name   string
		cfg    providerModel
		env    map[string]string
		cloud  string
		wanted bool
	}{
		{name: "nothing", cloud: "aws"},
		{name: "aws block", cfg: providerModel{AWS: &awsBlockModel{}}, cloud: "aws", wanted: true},
		{name: "aws env keys", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"}, cloud: "aws", wanted: true},
		{name: "aws key id alone", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKID"}, cloud: "aws"},
		{name: "aws profile", env: map[string]string{"AWS_PROFILE": "ml"}, cloud: "aws", wanted: true},
		{name: "aliyun block", cfg: providerModel{Aliyun: &aliyunBlockModel{}}, cloud: "aliyun", wanted: true},
		{name: "aliyun env keys", env: map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s"}, cloud: "aliyun", wanted: true},
		{name: "aws block is not aliyun's", cfg: providerModel{AWS: &awsBlockModel{}}, cloud: "aliyun"},
		{name: "local", cloud: "local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newProviderData(tt.cfg, "test", func(k string) string { return tt.env[k] })
			if got := d.liveCredentials(tt.cloud); got != tt.wanted {
				t.Errorf("liveCredentials(%s) = %v, want %v", tt.cloud, got, tt.wanted)
			}
		})
	}
}

// TestOfferCatalogAliyun: Alibaba Cloud's live zones narrow the candidates
// while instance plans keep the catalog's spot estimates; spot prices in CNY
// (a China-site account) are not converted, and the data source says why.
func TestOfferCatalogAliyun(t *testing.T) {
	srv := fakeecs.Start(fakeecs.Options{})
	t.Cleanup(srv.Close)
	const typ = "ecs.gn7i-c8g1.2xlarge"
	srv.SetOfferings("cn-hangzhou", map[string][]string{typ: {"cn-hangzhou-j"}})
	srv.SetSpotPriceHistory("CNY", []fakeecs.SpotPrice{{InstanceType: typ, Zone: "cn-hangzhou-j", Price: 3.1, Timestamp: time.Now().Add(-time.Minute)}})
	d, diags := newProviderData(providerModel{Aliyun: &aliyunBlockModel{Region: types.StringValue("cn-hangzhou"),
		AccessKey: types.StringValue(fakeecs.TestAccessKeyID), SecretKey: types.StringValue(fakeecs.TestAccessKeySecret),
		Endpoint: types.StringValue(srv.URL)}}, "test", func(string) string { return "" })
	if diags.HasError() {
		t.Fatalf("newProviderData: %v", diags)
	}
	m := &gpuInstanceModel{Name: types.StringValue("x"), Cloud: types.StringValue("aliyun"), Region: types.StringValue("cn-hangzhou"),
		Spot: types.BoolValue(true), GPU: &gpuBlockModel{Model: types.StringValue("A10"), Count: types.Int64Value(1)}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cands, diags := d.resolveCandidates(ctx, m)
	if diags.HasError() {
		t.Fatalf("resolveCandidates: %v", diags)
	}
	if len(cands) != 1 || cands[0].Zone != "cn-hangzhou-j" || cands[0].InstanceType != typ || !cands[0].Spot {
		t.Errorf("candidates = %+v, want one: %s spot in cn-hangzhou-j", cands, typ)
	}
	cat, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if est, _ := cat.Price("aliyun", "cn-hangzhou", typ, true); len(cands) == 1 && cands[0].HourlyPrice != est {
		t.Errorf("spot price = %v, want the catalog's estimate %v (CNY is not converted)", cands[0].HourlyPrice, est)
	}
	if w := warningDetails(diags); w != "" {
		t.Errorf("instance plan warnings = %q, want none: instance plans use live zones only", w)
	}
	// The data source asks for spot prices too, and says why it cannot use them.
	_, diags = d.offerCatalog(ctx, []string{"aliyun"}, []string{"cn-hangzhou"}, true)
	if w := warningDetails(diags); !strings.Contains(w, "live spot price lookup failed") || !strings.Contains(w, "CNY") {
		t.Errorf("warnings = %q, want one saying the spot prices are in CNY", w)
	}
}
