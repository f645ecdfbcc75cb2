package catalog

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

func zonesOf(prefix, letters string) []string {
	var zs []string
	for _, l := range letters {
		zs = append(zs, prefix+string(l))
	}
	return zs
}

// summary renders candidates compactly: "aws us-east-1a g5.xlarge".
func summary(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Cloud + " " + c.Zone + " " + c.InstanceType
		if c.Spot {
			out[i] += " spot"
		}
	}
	return out
}

func expect(cloud, typ string, zones []string) []string {
	out := make([]string, len(zones))
	for i, z := range zones {
		out[i] = cloud + " " + z + " " + typ
	}
	return out
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestCandidatesZoneRegionCloudOrder(t *testing.T) {
	c := embedded(t)
	got, err := c.Candidates(Request{Filter: Filter{GPU: mustGPU(t, "A10|A10G:1")}, TypesPerRegion: 1, MaxCandidates: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := concat(
		// AWS first (cheapest offer $1.006/h); tied regions by name.
		expect("aws", "g5.xlarge", zonesOf("us-east-1", "abcdf")),
		expect("aws", "g5.xlarge", zonesOf("us-east-2", "abc")),
		expect("aws", "g5.xlarge", zonesOf("us-west-2", "abcd")),
		expect("aws", "g5.xlarge", zonesOf("eu-west-1", "abc")),
		expect("aws", "g5.xlarge", zonesOf("ap-northeast-1", "ac")),
		// Then Alibaba Cloud ($1.33/h in the mainland regions).
		expect("aliyun", "ecs.gn7i-c8g1.2xlarge", zonesOf("cn-beijing-", "hijkl")),
		expect("aliyun", "ecs.gn7i-c8g1.2xlarge", zonesOf("cn-hangzhou-", "hijk")),
		expect("aliyun", "ecs.gn7i-c8g1.2xlarge", zonesOf("cn-shanghai-", "fglm")),
		expect("aliyun", "ecs.gn7i-c8g1.2xlarge", zonesOf("cn-shenzhen-", "def")),
		expect("aliyun", "ecs.gn7i-c8g1.2xlarge", zonesOf("ap-southeast-1", "abc")),
	)
	if !reflect.DeepEqual(summary(got), want) {
		t.Errorf("candidates =\n  %s\nwant\n  %s", strings.Join(summary(got), "\n  "), strings.Join(want, "\n  "))
	}
	if got[0].HourlyPrice != 1.006 || got[len(got)-1].HourlyPrice != 1.4896 {
		t.Errorf("first and last prices = %v, %v; want 1.006 and 1.4896", got[0].HourlyPrice, got[len(got)-1].HourlyPrice)
	}
	// Structural invariants: regions and clouds are contiguous.
	seenRegion, seenCloud := map[string]bool{}, map[string]bool{}
	for i, cand := range got {
		if i > 0 && got[i-1].Region != cand.Region && seenRegion[cand.Cloud+cand.Region] {
			t.Errorf("candidate %d returns to region %s", i, cand.Region)
		}
		if i > 0 && got[i-1].Cloud != cand.Cloud && seenCloud[cand.Cloud] {
			t.Errorf("candidate %d returns to cloud %s", i, cand.Cloud)
		}
		seenRegion[cand.Cloud+cand.Region], seenCloud[cand.Cloud] = true, true
	}
}

func TestCandidatesDefaults(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		name string
		gpu  string
		want []string
	}{
		{
			// One type per region, sixteen candidates at most.
			name: "one cloud",
			gpu:  "A10G:1",
			want: concat(
				expect("aws", "g5.xlarge", zonesOf("us-east-1", "abcdf")),
				expect("aws", "g5.xlarge", zonesOf("us-east-2", "abc")),
				expect("aws", "g5.xlarge", zonesOf("us-west-2", "abcd")),
				expect("aws", "g5.xlarge", zonesOf("eu-west-1", "abc")),
				expect("aws", "g5.xlarge", zonesOf("ap-northeast-1", "a")),
			),
		},
		{
			// The bound is shared: each cloud keeps eight candidates.
			name: "two clouds share the bound",
			gpu:  "A10|A10G:1",
			want: concat(
				expect("aws", "g5.xlarge", zonesOf("us-east-1", "abcdf")),
				expect("aws", "g5.xlarge", zonesOf("us-east-2", "abc")),
				expect("aliyun", "ecs.gn7i-c8g1.2xlarge", zonesOf("cn-beijing-", "hijkl")),
				expect("aliyun", "ecs.gn7i-c8g1.2xlarge", zonesOf("cn-hangzhou-", "hij")),
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := Request{Filter: Filter{GPU: mustGPU(t, tt.gpu)}}
			got, err := c.Candidates(req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(summary(got), tt.want) {
				t.Errorf("candidates =\n  %s\nwant\n  %s", strings.Join(summary(got), "\n  "), strings.Join(tt.want, "\n  "))
			}
			again, _ := c.Candidates(req)
			if !reflect.DeepEqual(got, again) {
				t.Errorf("Candidates is not deterministic")
			}
		})
	}
}

func TestFairTruncate(t *testing.T) {
	group := func(name string, n int) []Candidate {
		var g []Candidate
		for i := 0; i < n; i++ {
			g = append(g, Candidate{Cloud: name, Zone: string(rune('a' + i))})
		}
		return g
	}
	count := func(cs []Candidate) map[string]int {
		m := map[string]int{}
		for _, c := range cs {
			m[c.Cloud]++
		}
		return m
	}
	tests := []struct {
		name   string
		groups [][]Candidate
		max    int
		want   map[string]int
	}{
		{"fits", [][]Candidate{group("a", 3), group("b", 2)}, 10, map[string]int{"a": 3, "b": 2}},
		{"equal shares", [][]Candidate{group("a", 10), group("b", 10)}, 8, map[string]int{"a": 4, "b": 4}},
		{"short group gives its slots to the first", [][]Candidate{group("a", 10), group("b", 1), group("c", 10)}, 9, map[string]int{"a": 5, "b": 1, "c": 3}},
		{"more groups than slots", [][]Candidate{group("a", 2), group("b", 2), group("c", 2)}, 2, map[string]int{"a": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fairTruncate(tt.groups, tt.max)
			if !reflect.DeepEqual(count(got), tt.want) {
				t.Errorf("fairTruncate kept %v, want %v", count(got), tt.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Cloud < got[i-1].Cloud {
					t.Errorf("fairTruncate reordered the groups: %v", got)
				}
			}
		})
	}
}

func TestCandidatesSpotFirstWhenAnyMarket(t *testing.T) {
	c := embedded(t)
	got, err := c.Candidates(Request{Filter: Filter{GPU: mustGPU(t, "T4:1"), Clouds: []string{"aws"}, Regions: []string{"eu-west-1"}, Market: AnyMarket}, TypesPerRegion: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := concat(
		addSpot(expect("aws", "g4dn.xlarge", zonesOf("eu-west-1", "abc"))),
		addSpot(expect("aws", "g4dn.2xlarge", zonesOf("eu-west-1", "abc"))),
	)
	if !reflect.DeepEqual(summary(got), want) {
		t.Errorf("candidates =\n  %s\nwant\n  %s", strings.Join(summary(got), "\n  "), strings.Join(want, "\n  "))
	}
}

func addSpot(ss []string) []string {
	for i := range ss {
		ss[i] += " spot"
	}
	return ss
}

func TestCandidatesPlacements(t *testing.T) {
	c := embedded(t)
	a10 := Filter{GPU: mustGPU(t, "A10|A10G:1")}
	tests := []struct {
		name       string
		filter     Filter
		placements []Placement
		perRegion  int
		want       []string
	}{
		{
			name:   "written order wins over price",
			filter: a10,
			placements: []Placement{
				{Cloud: "aliyun", Region: "cn-hangzhou"},
				{Cloud: "AWS", Region: "us-west-2", Zone: "us-west-2b", InstanceType: "g5.xlarge"},
			},
			perRegion: 1,
			want: concat(
				expect("aliyun", "ecs.gn7i-c8g1.2xlarge", zonesOf("cn-hangzhou-", "hijk")),
				[]string{"aws us-west-2b g5.xlarge"},
			),
		},
		{
			name:   "cloud only picks regions by price",
			filter: Filter{GPU: mustGPU(t, "L20:8")},
			placements: []Placement{
				{Cloud: "aliyun"},
			},
			perRegion: 2,
			want: concat(
				expect("aliyun", "ecs.ebmgn8is.32xlarge", zonesOf("cn-beijing-", "kl")),
				expect("aliyun", "ecs.gn8is-8x.32xlarge", zonesOf("cn-beijing-", "kl")),
				expect("aliyun", "ecs.ebmgn8is.32xlarge", zonesOf("cn-hangzhou-", "jk")),
				expect("aliyun", "ecs.gn8is-8x.32xlarge", zonesOf("cn-hangzhou-", "jk")),
				expect("aliyun", "ecs.ebmgn8is.32xlarge", zonesOf("cn-shanghai-", "mn")),
				expect("aliyun", "ecs.gn8is-8x.32xlarge", zonesOf("cn-shanghai-", "mn")),
				expect("aliyun", "ecs.ebmgn8is.32xlarge", zonesOf("ap-southeast-1", "bc")),
				expect("aliyun", "ecs.gn8is-8x.32xlarge", zonesOf("ap-southeast-1", "bc")),
			),
		},
		{
			name:       "duplicates dropped",
			filter:     a10,
			placements: []Placement{{Cloud: "aws", Region: "us-east-1", Zone: "us-east-1a"}, {Cloud: "aws", Region: "us-east-1", Zone: "us-east-1a"}},
			want:       []string{"aws us-east-1a g5.xlarge"},
		},
		{
			name:       "explicit zone outside the static table is trusted",
			filter:     Filter{GPU: mustGPU(t, "A100:8")},
			placements: []Placement{{Cloud: "aws", Region: "us-east-1", Zone: "us-east-1f", InstanceType: "p4d.24xlarge"}},
			want:       []string{"aws us-east-1f p4d.24xlarge"},
		},
		{
			name:       "no gpu requirement with a fixed type",
			placements: []Placement{{Cloud: "aws", Region: "us-east-1", InstanceType: "g6.xlarge"}},
			want:       expect("aws", "g6.xlarge", zonesOf("us-east-1", "abcd")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Candidates(Request{Filter: tt.filter, Placements: tt.placements, MaxCandidates: 100, TypesPerRegion: tt.perRegion})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(summary(got), tt.want) {
				t.Errorf("candidates =\n  %s\nwant\n  %s", strings.Join(summary(got), "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestCandidatesPlacementErrors(t *testing.T) {
	c := embedded(t)
	a10 := Filter{GPU: mustGPU(t, "A10|A10G:1")}
	tests := []struct {
		name      string
		filter    Filter
		placement Placement
		want      string
	}{
		{"no cloud", a10, Placement{Region: "us-east-1"}, "candidate 1 (us-east-1): cloud is required (one of aliyun, aws)"},
		{"unknown cloud", a10, Placement{Cloud: "gcp"}, `candidate 1 (gcp): unknown cloud "gcp"`},
		{"unknown region", a10, Placement{Cloud: "aws", Region: "mars-1"}, `candidate 1 (aws mars-1): region "mars-1" is not in the aws catalog (regions: ap-northeast-1, eu-west-1, us-east-1, us-east-2, us-west-2)`},
		{"zone of another region", a10, Placement{Cloud: "aws", Region: "us-east-1", Zone: "us-west-2a"}, `zone "us-west-2a" is not in aws region us-east-1 (zones: us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f)`},
		{"zone without region", a10, Placement{Cloud: "aws", Zone: "us-east-1a"}, "zone us-east-1a given without its region"},
		{"unknown type", a10, Placement{Cloud: "aws", InstanceType: "g99.xlarge"}, "instance type g99.xlarge is not in the aws catalog"},
		{"type does not satisfy gpu", a10, Placement{Cloud: "aws", Region: "us-east-1", InstanceType: "g6.xlarge"}, "instance type g6.xlarge has 1x L4 24 GiB, which does not satisfy gpu A10|A10G:1"},
		{"type not in region", Filter{}, Placement{Cloud: "aws", Region: "eu-west-1", InstanceType: "p4de.24xlarge"}, "instance type p4de.24xlarge is not offered in eu-west-1 (offered in: us-east-1, us-west-2)"},
		{"requirement not in region", Filter{GPU: mustGPU(t, "H100:8")}, Placement{Cloud: "aws", Region: "eu-west-1"}, "candidate 1 (aws eu-west-1): no offer matches: 4 offers with H100:8 on aws, none in region eu-west-1"},
		{"type over the price ceiling", Filter{MaxHourlyPrice: 1}, Placement{Cloud: "aws", Region: "us-east-1", InstanceType: "g5.2xlarge"}, "no offer of g5.2xlarge matches the requirements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Candidates(Request{Filter: tt.filter, Placements: []Placement{tt.placement}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Candidates error =\n  %v\nwant one containing\n  %s", err, tt.want)
			}
		})
	}
}

func TestCandidatesNoMatchWithoutPlacements(t *testing.T) {
	c := embedded(t)
	_, err := c.Candidates(Request{Filter: Filter{GPU: mustGPU(t, "A10|A10G:1"), MaxHourlyPrice: 0.5}})
	if err == nil || !strings.Contains(err.Error(), "none at or under $0.50/h") {
		t.Errorf("Candidates error = %v, want the price filter named", err)
	}
}

func TestCandidateConversion(t *testing.T) {
	cand := Candidate{Cloud: "aws", Region: "us-east-1", Zone: "us-east-1a", InstanceType: "g5.xlarge", Spot: true, HourlyPrice: 0.4024}
	want := cloud.Candidate{Region: "us-east-1", Zone: "us-east-1a", InstanceType: "g5.xlarge", Spot: true, HourlyPrice: 0.4024}
	if got := cand.CloudCandidate(); got != want {
		t.Errorf("CloudCandidate() = %+v, want %+v", got, want)
	}
	if got := cand.String(); got != "aws us-east-1a g5.xlarge (spot, $0.4024/h)" {
		t.Errorf("String() = %q", got)
	}
}

func TestResolveGPU(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		cloud, region, gpu string
		want               string
		wantErr            string
	}{
		{"aws", "us-east-1", "A10G:1", "g5.xlarge", ""},
		{"aws", "us-east-1", "a10g", "g5.xlarge", ""},
		{"aws", "us-east-1", "A100:8", "p4d.24xlarge", ""},
		{"aws", "us-east-1", "A100-80GB:8", "p4de.24xlarge", ""},
		{"aws", "us-west-2", "L40S:4", "g6e.12xlarge", ""},
		{"aws", "us-east-1", "T4G", "g5g.xlarge", ""},
		{"aliyun", "cn-hangzhou", "a10:1", "ecs.gn7i-c8g1.2xlarge", ""},
		{"aliyun", "cn-shanghai", "V100-32GB:8", "ecs.ebmgn6e.24xlarge", ""},
		{"ALIYUN", "ap-southeast-1", "T4:1", "ecs.gn6i-c4g1.xlarge", ""},
		{"aws", "eu-west-1", "H100", "", "resolving gpu H100 in aws eu-west-1: no offer matches: 8 offers with H100 on aws, none in region eu-west-1"},
		{"aws", "us-east-1", "A100:", "", "missing count"},
		{"aws", "moon-1", "A100", "", `region "moon-1" is not in the aws catalog`},
		{"azure", "eastus", "A100", "", `unknown cloud "azure"`},
	}
	for _, tt := range tests {
		t.Run(tt.cloud+"/"+tt.region+"/"+tt.gpu, func(t *testing.T) {
			got, err := c.ResolveGPU(tt.cloud, tt.region, tt.gpu)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ResolveGPU error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ResolveGPU = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLookupZonesAndPrice(t *testing.T) {
	c := embedded(t)
	ty, ok := c.Lookup("aws", "p4d.24xlarge")
	want := Type{Cloud: "aws", Name: "p4d.24xlarge", Family: "p4d", GPU: "A100", GPUCount: 8, GPUMemoryGiB: 40, VCPUs: 96, MemoryGiB: 1152, Arch: ArchX86, SpotDiscount: 0.6}
	if !ok || ty != want {
		t.Errorf("Lookup(aws, p4d.24xlarge) = %+v, %v; want %+v", ty, ok, want)
	}
	if _, ok := c.Lookup("aws", "ecs.gn7i-c8g1.2xlarge"); ok {
		t.Errorf("Lookup found an Alibaba Cloud type on aws")
	}
	zones, ok := c.ZonesFor("aliyun", "cn-hangzhou")
	if !ok || !reflect.DeepEqual(zones, zonesOf("cn-hangzhou-", "bghijk")) {
		t.Errorf("ZonesFor(aliyun, cn-hangzhou) = %v, %v", zones, ok)
	}
	if _, ok := c.ZonesFor("aws", "cn-hangzhou"); ok {
		t.Errorf("ZonesFor(aws, cn-hangzhou) ok, want not found")
	}
	if err := c.ValidateZone("AWS", "us-east-1", "us-east-1c"); err != nil {
		t.Errorf("ValidateZone(us-east-1c) = %v", err)
	}
	if got := c.Regions("aws"); !reflect.DeepEqual(got, []string{"ap-northeast-1", "eu-west-1", "us-east-1", "us-east-2", "us-west-2"}) {
		t.Errorf("Regions(aws) = %v", got)
	}
	if got := c.Clouds(); !reflect.DeepEqual(got, []string{"aliyun", "aws"}) {
		t.Errorf("Clouds() = %v", got)
	}
	if p, ok := c.Price("aws", "us-east-1", "g5.xlarge", false); !ok || p != 1.006 {
		t.Errorf("Price(g5.xlarge on-demand) = %v, %v; want 1.006", p, ok)
	}
	if p, ok := c.Price("aws", "us-east-1", "g5.xlarge", true); !ok || p != 0.4024 {
		t.Errorf("Price(g5.xlarge spot) = %v, %v; want 0.4024", p, ok)
	}
	if _, ok := c.Price("aws", "eu-west-1", "p4de.24xlarge", false); ok {
		t.Errorf("Price(p4de.24xlarge in eu-west-1) found, want none")
	}
	if n := len(c.Types("aliyun")); n != 47 {
		t.Errorf("Types(aliyun) has %d types, want 47", n)
	}
}
