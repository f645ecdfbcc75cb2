package catalog

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func embeddedFile(t *testing.T) *File {
	t.Helper()
	f, err := Decode(embeddedJSON)
	if err != nil {
		t.Fatalf("Decode(embedded) error: %v", err)
	}
	return f
}

func embedded(t *testing.T) *Catalog {
	t.Helper()
	c, err := Embedded()
	if err != nil {
		t.Fatalf("Embedded() error: %v", err)
	}
	return c
}

func TestEmbeddedIsCanonical(t *testing.T) {
	f := embeddedFile(t)
	got, err := Encode(f)
	if err != nil {
		t.Fatalf("Encode error: %v", err)
	}
	if !bytes.Equal(got, embeddedJSON) {
		t.Errorf("catalog.json is not in the canonical layout; run: go run ./internal/catalog/refresh -format")
	}
	if f.AsOf == "" || f.Compiled == "" || len(f.Sources) == 0 || len(f.Notes) == 0 {
		t.Errorf("catalog must record as_of, compiled, sources and notes; got as_of %q compiled %q, %d sources, %d notes", f.AsOf, f.Compiled, len(f.Sources), len(f.Notes))
	}
}

// TestCatalogSanity checks the data itself: every required family and region
// is there, prices are positive and every listed region is priced, GPU counts
// and memory agree with the type names and families.
func TestCatalogSanity(t *testing.T) {
	f := embeddedFile(t)
	requiredFamilies := map[string][]string{
		"aws":    {"p5", "p5e", "p4d", "p4de", "g6e", "g6", "g5", "g4dn"},
		"aliyun": {"gn8is", "gn7e", "gn7i", "gn7", "gn6i", "gn6v", "gn6e"},
	}
	requiredRegions := map[string][]string{
		"aws":    {"us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1"},
		"aliyun": {"cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen", "ap-southeast-1"},
	}
	// Alibaba Cloud families with a bare-metal (ebm) variant.
	requiredEBM := []string{"ecs.ebmgn8is.32xlarge", "ecs.ebmgn7e.32xlarge", "ecs.ebmgn7i.32xlarge", "ecs.ebmgn7.26xlarge", "ecs.ebmgn6i.24xlarge", "ecs.ebmgn6v.24xlarge", "ecs.ebmgn6e.24xlarge"}
	size := regexp.MustCompile(`\.(\d*)xlarge$`)
	ratio := regexp.MustCompile(`-c(\d+)g1\.`)
	multi := regexp.MustCompile(`-(\d+)x\.`)

	for _, c := range f.Clouds {
		families := map[string]FileType{}
		types := map[string]FileType{}
		for _, ty := range c.Types {
			types[ty.Name] = ty
			if first, ok := families[ty.Family]; ok {
				if first.GPU != ty.GPU || first.GPUMemoryGiB != ty.GPUMemoryGiB || first.Arch != ty.Arch {
					t.Errorf("%s family %s: %s has %s %v GiB %s, %s has %s %v GiB %s", c.Name, ty.Family, first.Name, first.GPU, first.GPUMemoryGiB, first.Arch, ty.Name, ty.GPU, ty.GPUMemoryGiB, ty.Arch)
				}
			} else {
				families[ty.Family] = ty
			}
			if !strings.Contains(ty.Name, ty.Family) {
				t.Errorf("%s type %s is not named after its family %s", c.Name, ty.Name, ty.Family)
			}
			// Sizes: N xlarge is 4N vCPUs (Alibaba Cloud within 5%: ecs.gn6v-c10g1.20xlarge has 82).
			if m := size.FindStringSubmatch(ty.Name); m != nil {
				n := 1
				if m[1] != "" {
					n, _ = strconv.Atoi(m[1])
				}
				want := 4 * n
				if c.Name == "aws" && ty.VCPUs != want || math.Abs(float64(ty.VCPUs-want)) > 0.05*float64(want) {
					t.Errorf("%s %s: %d vCPUs, want %d for its size", c.Name, ty.Name, ty.VCPUs, want)
				}
			}
			// Alibaba Cloud -cNg1: N vCPUs per GPU; -Nx.: N GPUs.
			if m := ratio.FindStringSubmatch(ty.Name); m != nil {
				n, _ := strconv.Atoi(m[1])
				if ty.VCPUs/ty.GPUCount != n {
					t.Errorf("%s: %d vCPUs / %d GPUs, want %d per GPU", ty.Name, ty.VCPUs, ty.GPUCount, n)
				}
			}
			if m := multi.FindStringSubmatch(ty.Name); m != nil {
				n, _ := strconv.Atoi(m[1])
				if ty.GPUCount != n {
					t.Errorf("%s: %d GPUs, want %d", ty.Name, ty.GPUCount, n)
				}
			}
			if ty.MemoryGiB < float64(ty.VCPUs) {
				t.Errorf("%s %s: %v GiB memory for %d vCPUs is implausibly small", c.Name, ty.Name, ty.MemoryGiB, ty.VCPUs)
			}
		}
		for _, fam := range requiredFamilies[c.Name] {
			if _, ok := families[fam]; !ok {
				t.Errorf("%s catalog lacks family %s", c.Name, fam)
			}
		}
		if c.Name == "aliyun" {
			for _, name := range requiredEBM {
				if _, ok := types[name]; !ok {
					t.Errorf("aliyun catalog lacks bare-metal type %s", name)
				}
			}
		}
		priced := map[string]int{}
		for _, p := range c.Prices {
			priced[p.Region]++
			ty := types[p.Type]
			if p.OnDemand <= 0 {
				t.Errorf("%s %s %s: on-demand price %v", c.Name, p.Region, p.Type, p.OnDemand)
			}
			spot := p.OnDemand * (1 - ty.SpotDiscount)
			if p.Spot > 0 {
				spot = p.Spot
			}
			if spot <= 0 || spot >= p.OnDemand {
				t.Errorf("%s %s %s: spot price %v not below on-demand %v", c.Name, p.Region, p.Type, spot, p.OnDemand)
			}
			// The price per GPU-hour stays in a plausible band.
			perGPU := p.OnDemand / float64(ty.GPUCount)
			if perGPU < 0.1 || perGPU > 20 {
				t.Errorf("%s %s %s: $%.2f per GPU-hour is implausible", c.Name, p.Region, p.Type, perGPU)
			}
		}
		for _, r := range c.Regions {
			if priced[r.Name] == 0 {
				t.Errorf("%s region %s is listed but has no prices", c.Name, r.Name)
			}
		}
		for _, r := range requiredRegions[c.Name] {
			if priced[r] == 0 {
				t.Errorf("%s catalog lacks prices for required region %s", c.Name, r)
			}
		}
	}
}

