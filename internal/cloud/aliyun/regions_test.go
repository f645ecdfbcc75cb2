package aliyun

import (
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

func TestValidateZone(t *testing.T) {
	tests := []struct {
		region, zone string
		wantErr      string
	}{
		{"cn-hangzhou", "", ""},
		{"cn-hangzhou", "cn-hangzhou-h", ""},
		{"cn-shanghai", "cn-shanghai-l", ""},
		{"cn-beijing", "cn-beijing-l", ""},
		{"cn-shenzhen", "cn-shenzhen-f", ""},
		{"ap-southeast-1", "ap-southeast-1c", ""},
		{"cn-hangzhou", "cn-hangzhou-z", ""}, // not in the table, but shaped like a zone of the region
		{"eu-west-1", "eu-west-1a", ""},      // region not in the table
		{"cn-hangzhou", "cn-shanghai-e", `zone "cn-shanghai-e" is not in region "cn-hangzhou" (its zones include cn-hangzhou-b`},
		{"ap-southeast-1", "ap-southeast-1-a", "is not in region"},
		{"cn-beijing", "cn-beijing-gg", "is not in region"},
		{"eu-west-1", "us-east-1a", "is not in region"},
		{"", "cn-hangzhou-h", "missing Alibaba Cloud region"},
		{"CN_HANGZHOU", "", "not an Alibaba Cloud region"},
	}
	for _, tt := range tests {
		err := ValidateZone(tt.region, tt.zone)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ValidateZone(%q, %q) = %v, want %q", tt.region, tt.zone, err, tt.wantErr)
		}
	}
}

func TestZonesTable(t *testing.T) {
	for _, r := range []string{"cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen", "ap-southeast-1"} {
		zones, ok := Zones(r)
		if !ok || len(zones) < 2 {
			t.Errorf("Zones(%q) = %v, %t; want at least two known zones", r, zones, ok)
		}
		for _, z := range zones {
			if err := ValidateZone(r, z); err != nil {
				t.Errorf("table zone %s of %s: %v", z, r, err)
			}
		}
	}
	if _, ok := Zones("mars-north-1"); ok {
		t.Errorf("Zones(mars-north-1) is known, want unknown")
	}
	if got := Regions(); len(got) < 5 || got[0] > got[len(got)-1] {
		t.Errorf("Regions() = %v, want a sorted list", got)
	}
}

func TestValidateInstanceType(t *testing.T) {
	for _, ok := range []string{"ecs.gn7i-c8g1.2xlarge", "ecs.gn6v-c8g1.16xlarge", "ecs.g7.large", "ecs.ebmgn7e.32xlarge"} {
		if err := ValidateInstanceType(ok); err != nil {
			t.Errorf("ValidateInstanceType(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "gn7i-c8g1.2xlarge", "ecs.GN7I.2xlarge", "p3.2xlarge", "ecs.gn7i"} {
		if err := ValidateInstanceType(bad); err == nil {
			t.Errorf("ValidateInstanceType(%q) = nil, want an error", bad)
		}
	}
}

func TestPickUbuntu(t *testing.T) {
	img := func(id, created, arch string) ecs.Image {
		return ecs.Image{ImageId: id, CreationTime: created, Architecture: arch}
	}
	tests := []struct {
		name   string
		images []ecs.Image
		want   string
	}{
		{"newest LTS wins", []ecs.Image{
			img("ubuntu_22_04_x64_20G_alibase_20250117.vhd", "2025-01-17T06:00:00Z", "x86_64"),
			img("ubuntu_24_04_x64_20G_alibase_20241115.vhd", "2024-11-15T06:00:00Z", "x86_64"),
			img("ubuntu_24_04_x64_20G_alibase_20250113.vhd", "2025-01-13T06:00:00Z", "x86_64"),
		}, "ubuntu_24_04_x64_20G_alibase_20250113.vhd"},
		{"interim releases and other arches ignored", []ecs.Image{
			img("ubuntu_23_10_x64_20G_alibase_20240101.vhd", "2024-01-01T06:00:00Z", "x86_64"),
			img("ubuntu_24_04_arm64_20G_alibase_20250120.vhd", "2025-01-20T06:00:00Z", "arm64"),
			img("ubuntu_22_04_x64_20G_alibase_20240926.vhd", "2024-09-26T06:00:00Z", "x86_64"),
		}, "ubuntu_22_04_x64_20G_alibase_20240926.vhd"},
		{"none", []ecs.Image{img("centos_7_9_x64_20G_alibase_20240628.vhd", "2024-06-28T06:00:00Z", "x86_64")}, ""},
	}
	for _, tt := range tests {
		if got := pickUbuntu(tt.images); got != tt.want {
			t.Errorf("%s: pickUbuntu = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestInstanceName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"trainer", "trainer"},
		{"gpu node #1", "gpu-node--1"},
		{"1st", "hadron-1st"},
		{"", "hadron-"},
		{"x", "x-0"},
		{strings.Repeat("a", 200), strings.Repeat("a", 128)},
	}
	for _, tt := range tests {
		if got := instanceName(tt.in); got != tt.want {
			t.Errorf("instanceName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	capacity := []string{"OperationDenied.NoStock", "NoStock", "QuotaExceed.ElasticQuota", "QuotaExceeded.PrivateIpAddress",
		"InvalidInstanceType.NotSupported", "InvalidInstanceType.ValueNotSupported", "Zone.NotOnSale", "Zone.NotOpen",
		"InvalidResourceType.NotSupported", "InvalidSpotPriceLimit.LowerThanPublicPrice"}
	for _, c := range capacity {
		if !isCapacityError(c) {
			t.Errorf("isCapacityError(%q) = false, want true", c)
		}
	}
	for _, c := range []string{"InvalidImageId.NotFound", "SignatureDoesNotMatch", "Throttling.User", "InvalidParameter"} {
		if isCapacityError(c) {
			t.Errorf("isCapacityError(%q) = true, want false", c)
		}
	}
	for _, e := range []*APIError{{Code: "Throttling.User"}, {Code: "Throttling"}, {Code: "ServiceUnavailable", HTTPStatus: 503}, {Code: "Anything", HTTPStatus: 502}, {Code: "LastTokenProcessing"}} {
		if !isRetryable(e) {
			t.Errorf("isRetryable(%+v) = false, want true", e)
		}
	}
	for _, e := range []*APIError{{Code: "OperationDenied.NoStock", HTTPStatus: 403}, {Code: "SignatureDoesNotMatch", HTTPStatus: 400}} {
		if isRetryable(e) {
			t.Errorf("isRetryable(%+v) = true, want false", e)
		}
	}
}
