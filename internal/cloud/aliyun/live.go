package aliyun

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

var _ catalog.Live = (*Backend)(nil)

// liveMaxRetries is how often a live lookup is retried: it runs at plan time
// under a short deadline, so once, not with Create's patience.
const liveMaxRetries = 1

// spotHistoryWindow is how far back SpotPrices looks for the latest price
// of each zone (ECS records a price when it changes, at least hourly).
const spotHistoryWindow = 3 * time.Hour

// ErrNotUSD is returned (wrapped) by SpotPrices when the account's prices
// are not in US dollars: China-site accounts see CNY. Hadron's catalog is in
// USD and does not guess an exchange rate, so the embedded spot estimates
// stay in place (and the plan says why).
var ErrNotUSD = errors.New("spot prices are not in USD")

// live returns a copy of b that retries less, for plan-time lookups.
func (b *Backend) live() *Backend {
	l := *b
	l.maxRetries = liveMaxRetries
	return &l
}

// Offerings returns, for the given instance types, the zones of region
// whose stock DescribeAvailableResource reports as available now
// (pay-as-you-go). One call answers for every type of the region.
func (b *Backend) Offerings(ctx context.Context, region string, instanceTypes []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(instanceTypes) == 0 {
		return out, nil
	}
	want := map[string]bool{}
	for _, t := range instanceTypes {
		want[t] = true
	}
	lb := b.live()
	c, err := lb.client(ctx, region)
	if err != nil {
		return nil, err
	}
	resp, err := call(ctx, lb, "DescribeAvailableResource", func() (*ecs.DescribeAvailableResourceResponse, error) {
		req := ecs.CreateDescribeAvailableResourceRequest()
		req.RegionId = region
		req.DestinationResource = "InstanceType"
		req.InstanceChargeType = "PostPaid"
		return c.DescribeAvailableResource(req)
	})
	if err != nil {
		return nil, fmt.Errorf("describing available instance types in %s: %w", region, err)
	}
	for _, z := range resp.AvailableZones.AvailableZone {
		if z.Status != "Available" {
			continue
		}
		for _, res := range z.AvailableResources.AvailableResource {
			for _, sr := range res.SupportedResources.SupportedResource {
				if want[sr.Value] && sr.Status == "Available" {
					out[sr.Value] = append(out[sr.Value], z.ZoneId)
				}
			}
		}
	}
	for t, zs := range out {
		sort.Strings(zs)
		out[t] = compactSorted(zs)
	}
	return out, nil
}

// SpotPrices returns the latest spot price (vpc, linux) of each instance
// type in each zone of region, from DescribeSpotPriceHistory (one call per
// type, as the API requires; liveConcurrency at once). Prices in another
// currency than USD are not converted: the call fails with ErrNotUSD.
func (b *Backend) SpotPrices(ctx context.Context, region string, instanceTypes []string) ([]catalog.SpotPrice, error) {
	lb := b.live()
	start := time.Now().UTC().Add(-spotHistoryWindow).Format("2006-01-02T15:04:05Z")
	results := make([][]catalog.SpotPrice, len(instanceTypes))
	errs := make([]error, len(instanceTypes))
	sem := make(chan struct{}, liveConcurrency)
	var wg sync.WaitGroup
	for i, typ := range instanceTypes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = lb.spotPrices(ctx, region, typ, start)
		}()
	}
	wg.Wait()
	var out []catalog.SpotPrice
	for i := range instanceTypes {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out = append(out, results[i]...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].InstanceType != out[j].InstanceType {
			return out[i].InstanceType < out[j].InstanceType
		}
		return out[i].Zone < out[j].Zone
	})
	return out, nil
}

// liveConcurrency bounds the DescribeSpotPriceHistory calls of one region
// in flight at once.
const liveConcurrency = 4

// spotPrices returns the latest price of one type in each zone of region
// since start, reading every page.
func (b *Backend) spotPrices(ctx context.Context, region, typ, start string) ([]catalog.SpotPrice, error) {
	c, err := b.client(ctx, region)
	if err != nil {
		return nil, err
	}
	type latest struct {
		at    string // yyyy-MM-ddTHH:mm:ssZ sorts as time
		price float64
	}
	byZone := map[string]latest{}
	for offset := 0; ; {
		resp, err := call(ctx, b, "DescribeSpotPriceHistory", func() (*ecs.DescribeSpotPriceHistoryResponse, error) {
			req := ecs.CreateDescribeSpotPriceHistoryRequest()
			req.RegionId = region
			req.InstanceType = typ
			req.NetworkType = "vpc"
			req.OSType = "linux"
			req.StartTime = start
			if offset > 0 {
				req.Offset = requests.NewInteger(offset)
			}
			return c.DescribeSpotPriceHistory(req)
		})
		if err != nil {
			return nil, fmt.Errorf("describing spot price history of %s in %s: %w", typ, region, err)
		}
		if cur := resp.Currency; cur != "" && cur != "USD" {
			return nil, fmt.Errorf("spot prices in %s are in %s (a China-site account), kept the catalog's USD estimates: %w", region, cur, ErrNotUSD)
		}
		for _, sp := range resp.SpotPrices.SpotPriceType {
			if sp.ZoneId == "" || sp.SpotPrice <= 0 {
				continue
			}
			if old, ok := byZone[sp.ZoneId]; !ok || sp.Timestamp > old.at {
				byZone[sp.ZoneId] = latest{at: sp.Timestamp, price: sp.SpotPrice}
			}
		}
		if resp.NextOffset <= offset {
			break
		}
		offset = resp.NextOffset
	}
	out := make([]catalog.SpotPrice, 0, len(byZone))
	for z, l := range byZone {
		out = append(out, catalog.SpotPrice{InstanceType: typ, Zone: z, Price: l.price})
	}
	return out, nil
}

func compactSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
