package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

// refreshAliyun asks ECS DescribePrice for the pay-as-you-go hourly list
// price of every catalog row, and with -zones DescribeAvailableResource for
// the zones with stock.
func refreshAliyun(ctx context.Context, f *catalog.File, cfg options, getenv func(string) string) ([]string, error) {
	c, err := cloudOf(f, "aliyun")
	if err != nil {
		return nil, err
	}
	id, secret := getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"), getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
	if id == "" || secret == "" {
		return nil, fmt.Errorf("the Alibaba Cloud refresh needs ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")
	}
	if cfg.cnyPerUSD <= 0 {
		return nil, fmt.Errorf("-cny-per-usd %v must be positive", cfg.cnyPerUSD)
	}
	var report, failures []string
	for _, region := range c.Regions {
		client, err := ecs.NewClientWithAccessKey(region.Name, id, secret)
		if err != nil {
			return report, fmt.Errorf("creating ECS client for %s: %w", region.Name, err)
		}
		updated := 0
		zones := map[string][]string{}
		for i := range c.Prices {
			p := &c.Prices[i]
			if p.Region != region.Name {
				continue
			}
			if err := ctx.Err(); err != nil {
				return report, err
			}
			price, err := aliyunPrice(client, cfg, region.Name, p.Type)
			if err != nil {
				failures = append(failures, fmt.Sprintf("aliyun %s %s: %v", region.Name, p.Type, err))
			} else {
				p.OnDemand, p.Estimate = price, false
				updated++
			}
			if cfg.zones {
				zs, err := aliyunZones(client, cfg, region.Name, p.Type)
				if err != nil {
					failures = append(failures, fmt.Sprintf("aliyun %s %s zones: %v", region.Name, p.Type, err))
					continue
				}
				zones[p.Type] = zs
			}
		}
		report = append(report, fmt.Sprintf("aliyun %s: %d prices refreshed", region.Name, updated))
		if cfg.zones && len(zones) > 0 {
			report = append(report, applyZones(c, "aliyun", region.Name, zones)...)
		}
	}
	if len(failures) > 0 {
		return report, fmt.Errorf("aliyun refresh incomplete:\n  %s", strings.Join(failures, "\n  "))
	}
	return report, nil
}

// endpoint points a request at -aliyun-endpoint when set, over plain HTTP for
// loopback addresses (tests).
func endpoint(req *requests.RpcRequest, cfg options) {
	if cfg.aliyunEndpoint == "" {
		return
	}
	req.Domain = cfg.aliyunEndpoint
	host, _, err := net.SplitHostPort(cfg.aliyunEndpoint)
	if err != nil {
		host = cfg.aliyunEndpoint
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		req.Scheme = requests.HTTP
	}
}

// aliyunPrice returns the instance's pay-as-you-go list price per hour in
// USD: the instanceType line of DescribePrice (without the system disk),
// converted from CNY when the account is billed in CNY.
func aliyunPrice(client *ecs.Client, cfg options, region, instanceType string) (float64, error) {
	req := ecs.CreateDescribePriceRequest()
	endpoint(req.RpcRequest, cfg)
	req.RegionId = region
	req.ResourceType = "instance"
	req.InstanceType = instanceType
	req.InstanceNetworkType = "vpc"
	req.IoOptimized = "optimized"
	req.PriceUnit = "Hour"
	req.Period = requests.NewInteger(1)
	resp, err := client.DescribePrice(req)
	if err != nil {
		return 0, fmt.Errorf("DescribePrice: %w", err)
	}
	price := resp.PriceInfo.Price
	v := 0.0
	for _, d := range price.DetailInfos.DetailInfo {
		if d.Resource == "instanceType" {
			v = d.OriginalPrice
		}
	}
	if v <= 0 {
		return 0, fmt.Errorf("DescribePrice (request id %s) has no instanceType price line", resp.RequestId)
	}
	switch price.Currency {
	case "USD":
	case "CNY", "":
		v /= cfg.cnyPerUSD
	default:
		return 0, fmt.Errorf("DescribePrice (request id %s) quoted in %s, want USD or CNY", resp.RequestId, price.Currency)
	}
	return float64(int64(v*1e4+0.5)) / 1e4, nil
}

// aliyunZones returns the zones of region where instanceType is available
// for pay-as-you-go with stock.
func aliyunZones(client *ecs.Client, cfg options, region, instanceType string) ([]string, error) {
	req := ecs.CreateDescribeAvailableResourceRequest()
	endpoint(req.RpcRequest, cfg)
	req.RegionId = region
	req.DestinationResource = "InstanceType"
	req.InstanceChargeType = "PostPaid"
	req.InstanceType = instanceType
	resp, err := client.DescribeAvailableResource(req)
	if err != nil {
		return nil, fmt.Errorf("DescribeAvailableResource: %w", err)
	}
	var zones []string
	for _, z := range resp.AvailableZones.AvailableZone {
		if z.Status != "Available" {
			continue
		}
	resources:
		for _, r := range z.AvailableResources.AvailableResource {
			for _, s := range r.SupportedResources.SupportedResource {
				if s.Value == instanceType && s.Status == "Available" {
					zones = append(zones, z.ZoneId)
					break resources
				}
			}
		}
	}
	return zones, nil
}
