package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

func mustGPU(t *testing.T, s string) catalog.GPUSpec {
	t.Helper()
	spec, err := catalog.ParseGPU(s)
	if err != nil {
		t.Fatalf("ParseGPU(%q): %v", s, err)
	}
	return spec
}

func stringListValue(vals ...string) types.List {
	elems := make([]attr.Value, len(vals))
	for i, v := range vals {
		elems[i] = types.StringValue(v)
	}
	return types.ListValueMust(types.StringType, elems)
}

// nullOffersModel is a configuration with no filter set.
func nullOffersModel() gpuOffersModel {
	return gpuOffersModel{
		GPU: types.StringNull(), MinGPUMemoryGB: types.Int64Null(), Clouds: types.ListNull(types.StringType),
		Regions: types.ListNull(types.StringType), Spot: types.StringNull(), MaxHourlyPrice: types.Float64Null(),
		Architecture: types.StringNull(),
	}
}

func TestOffersFilter(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*gpuOffersModel)
		want catalog.Filter
	}{
		{"nothing set: every on-demand offer", func(*gpuOffersModel) {}, catalog.Filter{}},
		{"every filter", func(m *gpuOffersModel) {
			m.GPU = types.StringValue("a10|A10G:1")
			m.MinGPUMemoryGB = types.Int64Value(24)
			m.Clouds = stringListValue("aws", "aliyun")
			m.Regions = stringListValue("us-east-1", "cn-hangzhou")
			m.Spot = types.StringValue("any")
			m.MaxHourlyPrice = types.Float64Value(1.5)
			m.Architecture = types.StringValue("x86_64")
		}, catalog.Filter{
			GPU:             catalog.GPUSpec{Choices: []catalog.GPUChoice{{Model: "A10"}, {Model: "A10G"}}, Count: 1},
			MinGPUMemoryGiB: 24, Clouds: []string{"aws", "aliyun"}, Regions: []string{"us-east-1", "cn-hangzhou"},
			Market: catalog.AnyMarket, MaxHourlyPrice: 1.5, Arch: catalog.ArchX86,
		}},
		{"spot true", func(m *gpuOffersModel) { m.Spot = types.StringValue("true") }, catalog.Filter{Market: catalog.Spot}},
		{"spot false", func(m *gpuOffersModel) { m.Spot = types.StringValue("false") }, catalog.Filter{Market: catalog.OnDemand}},
		{"arm64", func(m *gpuOffersModel) { m.Architecture = types.StringValue("arm64") }, catalog.Filter{Arch: catalog.ArchARM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := nullOffersModel()
			tt.mod(&m)
			got, diags := offersFilter(context.Background(), &m)
			if diags.HasError() {
				t.Fatalf("offersFilter: %v", diags)
			}
			if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", tt.want); g != w {
				t.Errorf("offersFilter:\n got %s\nwant %s", g, w)
			}
		})
	}
}

func TestOffersFilterErrorsNameTheAttribute(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*gpuOffersModel)
		want path.Path
	}{
		{"bad count", func(m *gpuOffersModel) { m.GPU = types.StringValue("A100:eight") }, path.Root("gpu")},
		{"bad market", func(m *gpuOffersModel) { m.Spot = types.StringValue("sometimes") }, path.Root("spot")},
		{"bad architecture", func(m *gpuOffersModel) { m.Architecture = types.StringValue("sparc") }, path.Root("architecture")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := nullOffersModel()
			tt.mod(&m)
			_, diags := offersFilter(context.Background(), &m)
			if diags.ErrorsCount() != 1 {
				t.Fatalf("got %d errors (%v), want 1", diags.ErrorsCount(), diags)
			}
			d, ok := diags.Errors()[0].(interface{ Path() path.Path })
			if !ok {
				t.Fatalf("error %v has no attribute path, want %s", diags.Errors()[0], tt.want)
			}
			if !d.Path().Equal(tt.want) {
				t.Errorf("error path = %s, want %s", d.Path(), tt.want)
			}
		})
	}
}

