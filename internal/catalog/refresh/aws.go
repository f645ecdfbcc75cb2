package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

// defaultAWSPriceListURL is the AWS Price List bulk file of EC2 for one
// region (%s); public, no credentials needed. Files are large (hundreds of
// MB) and are streamed.
const defaultAWSPriceListURL = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/%s/index.json"

func refreshAWS(ctx context.Context, f *catalog.File, cfg options, _ func(string) string) ([]string, error) {
	c, err := cloudOf(f, "aws")
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, t := range c.Types {
		want[t.Name] = true
	}
	var report, failures []string
	for _, region := range c.Regions {
		url := fmt.Sprintf(cfg.awsPriceListURL, region.Name)
		prices, err := fetchAWSPrices(ctx, cfg.httpClient, url, want)
		if err != nil {
			failures = append(failures, fmt.Sprintf("aws %s: %v", region.Name, err))
			continue
		}
		updated := 0
		priced := map[string]bool{}
		for i := range c.Prices {
			p := &c.Prices[i]
			if p.Region != region.Name {
				continue
			}
			priced[p.Type] = true
			if v, ok := prices[p.Type]; ok {
				p.OnDemand, p.Estimate = v, false
				updated++
			} else {
				report = append(report, fmt.Sprintf("aws %s: no price for %s in the price list; kept %v (estimate %t)", region.Name, p.Type, p.OnDemand, p.Estimate))
			}
		}
		for _, ty := range sortedNames(prices) {
			if !priced[ty] {
				report = append(report, fmt.Sprintf("aws %s: %s is sold here at $%v/h but has no catalog row; add one with its zones", region.Name, ty, prices[ty]))
			}
		}
		report = append(report, fmt.Sprintf("aws %s: %d prices refreshed", region.Name, updated))
		if cfg.zones {
			r, err := refreshAWSZones(ctx, c, region.Name, cfg.awsEC2Endpoint)
			if err != nil {
				failures = append(failures, fmt.Sprintf("aws %s zones: %v", region.Name, err))
			}
			report = append(report, r...)
		}
	}
	if len(failures) > 0 {
		return report, fmt.Errorf("aws refresh incomplete:\n  %s", strings.Join(failures, "\n  "))
	}
	return report, nil
}

func sortedNames(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fetchAWSPrices(ctx context.Context, client *http.Client, url string, want map[string]bool) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("building price list request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching price list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching price list %s: HTTP %s", url, resp.Status)
	}
	return parseAWSPriceList(resp.Body, want)
}

type awsProduct struct {
	ProductFamily string `json:"productFamily"`
	Attributes    struct {
		InstanceType    string `json:"instanceType"`
		OperatingSystem string `json:"operatingSystem"`
		Tenancy         string `json:"tenancy"`
		PreInstalledSw  string `json:"preInstalledSw"`
		CapacityStatus  string `json:"capacitystatus"`
		LicenseModel    string `json:"licenseModel"`
	} `json:"attributes"`
}

// matches keeps plain Linux, shared-tenancy, on-demand capacity.
func (p awsProduct) matches(want map[string]bool) bool {
	a := p.Attributes
	return want[a.InstanceType] && a.OperatingSystem == "Linux" && a.Tenancy == "Shared" &&
		a.PreInstalledSw == "NA" && (a.CapacityStatus == "" || a.CapacityStatus == "Used") &&
		(a.LicenseModel == "" || a.LicenseModel == "No License required")
}

type awsTerm struct {
	PriceDimensions map[string]struct {
		Unit         string            `json:"unit"`
		PricePerUnit map[string]string `json:"pricePerUnit"`
	} `json:"priceDimensions"`
}

