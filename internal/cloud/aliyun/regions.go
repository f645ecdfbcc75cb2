package aliyun

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// knownZones lists the zones of the main regions (as published by Alibaba
// Cloud; new zones open over time, so ValidateZone only uses the table for its
// message, never to reject a zone that belongs to the region).
func knownZones() map[string][]string {
	letters := func(region, sep string, ls string) []string {
		out := make([]string, 0, len(ls))
		for _, l := range ls {
			out = append(out, region+sep+string(l))
		}
		return out
	}
	return map[string][]string{
		"cn-hangzhou":    letters("cn-hangzhou", "-", "befghijk"),
		"cn-shanghai":    letters("cn-shanghai", "-", "abefglmn"),
		"cn-beijing":     letters("cn-beijing", "-", "acdefghijkl"),
		"cn-shenzhen":    letters("cn-shenzhen", "-", "abcdef"),
		"cn-qingdao":     letters("cn-qingdao", "-", "bc"),
		"cn-zhangjiakou": letters("cn-zhangjiakou", "-", "abc"),
		"cn-huhehaote":   letters("cn-huhehaote", "-", "ab"),
		"cn-wulanchabu":  letters("cn-wulanchabu", "-", "abc"),
		"cn-chengdu":     letters("cn-chengdu", "-", "ab"),
		"cn-hongkong":    letters("cn-hongkong", "-", "bcd"),
		"ap-southeast-1": letters("ap-southeast-1", "", "abc"),
		"ap-southeast-5": letters("ap-southeast-5", "", "abc"),
		"ap-northeast-1": letters("ap-northeast-1", "", "abc"),
		"us-west-1":      letters("us-west-1", "", "ab"),
		"us-east-1":      letters("us-east-1", "", "ab"),
		"eu-central-1":   letters("eu-central-1", "", "abc"),
	}
}

// Regions returns the regions whose zones Hadron knows, sorted.
func Regions() []string {
	z := knownZones()
	out := make([]string, 0, len(z))
	for r := range z {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Zones returns the known zones of region, and whether the region is known.
func Zones(region string) ([]string, bool) {
	z, ok := knownZones()[region]
	return z, ok
}

// IsKnownZone reports whether zone is in the built-in table for region.
func IsKnownZone(region, zone string) bool {
	z, _ := Zones(region)
	return slices.Contains(z, zone)
}

var (
	regionRE     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+(-[0-9]+)?$`)
	zoneLetterRE = regexp.MustCompile(`^[a-z]$`)
)

// ValidateRegion checks the shape of a region id (cn-hangzhou, ap-southeast-1).
func ValidateRegion(region string) error {
	if region == "" {
		return fmt.Errorf("missing Alibaba Cloud region")
	}
	if !regionRE.MatchString(region) {
		return fmt.Errorf("%q is not an Alibaba Cloud region id (for example cn-hangzhou or ap-southeast-1)", region)
	}
	return nil
}

// ValidateZone checks that zone (when not empty) belongs to region: zones are
// the region id plus "-x" (cn-hangzhou-h) or, for regions ending in a digit,
// plus "x" (ap-southeast-1a). Zones missing from the built-in table are
// accepted when their shape fits, because new zones open over time.
func ValidateZone(region, zone string) error {
	if err := ValidateRegion(region); err != nil {
		return err
	}
	if zone == "" || IsKnownZone(region, zone) {
		return nil
	}
	// Regions ending in a digit append the zone letter (ap-southeast-1a),
	// the others a dash and the letter (cn-hangzhou-h).
	sep := "-"
	if last := region[len(region)-1]; last >= '0' && last <= '9' {
		sep = ""
	}
	if rest, ok := strings.CutPrefix(zone, region+sep); ok && zoneLetterRE.MatchString(rest) {
		return nil
	}
	msg := fmt.Sprintf("zone %q is not in region %q", zone, region)
	if z, ok := Zones(region); ok {
		msg += " (its zones include " + strings.Join(z, ", ") + ")"
	}
	return fmt.Errorf("%s", msg)
}

var instanceTypeRE = regexp.MustCompile(`^ecs\.[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+$`)

// ValidateInstanceType checks the shape of an ECS instance type
// (ecs.gn7i-c8g1.2xlarge); whether it exists is the catalog's business.
func ValidateInstanceType(t string) error {
	if !instanceTypeRE.MatchString(t) {
		return fmt.Errorf("%q is not an ECS instance type (for example ecs.gn7i-c8g1.2xlarge)", t)
	}
	return nil
}