func TestOfferModel(t *testing.T) {
	o := catalog.Offer{Cloud: "aliyun", Region: "cn-hangzhou", Zones: []string{"cn-hangzhou-h", "cn-hangzhou-i"},
		InstanceType: "ecs.gn7i-c8g1.2xlarge", GPU: "A10", GPUCount: 1, GPUMemoryGiB: 24, VCPUs: 8, MemoryGiB: 30,
		Arch: catalog.ArchX86, Spot: true, HourlyPrice: 0.4, Estimated: true}
	got := offerModel(o)
	want := gpuOfferModel{
		Cloud: types.StringValue("aliyun"), Region: types.StringValue("cn-hangzhou"), Zones: []string{"cn-hangzhou-h", "cn-hangzhou-i"},
		InstanceType: types.StringValue("ecs.gn7i-c8g1.2xlarge"), GPUModel: types.StringValue("A10"), GPUCount: types.Int64Value(1),
		GPUMemoryGB: types.Float64Value(24), VCPUs: types.Int64Value(8), MemoryGB: types.Float64Value(30),
		Architecture: types.StringValue("x86_64"), HourlyPrice: types.Float64Value(0.4), Spot: types.BoolValue(true),
		Estimated: types.BoolValue(true),
	}
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Errorf("offerModel:\n got %s\nwant %s", g, w)
	}
	got.Zones[0] = "changed"
	if o.Zones[0] != "cn-hangzhou-h" {
		t.Errorf("offerModel shares the offer's zones slice")
	}
}

// TestNoOfferDiagPath checks that every filter the catalog can report as
// the one that emptied the list maps to the attribute of that filter.
func TestNoOfferDiagPath(t *testing.T) {
	cat, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		filter catalog.Filter
		want   string
	}{
		{"unknown model", catalog.Filter{GPU: mustGPU(t, "B300")}, "gpu"},
		{"count", catalog.Filter{GPU: mustGPU(t, "H100:3")}, "gpu"},
		{"memory", catalog.Filter{MinGPUMemoryGiB: 200}, "min_gpu_memory_gb"},
		{"architecture", catalog.Filter{GPU: mustGPU(t, "A100"), Arch: catalog.ArchARM}, "architecture"},
		{"cloud", catalog.Filter{GPU: mustGPU(t, "A10G"), Clouds: []string{"aliyun"}}, "clouds"},
		{"region", catalog.Filter{GPU: mustGPU(t, "H100:8"), Regions: []string{"cn-hangzhou"}}, "regions"},
		{"price", catalog.Filter{GPU: mustGPU(t, "A100:8"), MaxHourlyPrice: 0.1}, "max_hourly_price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cat.Query(tt.filter)
			if err == nil {
				t.Fatalf("Query(%+v) found offers, want none", tt.filter)
			}
			d, ok := noOfferDiag(err).(interface{ Path() path.Path })
			if !ok {
				t.Fatalf("diagnostic for %v has no attribute path, want %s", err, tt.want)
			}
			if !d.Path().Equal(path.Root(tt.want)) {
				t.Errorf("diagnostic path = %s, want %s (error: %v)", d.Path(), tt.want, err)
			}
		})
	}
}

// offerAttrs renders an offer the way Terraform's flattened state holds it.
func offerAttrs(o catalog.Offer) map[string]string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	m := map[string]string{
		"cloud": o.Cloud, "region": o.Region, "instance_type": o.InstanceType, "gpu_model": o.GPU,
		"gpu_count": strconv.Itoa(o.GPUCount), "gpu_memory_gb": f(o.GPUMemoryGiB), "vcpus": strconv.Itoa(o.VCPUs),
		"memory_gb": f(o.MemoryGiB), "architecture": o.Arch, "hourly_price": f(o.HourlyPrice),
		"spot": strconv.FormatBool(o.Spot), "estimated": strconv.FormatBool(o.Estimated),
		"zones.#": strconv.Itoa(len(o.Zones)),
	}
	for i, z := range o.Zones {
		m["zones."+strconv.Itoa(i)] = z
	}
	return m
}

