package catalog

import (
	"errors"
	"math"
	"sort"
	"strings"
	"testing"
)

// bruteForce lists the offers matching f straight from the file rows, the
// slow obvious way, as the reference for Query.
func bruteForce(t *testing.T, f Filter) []Offer {
	t.Helper()
	file := embeddedFile(t)
	in := func(list []string, v string) bool {
		if len(list) == 0 {
			return true
		}
		for _, s := range list {
			if strings.EqualFold(s, v) {
				return true
			}
		}
		return false
	}
	var out []Offer
	for _, c := range file.Clouds {
		types := map[string]FileType{}
		for _, ty := range c.Types {
			types[ty.Name] = ty
		}
		for _, p := range c.Prices {
			ty := types[p.Type]
			typ := Type{Cloud: c.Name, Name: ty.Name, GPU: ty.GPU, GPUCount: ty.GPUCount, GPUMemoryGiB: ty.GPUMemoryGiB}
			if !f.GPU.Matches(typ) || ty.GPUMemoryGiB < f.MinGPUMemoryGiB || (f.Arch != "" && ty.Arch != f.Arch) ||
				!in(f.Clouds, c.Name) || !in(f.Regions, p.Region) {
				continue
			}
			for _, spot := range []bool{false, true} {
				if f.Market == OnDemand && spot || f.Market == Spot && !spot {
					continue
				}
				price := p.OnDemand
				if spot {
					price = math.Round(p.OnDemand*(1-ty.SpotDiscount)*1e4) / 1e4
					if p.Spot > 0 {
						price = p.Spot
					}
				}
				if f.MaxHourlyPrice > 0 && price > f.MaxHourlyPrice {
					continue
				}
				out = append(out, Offer{Cloud: c.Name, Region: p.Region, InstanceType: p.Type, Spot: spot, HourlyPrice: price})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return offerLess(out[i], out[j]) })
	return out
}

func mustGPU(t *testing.T, s string) GPUSpec {
	t.Helper()
	g, err := ParseGPU(s)
	if err != nil {
		t.Fatalf("ParseGPU(%q): %v", s, err)
	}
	return g
}

func TestQueryMatchesBruteForce(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		name string
		f    Filter
	}{
		{"everything on-demand", Filter{}},
		{"everything any market", Filter{Market: AnyMarket}},
		{"A100:8", Filter{GPU: mustGPU(t, "A100:8")}},
		{"H100 any count", Filter{GPU: mustGPU(t, "h100")}},
		{"A10-class single", Filter{GPU: mustGPU(t, "A10|A10G:1")}},
		{"min memory 48", Filter{MinGPUMemoryGiB: 48}},
		{"aws only spot", Filter{Clouds: []string{"AWS"}, Market: Spot}},
		{"two regions", Filter{Regions: []string{"us-west-2", "cn-beijing"}}},
		{"arm64", Filter{Arch: ArchARM}},
		{"under $2", Filter{MaxHourlyPrice: 2, Market: AnyMarket}},
		{"combined", Filter{GPU: mustGPU(t, "A100-80GB"), Clouds: []string{"aliyun"}, Regions: []string{"cn-hangzhou"}, Market: AnyMarket, MaxHourlyPrice: 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Query(tt.f)
			if err != nil {
				t.Fatalf("Query error: %v", err)
			}
			want := bruteForce(t, tt.f)
			if len(got) != len(want) {
				t.Fatalf("Query returned %d offers, want %d", len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.Cloud != w.Cloud || g.Region != w.Region || g.InstanceType != w.InstanceType || g.Spot != w.Spot || g.HourlyPrice != w.HourlyPrice {
					t.Fatalf("offer %d = %s, want %s", i, g, w)
				}
				if len(g.Zones) == 0 || g.VCPUs == 0 || g.MemoryGiB == 0 || g.GPUCount == 0 {
					t.Errorf("offer %d (%s) lacks zones or hardware: %+v", i, g, g)
				}
			}
		})
	}
}

func TestQueryIsDeterministic(t *testing.T) {
	c := embedded(t)
	f := Filter{GPU: mustGPU(t, "A10G:1"), Market: AnyMarket}
	first, err := c.Query(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		again, _ := c.Query(f)
		for j := range first {
			if again[j].String() != first[j].String() {
				t.Fatalf("run %d offer %d = %s, want %s", i, j, again[j], first[j])
			}
		}
	}
	// Ties: g5.xlarge costs the same in us-east-1, us-east-2 and us-west-2;
	// regions then order alphabetically.
	var tied []string
	for _, o := range first {
		if o.InstanceType == "g5.xlarge" && !o.Spot && o.HourlyPrice == 1.006 {
			tied = append(tied, o.Region)
		}
	}
	if strings.Join(tied, ",") != "us-east-1,us-east-2,us-west-2" {
		t.Errorf("tied g5.xlarge regions in order %v, want us-east-1, us-east-2, us-west-2", tied)
	}
}

// TestCheapestOffers pins what the data says about the offers users ask for
// most: 8x A100 and one A10-class GPU.
func TestCheapestOffers(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		name      string
		f         Filter
		wantType  string
		wantPrice float64
	}{
		{"8x A100 in us-east-1", Filter{GPU: mustGPU(t, "A100:8"), Regions: []string{"us-east-1"}}, "p4d.24xlarge", 21.96},
		{"8x A100 80GB in us-east-1", Filter{GPU: mustGPU(t, "A100:8"), MinGPUMemoryGiB: 80, Regions: []string{"us-east-1"}}, "p4de.24xlarge", 27.45},
		{"8x A100 in cn-hangzhou", Filter{GPU: mustGPU(t, "A100:8"), Regions: []string{"cn-hangzhou"}}, "ecs.ebmgn7.26xlarge", 38.4}, // ties with ecs.gn7-c13g1.26xlarge; names break ties,
		{"1x A10G in us-east-1", Filter{GPU: mustGPU(t, "A10G:1"), Regions: []string{"us-east-1"}}, "g5.xlarge", 1.006},
		{"1x A10 in cn-hangzhou", Filter{GPU: mustGPU(t, "a10:1"), Regions: []string{"cn-hangzhou"}}, "ecs.gn7i-c8g1.2xlarge", 1.33},
		{"1x A10-class under $1.50 anywhere", Filter{GPU: mustGPU(t, "A10|A10G:1"), MaxHourlyPrice: 1.5}, "g5.xlarge", 1.006},
		{"1x A10-class on aliyun in Singapore", Filter{GPU: mustGPU(t, "A10|A10G:1"), Regions: []string{"ap-southeast-1"}, Clouds: []string{"aliyun"}}, "ecs.gn7i-c8g1.2xlarge", 1.4896},
		{"cheapest H100", Filter{GPU: mustGPU(t, "H100")}, "p5.4xlarge", 6.88},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offers, err := c.Query(tt.f)
			if err != nil {
				t.Fatalf("Query error: %v", err)
			}
			ref := bruteForce(t, tt.f)
			if offers[0].InstanceType != ref[0].InstanceType || offers[0].HourlyPrice != ref[0].HourlyPrice {
				t.Errorf("cheapest = %s, the data says %s", offers[0], ref[0])
			}
			if offers[0].InstanceType != tt.wantType || offers[0].HourlyPrice != tt.wantPrice {
				t.Errorf("cheapest = %s, want %s at %s", offers[0], tt.wantType, FormatPrice(tt.wantPrice))
			}
		})
	}
}

