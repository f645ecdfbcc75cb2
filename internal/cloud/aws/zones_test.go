package aws

import (
	"strings"
	"testing"
)

func TestValidateZone(t *testing.T) {
	tests := []struct {
		region, zone string
		wantErr      string // substring; empty means valid
	}{
		{"us-east-1", "us-east-1a", ""},
		{"us-east-1", "us-east-1f", ""},
		{"us-east-1", "us-east-1g", "not in region us-east-1 (zones: us-east-1a"},
		{"us-east-1", "us-west-2a", "not in region"},
		{"ap-northeast-1", "ap-northeast-1b", "not in region"},
		{"ap-northeast-1", "ap-northeast-1c", ""},
		{"us-west-2", "us-west-2-lax-1a", ""},
		{"mx-central-1", "mx-central-1a", ""}, // not in the table: pattern only
		{"mx-central-1", "mx-central-1ab", "not in region"},
		{"", "us-east-1a", "region is empty"},
		{"useast1", "useast1a", "not an AWS region name"},
	}
	for _, tt := range tests {
		t.Run(tt.region+"/"+tt.zone, func(t *testing.T) {
			err := ValidateZone(tt.region, tt.zone)
			if tt.wantErr == "" && err != nil {
				t.Errorf("ValidateZone = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("ValidateZone = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestZonesAndRegions(t *testing.T) {
	z, ok := Zones("us-west-2")
	if !ok || strings.Join(z, ",") != "us-west-2a,us-west-2b,us-west-2c,us-west-2d" {
		t.Errorf("Zones(us-west-2) = %v %v, want a-d", z, ok)
	}
	if _, ok := Zones("xx-nowhere-1"); ok {
		t.Errorf("Zones of an unknown region reported known")
	}
	for _, r := range Regions() {
		if err := ValidateRegion(r); err != nil {
			t.Errorf("built-in region %s fails ValidateRegion: %v", r, err)
		}
	}
}

func TestManagedNamesAreDeterministic(t *testing.T) {
	if ManagedSecurityGroupName("k") != ManagedSecurityGroupName("k") || ManagedSecurityGroupName("k") == ManagedSecurityGroupName("k2") {
		t.Errorf("security group names are not a function of the key")
	}
	if ManagedKeyPairName("k", testPublicKey) != ManagedKeyPairName("k", testPublicKey+"\n") ||
		ManagedKeyPairName("k", testPublicKey) == ManagedKeyPairName("k", "ssh-ed25519 AAAAother") {
		t.Errorf("key pair names must follow the key and the public key (whitespace aside)")
	}
}