// checkOffers compares the data source's result with the catalog's answer to
// the same filter, offer by offer, and checks that prices never decrease.
func checkOffers(name string, f catalog.Filter) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		cat, err := catalog.Embedded()
		if err != nil {
			return err
		}
		want, err := cat.Query(f)
		if err != nil {
			return fmt.Errorf("catalog query for the expected offers: %w", err)
		}
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s not in state", name)
		}
		got := rs.Primary.Attributes
		if g, w := got["offers.#"], strconv.Itoa(len(want)); g != w {
			return fmt.Errorf("offers.# = %s, want %s", g, w)
		}
		prev := 0.0
		for i, o := range want {
			for k, v := range offerAttrs(o) {
				key := fmt.Sprintf("offers.%d.%s", i, k)
				if got[key] != v {
					return fmt.Errorf("%s = %q, want %q (%s)", key, got[key], v, o)
				}
			}
			p, err := strconv.ParseFloat(got[fmt.Sprintf("offers.%d.hourly_price", i)], 64)
			if err != nil || p < prev {
				return fmt.Errorf("offers.%d.hourly_price = %v after %v: not sorted by price (%v)", i, p, prev, err)
			}
			prev = p
		}
		for k, v := range offerAttrs(want[0]) {
			if got["cheapest."+k] != v {
				return fmt.Errorf("cheapest.%s = %q, want %q", k, got["cheapest."+k], v)
			}
		}
		if g, w := got["prices_as_of"], cat.Meta().AsOf; g != w {
			return fmt.Errorf("prices_as_of = %q, want %q", g, w)
		}
		return nil
	}
}

func TestAccGPUOffersDataSource_filters(t *testing.T) {
	const name = "data.hadron_gpu_offers.test"
	tests := []struct {
		name   string
		body   string
		filter catalog.Filter
		// cheapest holds attributes of the first offer as catalog.json
		// prices it (list prices as of its date).
		cheapest map[string]string
	}{
		{
			name: "one A10-class GPU on AWS or Aliyun under 1.50",
			body: `gpu = "A10|A10G:1"
  clouds = ["aws", "aliyun"]
  max_hourly_price = 1.5`,
			filter:   catalog.Filter{GPU: mustGPU(t, "A10|A10G:1"), Clouds: []string{"aws", "aliyun"}, MaxHourlyPrice: 1.5},
			cheapest: map[string]string{"cloud": "aws", "region": "us-east-1", "instance_type": "g5.xlarge", "gpu_model": "A10G", "hourly_price": "1.006"},
		},
		{
			name:     "eight A100",
			body:     `gpu = "A100:8"`,
			filter:   catalog.Filter{GPU: mustGPU(t, "A100:8")},
			cheapest: map[string]string{"cloud": "aws", "region": "us-east-1", "instance_type": "p4d.24xlarge", "gpu_count": "8", "hourly_price": "21.96"},
		},
		{
			name: "eight A100 with 80 GiB each",
			body: `gpu = "A100:8"
  min_gpu_memory_gb = 80`,
			filter:   catalog.Filter{GPU: mustGPU(t, "A100:8"), MinGPUMemoryGiB: 80},
			cheapest: map[string]string{"instance_type": "p4de.24xlarge", "gpu_memory_gb": "80", "hourly_price": "27.45"},
		},
		{
			name: "A10 in one Aliyun region",
			body: `gpu = "a10"
  regions = ["cn-hangzhou"]`,
			filter:   catalog.Filter{GPU: mustGPU(t, "A10"), Regions: []string{"cn-hangzhou"}},
			cheapest: map[string]string{"cloud": "aliyun", "instance_type": "ecs.gn7i-c8g1.2xlarge", "hourly_price": "1.33", "zones.#": "4"},
		},
		{
			name: "T4 on any market in us-west-2",
			body: `gpu = "T4:1"
  regions = ["us-west-2"]
  spot = "any"`,
			filter:   catalog.Filter{GPU: mustGPU(t, "T4:1"), Regions: []string{"us-west-2"}, Market: catalog.AnyMarket},
			cheapest: map[string]string{"instance_type": "g4dn.xlarge", "spot": "true", "estimated": "true"},
		},
		{
			name:     "arm64",
			body:     `architecture = "arm64"`,
			filter:   catalog.Filter{Arch: catalog.ArchARM},
			cheapest: map[string]string{"instance_type": "g5g.xlarge", "gpu_model": "T4G", "architecture": "arm64", "hourly_price": "0.42"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := []resource.TestCheckFunc{checkOffers(name, tt.filter)}
			for k, v := range tt.cheapest {
				checks = append(checks, resource.TestCheckResourceAttr(name, "cheapest."+k, v))
			}
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config: "data \"hadron_gpu_offers\" \"test\" {\n  " + tt.body + "\n}\n",
					Check:  resource.ComposeAggregateTestCheckFunc(checks...),
				}},
			})
		})
	}
}