func TestValidateRejects(t *testing.T) {
	valid := func() *File {
		return &File{
			SchemaVersion: SchemaVersion, AsOf: "2025-06-01", Compiled: "2025-06-02", Currency: "USD",
			Sources: []string{"test"},
			Clouds: []FileCloud{{
				Name:    "aws",
				Regions: []FileRegion{{Name: "r1", Zones: []string{"r1a", "r1b"}}},
				Types:   []FileType{{Name: "g5.xlarge", Family: "g5", GPU: "A10G", GPUCount: 1, GPUMemoryGiB: 24, VCPUs: 4, MemoryGiB: 16, Arch: ArchX86, SpotDiscount: 0.6}},
				Prices:  []FilePrice{{Type: "g5.xlarge", Region: "r1", OnDemand: 1, Zones: []string{"r1a"}}},
			}},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid file: Validate() = %v, want nil", err)
	}
	tests := []struct {
		name   string
		mutate func(f *File)
		want   string
	}{
		{"schema", func(f *File) { f.SchemaVersion = 2 }, "schema_version 2"},
		{"no date", func(f *File) { f.AsOf = "" }, "as_of"},
		{"no sources", func(f *File) { f.Sources = nil }, "no sources"},
		{"zero price", func(f *File) { f.Clouds[0].Prices[0].OnDemand = 0 }, "on_demand 0 must be positive"},
		{"spot above on-demand", func(f *File) { f.Clouds[0].Prices[0].Spot = 2 }, "spot 2"},
		{"unknown type", func(f *File) { f.Clouds[0].Prices[0].Type = "x" }, "unknown instance type x"},
		{"unknown region", func(f *File) { f.Clouds[0].Prices[0].Region = "r2" }, "unknown region r2"},
		{"foreign zone", func(f *File) { f.Clouds[0].Prices[0].Zones = []string{"r2a"} }, "zone r2a, not a zone of the region"},
		{"no zones", func(f *File) { f.Clouds[0].Prices[0].Zones = nil }, "lists no zones"},
		{"unpriced type", func(f *File) {
			f.Clouds[0].Types = append(f.Clouds[0].Types, FileType{Name: "g5.2xlarge", Family: "g5", GPU: "A10G", GPUCount: 1, GPUMemoryGiB: 24, VCPUs: 8, MemoryGiB: 32, Arch: ArchX86})
		}, "g5.2xlarge has no price"},
		{"zero GPUs", func(f *File) { f.Clouds[0].Types[0].GPUCount = 0 }, "must be positive"},
		{"bad arch", func(f *File) { f.Clouds[0].Types[0].Arch = "ppc" }, `architecture "ppc"`},
		{"unnormalised GPU", func(f *File) { f.Clouds[0].Types[0].GPU = "a10g" }, "not a normalised model name"},
		{"repeated price", func(f *File) { f.Clouds[0].Prices = append(f.Clouds[0].Prices, f.Clouds[0].Prices[0]) }, "repeated"},
		{"spot discount", func(f *File) { f.Clouds[0].Types[0].SpotDiscount = 1 }, "spot_discount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := valid()
			tt.mutate(f)
			err := f.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDecodeRejectsUnknownFields(t *testing.T) {
	_, err := Decode([]byte(`{"schema_version": 1, "surprise": true}`))
	if err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("Decode = %v, want an error naming the unknown field", err)
	}
}

func TestFormatPrice(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{{1.006, "$1.006/h"}, {45.2, "$45.20/h"}, {0.8048, "$0.8048/h"}, {3, "$3.00/h"}, {2.24208, "$2.2421/h"}}
	for _, tt := range tests {
		if got := FormatPrice(tt.in); got != tt.want {
			t.Errorf("FormatPrice(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
