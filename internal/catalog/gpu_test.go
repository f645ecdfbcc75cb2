package catalog

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseGPU(t *testing.T) {
	tests := []struct {
		in   string
		want GPUSpec
		str  string
	}{
		{"A100:8", GPUSpec{Choices: []GPUChoice{{Model: "A100"}}, Count: 8}, "A100:8"},
		{"H100", GPUSpec{Choices: []GPUChoice{{Model: "H100"}}}, "H100"},
		{"A10G:1", GPUSpec{Choices: []GPUChoice{{Model: "A10G"}}, Count: 1}, "A10G:1"},
		{"a10:1", GPUSpec{Choices: []GPUChoice{{Model: "A10"}}, Count: 1}, "A10:1"},
		{" l40s : 4 ", GPUSpec{Choices: []GPUChoice{{Model: "L40S"}}, Count: 4}, "L40S:4"},
		{"a100-80gb:8", GPUSpec{Choices: []GPUChoice{{Model: "A100", MinMemoryGiB: 80}}, Count: 8}, "A100-80GB:8"},
		{"A100-40G", GPUSpec{Choices: []GPUChoice{{Model: "A100", MinMemoryGiB: 40}}}, "A100-40GB"},
		{"A10|a10g:1", GPUSpec{Choices: []GPUChoice{{Model: "A10"}, {Model: "A10G"}}, Count: 1}, "A10|A10G:1"},
		{"T4|t4", GPUSpec{Choices: []GPUChoice{{Model: "T4"}}}, "T4"},
		{"B200:8", GPUSpec{Choices: []GPUChoice{{Model: "B200"}}, Count: 8}, "B200:8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseGPU(tt.in)
			if err != nil {
				t.Fatalf("ParseGPU(%q) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseGPU(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.str {
				t.Errorf("ParseGPU(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
			}
		})
	}
}

func TestParseGPUErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // the bad part must be named
	}{
		{"", "empty GPU requirement"},
		{"A100:", "missing count"},
		{"A100:eight", `count "eight" is not a positive integer`},
		{"A100:0", `count "0" is not a positive integer`},
		{"A100:-1", `count "-1"`},
		{":8", "missing model"},
		{"A100:8:2", `more than one ":"`},
		{"A 100:8", `model "A 100" has the character ' '`},
		{"A10||A10G", `empty model between "|"`},
		{"A100-xGB:8", `memory suffix "xGB"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseGPU(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseGPU(%q) error = %v, want one containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestGPUSpecMatches(t *testing.T) {
	a100_40 := Type{GPU: "A100", GPUCount: 8, GPUMemoryGiB: 40}
	a100_80 := Type{GPU: "A100", GPUCount: 8, GPUMemoryGiB: 80}
	tests := []struct {
		spec string
		typ  Type
		want bool
	}{
		{"A100:8", a100_40, true},
		{"A100", a100_40, true},
		{"A100:1", a100_40, false},
		{"A100-80GB:8", a100_40, false},
		{"A100-80GB:8", a100_80, true},
		{"H100|A100:8", a100_40, true},
		{"H100", a100_40, false},
	}
	for _, tt := range tests {
		spec, err := ParseGPU(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := spec.Matches(tt.typ); got != tt.want {
			t.Errorf("%s.Matches(%+v) = %v, want %v", tt.spec, tt.typ, got, tt.want)
		}
	}
}

func TestParseMarketAndArch(t *testing.T) {
	markets := map[string]Market{"true": Spot, "SPOT": Spot, "false": OnDemand, "on-demand": OnDemand, "any": AnyMarket, " Any ": AnyMarket}
	for in, want := range markets {
		got, err := ParseMarket(in)
		if err != nil || got != want {
			t.Errorf("ParseMarket(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseMarket("maybe"); err == nil || !strings.Contains(err.Error(), `spot "maybe"`) {
		t.Errorf("ParseMarket(maybe) error = %v, want one naming the value", err)
	}
	arches := map[string]string{"x86_64": ArchX86, "AMD64": ArchX86, "arm64": ArchARM, "aarch64": ArchARM}
	for in, want := range arches {
		got, err := ParseArch(in)
		if err != nil || got != want {
			t.Errorf("ParseArch(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseArch("riscv"); err == nil || !strings.Contains(err.Error(), `"riscv"`) {
		t.Errorf("ParseArch(riscv) error = %v, want one naming the value", err)
	}
}