func TestAccGPUOffersDataSource_errors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		// No offer passes: the error names the filter and points at its line.
		{"no such count", `gpu = "H100:3"`,
			`(?s)No Matching GPU Offer.*gpu = "H100:3".*gpu removed the last ones.*none with 3 GPUs \(available: 1, 8\)`},
		{"no such model", `gpu = "B300"`,
			`(?s)No Matching GPU Offer.*gpu = "B300".*no instance type has GPU B300 \(available: A10,`},
		{"not on that cloud", "gpu = \"A10G\"\n  clouds = [\"aliyun\"]",
			`(?s)No Matching GPU Offer.*clouds = \["aliyun"\].*clouds removed the last ones.*none on aliyun \(available: aws\)`},
		{"not in that region", "gpu = \"H100:8\"\n  regions = [\"cn-hangzhou\"]",
			`(?s)No Matching GPU Offer.*regions = \["cn-hangzhou"\].*none in region cn-hangzhou`},
		{"too cheap", "gpu = \"A100:8\"\n  max_hourly_price = 0.1",
			`(?s)No Matching GPU Offer.*max_hourly_price = 0.1.*none at or under \$0.10/h`},
		{"too much memory", `min_gpu_memory_gb = 200`,
			`(?s)No Matching GPU Offer.*min_gpu_memory_gb = 200.*with at least 200 GiB per GPU`},
		{"no arm A100", "gpu = \"A100\"\n  architecture = \"arm64\"",
			`(?s)No Matching GPU Offer.*architecture = "arm64".*none on arm64 \(available: x86_64\)`},
		// Invalid input fails validation, before any lookup.
		{"bad requirement", `gpu = "A100:eight"`, `(?s)Invalid GPU Requirement.*gpu = "A100:eight".*count "eight" is not a positive integer`},
		{"bad market", `spot = "maybe"`, `(?s)Attribute spot value must be one of`},
		{"zero price", `max_hourly_price = 0`, `(?s)Invalid Price.*max_hourly_price must be more than 0`},
		{"unknown cloud", `clouds = ["gcp"]`, `(?s)Attribute clouds\[0\] value must be one of`},
		{"misspelt region", `regions = ["us-east-1", "us-east1"]`, `(?s)Unknown Region.*"us-east1" is not a region the GPU catalog prices`},
		{"unknown architecture", `architecture = "sparc"`, `(?s)Attribute architecture value must be one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      "data \"hadron_gpu_offers\" \"test\" {\n  " + tt.body + "\n}\n",
					ExpectError: wrappedRE(tt.want),
				}},
			})
		})
	}
}

// wrappedRE compiles a pattern whose spaces match any run of white space,
// since Terraform wraps long diagnostic lines.
func wrappedRE(pattern string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(pattern, " ", `\s+`))
}

// failingLive is a live source whose every lookup fails.
type failingLive struct{}

func (failingLive) Offerings(context.Context, string, []string) (map[string][]string, error) {
	return nil, errors.New("DescribeInstanceTypeOfferings: UnauthorizedOperation")
}

func (failingLive) SpotPrices(context.Context, string, []string) ([]catalog.SpotPrice, error) {
	return nil, errors.New("DescribeSpotPriceHistory: UnauthorizedOperation")
}

func TestCatalogWarnings(t *testing.T) {
	base, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if diags := catalogWarnings(base); len(diags) != 0 {
		t.Errorf("embedded catalog: got %d diagnostics (%v), want none", len(diags), diags)
	}
	refined := catalog.NewRefiner(base, map[string]catalog.Live{"aws": failingLive{}}, catalog.RefinerOptions{}).
		Catalog(context.Background(), []string{"aws"}, []string{"us-east-1"})
	diags := catalogWarnings(refined)
	if len(diags) == 0 || diags.HasError() {
		t.Fatalf("refined catalog with failing live data: got %v, want warnings only", diags)
	}
	if d := diags[0].Detail(); !strings.Contains(d, "UnauthorizedOperation") {
		t.Errorf("warning detail %q does not carry the live error", d)
	}
}