func TestQuerySpotPrices(t *testing.T) {
	c := embedded(t)
	offers, err := c.Query(Filter{GPU: mustGPU(t, "A10G:1"), Regions: []string{"us-east-1"}, Market: Spot})
	if err != nil {
		t.Fatal(err)
	}
	o := offers[0]
	if !o.Spot || !o.Estimated || o.InstanceType != "g5.xlarge" || o.HourlyPrice != 0.4024 {
		t.Errorf("cheapest spot A10G = %+v, want an estimated g5.xlarge spot offer at $0.4024/h (1.006 * (1 - 0.6))", o)
	}
}

func TestQueryNoMatch(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		name       string
		f          Filter
		wantFilter string
		wantMsg    string
	}{
		{"unknown GPU", Filter{GPU: mustGPU(t, "B200:8")}, "gpu",
			"no offer matches: no instance type has GPU B200 (available: A10, A100, A10G, H100, H200, L20, L4, L40S, T4, T4G, V100)"},
		{"GPU count", Filter{GPU: mustGPU(t, "A100:3")}, "gpu_count",
			"no offer matches: 47 offers with A100, none with 3 GPUs (available: 1, 2, 4, 8)"},
		{"region", Filter{GPU: mustGPU(t, "H100:8"), Regions: []string{"cn-hangzhou"}}, "regions",
			"no offer matches: 4 offers with H100:8, none in region cn-hangzhou (available: ap-northeast-1, us-east-1, us-east-2, us-west-2)"},
		{"region after cloud", Filter{GPU: mustGPU(t, "A100:8"), Clouds: []string{"aliyun"}, Regions: []string{"eu-west-1"}}, "regions",
			"no offer matches: 18 offers with A100:8 on aliyun, none in region eu-west-1 (available: ap-southeast-1, cn-beijing, cn-hangzhou, cn-shanghai, cn-shenzhen)"},
		{"cloud", Filter{GPU: mustGPU(t, "H200"), Clouds: []string{"aliyun"}}, "clouds",
			"no offer matches: 4 offers with H200, none on aliyun (available: aws)"},
		{"arch", Filter{GPU: mustGPU(t, "A100"), Arch: "aarch64"}, "arch",
			"no offer matches: 47 offers with A100, none on arm64 (available: x86_64)"},
		{"memory", Filter{GPU: mustGPU(t, "V100"), MinGPUMemoryGiB: 40}, "min_gpu_memory",
			"no offer matches: 55 offers with V100, none with at least 40 GiB per GPU (available: V100 16 GiB, V100 32 GiB)"},
		{"price", Filter{GPU: mustGPU(t, "A100:8"), Regions: []string{"us-east-1"}, MaxHourlyPrice: 10}, "max_hourly_price",
			"no offer matches: 2 offers with A100:8 in us-east-1, none at or under $10.00/h (available: cheapest aws us-east-1 p4d.24xlarge (8x A100, on-demand, $21.96/h))"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offers, err := c.Query(tt.f)
			var nm *NoMatchError
			if !errors.As(err, &nm) {
				t.Fatalf("Query = %d offers, %v; want a *NoMatchError", len(offers), err)
			}
			if nm.Filter != tt.wantFilter {
				t.Errorf("Filter = %q, want %q", nm.Filter, tt.wantFilter)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("error =\n  %s\nwant\n  %s", err, tt.wantMsg)
			}
		})
	}
}

func TestQueryRejectsBadFilters(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		name string
		f    Filter
		want string
	}{
		{"unknown cloud", Filter{Clouds: []string{"gcp"}}, `unknown cloud "gcp" (known: aliyun, aws)`},
		{"bad arch", Filter{Arch: "sparc"}, `architecture "sparc"`},
		{"negative price", Filter{MaxHourlyPrice: -1}, "max hourly price -1"},
		{"negative memory", Filter{MinGPUMemoryGiB: -1}, "min GPU memory -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Query(tt.f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Query error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