// parseAWSPriceList streams an EC2 price list file and returns the hourly
// on-demand USD price of each wanted instance type.
func parseAWSPriceList(r io.Reader, want map[string]bool) (map[string]float64, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	skuType := map[string]string{}
	skuPrice := map[string]float64{}
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return nil, err
		}
		switch key {
		case "products":
			if err := eachMember(dec, func(sku string) error {
				var p awsProduct
				if err := dec.Decode(&p); err != nil {
					return fmt.Errorf("product %s: %w", sku, err)
				}
				if p.matches(want) {
					skuType[sku] = p.Attributes.InstanceType
				}
				return nil
			}); err != nil {
				return nil, err
			}
		case "terms":
			if err := eachMember(dec, func(kind string) error {
				if kind != "OnDemand" {
					return skipValue(dec)
				}
				return eachMember(dec, func(sku string) error {
					var terms map[string]awsTerm
					if err := dec.Decode(&terms); err != nil {
						return fmt.Errorf("terms of %s: %w", sku, err)
					}
					for _, term := range terms {
						for _, d := range term.PriceDimensions {
							if d.Unit != "Hrs" {
								continue
							}
							v, err := strconv.ParseFloat(d.PricePerUnit["USD"], 64)
							if err == nil && v > 0 {
								skuPrice[sku] = v
							}
						}
					}
					return nil
				})
			}); err != nil {
				return nil, err
			}
		default:
			if err := skipValue(dec); err != nil {
				return nil, err
			}
		}
	}
	out := map[string]float64{}
	for sku, ty := range skuType {
		if p, ok := skuPrice[sku]; ok {
			if old, seen := out[ty]; !seen || p < old {
				out[ty] = p
			}
		}
	}
	return out, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("reading price list: %w", err)
	}
	if tok != d {
		return fmt.Errorf("reading price list: got %v, want %v", tok, d)
	}
	return nil
}

func stringToken(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("reading price list: %w", err)
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("reading price list: got %v, want an object key", tok)
	}
	return s, nil
}

// eachMember calls fn for each key of the object that comes next; fn must
// consume the value.
func eachMember(dec *json.Decoder, fn func(key string) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

// skipValue consumes the next value without keeping it.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("reading price list: %w", err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// refreshAWSZones asks EC2 which zones of region offer each catalog type and
// rewrites the rows' zones (and the region's zone list).
func refreshAWSZones(ctx context.Context, c *catalog.FileCloud, region, endpoint string) ([]string, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("loading AWS credentials: %w", err)
	}
	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if endpoint != "" {
			o.BaseEndpoint = awssdk.String(endpoint)
		}
	})
	var types []string
	for _, p := range c.Prices {
		if p.Region == region {
			types = append(types, p.Type)
		}
	}
	zones := map[string][]string{}
	// The instance-type filter takes at most a few hundred values; the
	// catalog has fewer types than that per region.
	pager := ec2.NewDescribeInstanceTypeOfferingsPaginator(client, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: ec2types.LocationTypeAvailabilityZone,
		Filters:      []ec2types.Filter{{Name: awssdk.String("instance-type"), Values: types}},
	})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("DescribeInstanceTypeOfferings: %w", err)
		}
		for _, o := range page.InstanceTypeOfferings {
			t, z := string(o.InstanceType), awssdk.ToString(o.Location)
			zones[t] = append(zones[t], z)
		}
	}
	if len(zones) == 0 {
		return nil, errors.New("DescribeInstanceTypeOfferings returned no offerings; check the region and credentials")
	}
	return applyZones(c, "aws", region, zones), nil
}

// applyZones writes zones per type into the rows of one region. A type with
// no zones keeps its row (and is reported), so a temporary gap does not
// delete data.
func applyZones(c *catalog.FileCloud, cloud, region string, zones map[string][]string) []string {
	var report []string
	regionZones := map[string]bool{}
	for i := range c.Regions {
		if c.Regions[i].Name == region {
			for _, z := range c.Regions[i].Zones {
				regionZones[z] = true
			}
		}
	}
	for i := range c.Prices {
		p := &c.Prices[i]
		if p.Region != region {
			continue
		}
		zs := zones[p.Type]
		if len(zs) == 0 {
			report = append(report, fmt.Sprintf("%s %s: %s is offered in no zone now; kept zones %v", cloud, region, p.Type, p.Zones))
			continue
		}
		zs = append([]string(nil), zs...)
		sort.Strings(zs)
		p.Zones = compact(zs)
		for _, z := range zs {
			regionZones[z] = true
		}
	}
	for i := range c.Regions {
		if c.Regions[i].Name == region {
			var all []string
			for z := range regionZones {
				all = append(all, z)
			}
			sort.Strings(all)
			c.Regions[i].Zones = all
		}
	}
	return report
}

func compact(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}
