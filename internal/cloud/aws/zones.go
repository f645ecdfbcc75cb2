package aws

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// regionZones lists the availability zones of the main commercial regions
// (zone names; an account may see fewer). Used offline, at plan time.
func regionZones() map[string]string {
	return map[string]string{
		"us-east-1":      "abcdef",
		"us-east-2":      "abc",
		"us-west-1":      "abc",
		"us-west-2":      "abcd",
		"ca-central-1":   "abd",
		"sa-east-1":      "abc",
		"eu-west-1":      "abc",
		"eu-west-2":      "abc",
		"eu-west-3":      "abc",
		"eu-central-1":   "abc",
		"eu-central-2":   "abc",
		"eu-north-1":     "abc",
		"eu-south-1":     "abc",
		"eu-south-2":     "abc",
		"ap-south-1":     "abc",
		"ap-south-2":     "abc",
		"ap-northeast-1": "acd",
		"ap-northeast-2": "abcd",
		"ap-northeast-3": "abc",
		"ap-southeast-1": "abc",
		"ap-southeast-2": "abc",
		"ap-southeast-3": "abc",
		"ap-southeast-4": "abc",
		"ap-east-1":      "abc",
		"me-south-1":     "abc",
		"me-central-1":   "abc",
		"il-central-1":   "abc",
		"af-south-1":     "abc",
		"us-gov-west-1":  "abc",
		"us-gov-east-1":  "abc",
	}
}

var regionPattern = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$`)

// Regions returns the regions whose zones are known offline, sorted.
func Regions() []string {
	rz := regionZones()
	out := make([]string, 0, len(rz))
	for r := range rz {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Zones returns the availability zones of region, and whether the region is
// in the built-in table.
func Zones(region string) ([]string, bool) {
	letters, ok := regionZones()[region]
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(letters))
	for _, l := range letters {
		out = append(out, region+string(l))
	}
	return out, true
}

// ValidateRegion checks that region looks like an AWS region name.
func ValidateRegion(region string) error {
	if region == "" {
		return fmt.Errorf("region is empty")
	}
	if !regionPattern.MatchString(region) {
		return fmt.Errorf("%q is not an AWS region name (like us-east-1)", region)
	}
	return nil
}

// ValidateZone checks that zone is an availability zone of region: one of
// the built-in zones for a known region, or region plus a letter otherwise.
// Local Zones (region-city-Nx, like us-west-2-lax-1a) are accepted.
func ValidateZone(region, zone string) error {
	if err := ValidateRegion(region); err != nil {
		return err
	}
	if rest, ok := strings.CutPrefix(zone, region+"-"); ok && regexp.MustCompile(`^[a-z]+-[0-9][a-z]$`).MatchString(rest) {
		return nil // a Local Zone of region
	}
	if zones, ok := Zones(region); ok {
		for _, z := range zones {
			if z == zone {
				return nil
			}
		}
		return fmt.Errorf("zone %q is not in region %s (zones: %s)", zone, region, strings.Join(zones, ", "))
	}
	if len(zone) == len(region)+1 && strings.HasPrefix(zone, region) && zone[len(zone)-1] >= 'a' && zone[len(zone)-1] <= 'z' {
		return nil
	}
	return fmt.Errorf("zone %q is not in region %s (zones of %s are named %sa, %sb, ...)", zone, region, region, region, region)
}
