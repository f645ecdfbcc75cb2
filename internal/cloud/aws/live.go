package aws

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

var _ catalog.Live = (*Backend)(nil)

// Live lookups run at plan time under a short deadline: they try twice at
// most, instead of the retryer's patient defaults meant for launches.
const liveMaxAttempts = 2

// filterValuesPerCall bounds the instance types named in one request's
// filter (EC2 accepts up to 200 values per filter).
const filterValuesPerCall = 100

// SpotProductDescription is the spot market Hadron's instances run on.
const SpotProductDescription = "Linux/UNIX"

func liveCallOptions(o *ec2.Options) { o.RetryMaxAttempts = liveMaxAttempts }

// Offerings returns the availability zones of region where each of the
// instance types can be launched, from DescribeInstanceTypeOfferings
// (location type availability-zone). Types EC2 does not offer in the region
// are missing from the map.
func (b *Backend) Offerings(ctx context.Context, region string, instanceTypes []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(instanceTypes) == 0 {
		return out, nil
	}
	c := b.client(region)
	for start := 0; start < len(instanceTypes); start += filterValuesPerCall {
		chunk := instanceTypes[start:min(start+filterValuesPerCall, len(instanceTypes))]
		p := ec2.NewDescribeInstanceTypeOfferingsPaginator(c, &ec2.DescribeInstanceTypeOfferingsInput{
			LocationType: types.LocationTypeAvailabilityZone,
			Filters:      []types.Filter{{Name: awssdk.String("instance-type"), Values: chunk}},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx, liveCallOptions)
			if err != nil {
				return nil, fmt.Errorf("describing instance type offerings in %s: %w", region, err)
			}
			for _, o := range page.InstanceTypeOfferings {
				t, z := string(o.InstanceType), awssdk.ToString(o.Location)
				if t == "" || z == "" {
					continue
				}
				out[t] = append(out[t], z)
			}
		}
	}
	for t, zs := range out {
		out[t] = dedupSorted(zs)
	}
	return out, nil
}

// SpotPrices returns the current Linux/UNIX spot price of each instance type
// in each zone of region that has one, from DescribeSpotPriceHistory: the
// latest price per type and zone.
func (b *Backend) SpotPrices(ctx context.Context, region string, instanceTypes []string) ([]catalog.SpotPrice, error) {
	if len(instanceTypes) == 0 {
		return nil, nil
	}
	type key struct{ typ, zone string }
	type latest struct {
		at    time.Time
		price float64
	}
	found := map[key]latest{}
	c := b.client(region)
	now := time.Now()
	for start := 0; start < len(instanceTypes); start += filterValuesPerCall {
		chunk := instanceTypes[start:min(start+filterValuesPerCall, len(instanceTypes))]
		its := make([]types.InstanceType, len(chunk))
		for i, t := range chunk {
			its[i] = types.InstanceType(t)
		}
		// A start time of now asks for the price in effect now (EC2 answers
		// the latest change before it for each type and zone).
		p := ec2.NewDescribeSpotPriceHistoryPaginator(c, &ec2.DescribeSpotPriceHistoryInput{
			InstanceTypes:       its,
			ProductDescriptions: []string{SpotProductDescription},
			StartTime:           awssdk.Time(now),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx, liveCallOptions)
			if err != nil {
				return nil, fmt.Errorf("describing spot price history in %s: %w", region, err)
			}
			for _, sp := range page.SpotPriceHistory {
				if sp.ProductDescription != "" && string(sp.ProductDescription) != SpotProductDescription {
					continue
				}
				price, err := strconv.ParseFloat(awssdk.ToString(sp.SpotPrice), 64)
				if err != nil || price <= 0 {
					continue
				}
				k := key{string(sp.InstanceType), awssdk.ToString(sp.AvailabilityZone)}
				if k.typ == "" || k.zone == "" {
					continue
				}
				at := awssdk.ToTime(sp.Timestamp)
				if old, ok := found[k]; !ok || at.After(old.at) {
					found[k] = latest{at: at, price: price}
				}
			}
		}
	}
	out := make([]catalog.SpotPrice, 0, len(found))
	for k, l := range found {
		out = append(out, catalog.SpotPrice{InstanceType: k.typ, Zone: k.zone, Price: l.price})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].InstanceType != out[j].InstanceType {
			return out[i].InstanceType < out[j].InstanceType
		}
		return out[i].Zone < out[j].Zone
	})
	return out, nil
}

func dedupSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
