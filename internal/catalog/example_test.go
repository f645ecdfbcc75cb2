package catalog_test

import (
	"context"
	"fmt"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

// The data source: offers for one A10-class GPU under $1.50/h, cheapest first.
func ExampleCatalog_Query() {
	c, err := catalog.Embedded()
	if err != nil {
		panic(err)
	}
	gpu, err := catalog.ParseGPU("A10|A10G:1")
	if err != nil {
		panic(err)
	}
	offers, err := c.Query(catalog.Filter{GPU: gpu, MaxHourlyPrice: 1.5})
	if err != nil {
		panic(err)
	}
	for _, o := range offers[:4] {
		fmt.Println(o)
	}
	_, err = c.Query(catalog.Filter{GPU: gpu, Regions: []string{"eu-central-1"}})
	fmt.Println(err)
	// Output:
	// aws us-east-1 g5.xlarge (1x A10G, on-demand, $1.006/h)
	// aws us-east-2 g5.xlarge (1x A10G, on-demand, $1.006/h)
	// aws us-west-2 g5.xlarge (1x A10G, on-demand, $1.006/h)
	// aws eu-west-1 g5.xlarge (1x A10G, on-demand, $1.1227/h)
	// no offer matches: 50 offers with A10|A10G:1, none in region eu-central-1 (available: ap-northeast-1, ap-southeast-1, cn-beijing, cn-hangzhou, cn-shanghai, cn-shenzhen, eu-west-1, us-east-1, us-east-2, us-west-2)
}

// The instance resource at plan time: requirements resolved to an ordered
// candidate list with prices, then the provider budget.
func ExampleCatalog_Candidates() {
	c, err := catalog.Embedded()
	if err != nil {
		panic(err)
	}
	gpu, _ := catalog.ParseGPU("A10|A10G:1")
	cands, err := c.Candidates(catalog.Request{
		Filter:        catalog.Filter{GPU: gpu, MaxHourlyPrice: 1.5},
		Placements:    []catalog.Placement{{Cloud: "aws", Region: "us-west-2"}, {Cloud: "aliyun", Region: "cn-hangzhou"}},
		MaxCandidates: 6,
	})
	if err != nil {
		panic(err)
	}
	for _, cand := range cands {
		fmt.Println(cand)
	}
	err = catalog.CheckBudget(2, []catalog.Cost{
		{Name: "hadron_gpu_instance.a", HourlyPrice: cands[0].HourlyPrice},
		{Name: "hadron_gpu_instance.b", HourlyPrice: cands[len(cands)-1].HourlyPrice},
	})
	fmt.Println(err)
	// Output:
	// aws us-west-2a g5.xlarge (on-demand, $1.006/h)
	// aws us-west-2b g5.xlarge (on-demand, $1.006/h)
	// aws us-west-2c g5.xlarge (on-demand, $1.006/h)
	// aliyun cn-hangzhou-h ecs.gn7i-c8g1.2xlarge (on-demand, $1.33/h)
	// aliyun cn-hangzhou-i ecs.gn7i-c8g1.2xlarge (on-demand, $1.33/h)
	// aliyun cn-hangzhou-j ecs.gn7i-c8g1.2xlarge (on-demand, $1.33/h)
	// hourly price $2.336/h of 2 items exceeds the budget of $2.00/h by $0.336/h; biggest: hadron_gpu_instance.b $1.33/h (57%), hadron_gpu_instance.a $1.006/h (43%)
}

// staticLive stands in for a backend's Live implementation.
type staticLive struct{}

func (staticLive) Offerings(ctx context.Context, region string, types []string) (map[string][]string, error) {
	return map[string][]string{"g5.xlarge": {region + "c"}}, nil
}

func (staticLive) SpotPrices(ctx context.Context, region string, types []string) ([]catalog.SpotPrice, error) {
	return nil, fmt.Errorf("DescribeSpotPriceHistory: UnauthorizedOperation")
}

// Live refinement: a Refiner per provider run merges what the clouds say
// now over the embedded data and reports what failed.
func ExampleRefiner() {
	base, err := catalog.Embedded()
	if err != nil {
		panic(err)
	}
	r := catalog.NewRefiner(base, map[string]catalog.Live{"aws": staticLive{}}, catalog.RefinerOptions{})
	c := r.Catalog(context.Background(), []string{"aws"}, []string{"us-east-1"})
	gpu, _ := catalog.ParseGPU("A10G")
	offers, _ := c.Query(catalog.Filter{GPU: gpu, Regions: []string{"us-east-1"}})
	fmt.Println(len(offers), offers[0].InstanceType, offers[0].Zones, offers[0].Live)
	for _, w := range c.Warnings() {
		fmt.Println(w)
	}
	// Output:
	// 1 g5.xlarge [us-east-1c] true
	// aws us-east-1: live spot price lookup failed, using estimated spot prices: DescribeSpotPriceHistory: UnauthorizedOperation
}
