package aws

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
)

func TestOfferings(t *testing.T) {
	tests := []struct {
		name      string
		offerings map[string]map[string][]string
		region    string
		types     []string
		want      map[string][]string
	}{
		{
			name:      "configured zones per type",
			offerings: map[string]map[string][]string{"us-east-1": {"g5.xlarge": {"us-east-1b"}, "p4d.24xlarge": {"us-east-1c", "us-east-1a"}, "g6.xlarge": {"us-east-1a"}}},
			region:    "us-east-1",
			types:     []string{"g5.xlarge", "p4d.24xlarge", "g4dn.xlarge"},
			want:      map[string][]string{"g5.xlarge": {"us-east-1b"}, "p4d.24xlarge": {"us-east-1a", "us-east-1c"}},
		},
		{
			name:   "default follows the embedded catalog",
			region: "us-east-1",
			types:  []string{"g5.xlarge"},
			want:   map[string][]string{"g5.xlarge": catalogZones(t, "us-east-1", "g5.xlarge")},
		},
		{
			name:   "no types",
			region: "us-east-1",
			want:   map[string][]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := setup(t, fakeec2.Config{Offerings: tt.offerings})
			got, err := b.Offerings(testCtx(t), tt.region, tt.types)
			if err != nil {
				t.Fatalf("Offerings: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Offerings = %v, want %v", got, tt.want)
			}
		})
	}
}

func catalogZones(t *testing.T, region, typ string) []string {
	t.Helper()
	cat, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	o, ok := cat.Offer("aws", region, typ, false)
	if !ok || len(o.Zones) == 0 {
		t.Fatalf("the catalog has no zones for %s in %s", typ, region)
	}
	return o.Zones
}

// TestOfferingsPaginates checks the fake's paging (MaxResults, NextToken)
// through the SDK's paginator, and that Offerings reads every type.
func TestOfferingsPaginates(t *testing.T) {
	table := map[string][]string{}
	var types []string
	want := map[string][]string{}
	for i := range 12 {
		typ := fmt.Sprintf("g5.%dxlarge", i+1)
		types = append(types, typ)
		table[typ] = []string{"us-east-1a", "us-east-1d"}
		want[typ] = []string{"us-east-1a", "us-east-1d"}
	}
	b, _ := setup(t, fakeec2.Config{Offerings: map[string]map[string][]string{"us-east-1": table}})
	ctx := testCtx(t)
	got, err := b.Offerings(ctx, "us-east-1", types)
	if err != nil {
		t.Fatalf("Offerings: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Offerings = %v, want %v", got, want)
	}
	p := ec2.NewDescribeInstanceTypeOfferingsPaginator(b.client("us-east-1"), &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: ec2types.LocationTypeAvailabilityZone,
		Filters:      []ec2types.Filter{{Name: awssdk.String("instance-type"), Values: []string{"g5.*"}}},
	}, func(o *ec2.DescribeInstanceTypeOfferingsPaginatorOptions) { o.Limit = 5 })
	pages, items := 0, 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		items += len(page.InstanceTypeOfferings)
	}
	if pages != 5 || items != 24 {
		t.Errorf("paging by 5 read %d items in %d pages, want 24 in 5", items, pages)
	}
}

func TestSpotPrices(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	history := []fakeec2.SpotPrice{
		{InstanceType: "g5.xlarge", Zone: "us-east-1a", Price: 0.52, Timestamp: now.Add(-3 * time.Hour)},
		{InstanceType: "g5.xlarge", Zone: "us-east-1a", Price: 0.41, Timestamp: now.Add(-time.Hour)}, // latest in 1a
		{InstanceType: "g5.xlarge", Zone: "us-east-1b", Price: 0.39, Timestamp: now.Add(-2 * time.Hour)},
		{InstanceType: "g5.xlarge", Zone: "us-east-1b", ProductDescription: "Windows", Price: 0.9, Timestamp: now.Add(-time.Minute)},
		{InstanceType: "g4dn.xlarge", Zone: "us-east-1c", Price: 0.21, Timestamp: now.Add(-time.Hour)},
		{InstanceType: "p5.48xlarge", Zone: "us-east-1c", Price: 40, Timestamp: now.Add(-time.Hour)}, // not asked
		{InstanceType: "g5.xlarge", Zone: "us-west-2a", Price: 0.3, Timestamp: now.Add(-time.Hour)},  // another region
	}
	b, srv := setup(t, fakeec2.Config{SpotPriceHistory: history})
	got, err := b.SpotPrices(testCtx(t), "us-east-1", []string{"g5.xlarge", "g4dn.xlarge"})
	if err != nil {
		t.Fatalf("SpotPrices: %v", err)
	}
	want := []catalog.SpotPrice{
		{InstanceType: "g4dn.xlarge", Zone: "us-east-1c", Price: 0.21},
		{InstanceType: "g5.xlarge", Zone: "us-east-1a", Price: 0.41},
		{InstanceType: "g5.xlarge", Zone: "us-east-1b", Price: 0.39},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SpotPrices = %v, want %v", got, want)
	}
	if n := srv.CallCount("DescribeSpotPriceHistory"); n != 1 {
		t.Errorf("DescribeSpotPriceHistory calls = %d, want 1", n)
	}
}

func TestLiveErrors(t *testing.T) {
	tests := []struct {
		name     string
		region   string
		faults   fakeec2.Faults
		wantCode string
		// wantCalls is how many attempts each lookup makes: live lookups
		// retry once, not with the launch retryer's patience.
		wantCalls int
	}{
		// The fake refuses a region it does not serve at the signature
		// check, before any action runs, as EC2 does in a region the
		// account has not enabled.
		{name: "region not enabled", region: "eu-west-1", wantCode: "AuthFailure", wantCalls: 0},
		{name: "server errors", region: "us-east-1", faults: fakeec2.Faults{ServerErrors: 100}, wantCode: "InternalError", wantCalls: liveMaxAttempts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srv := setup(t, fakeec2.Config{})
			srv.SetFaults(tt.faults)
			ctx := testCtx(t)
			_, err := b.Offerings(ctx, tt.region, []string{"g5.xlarge"})
			if err == nil || errorCode(err) != tt.wantCode || !strings.Contains(err.Error(), "describing instance type offerings in "+tt.region) {
				t.Errorf("Offerings error = %v, want %s wrapped with the region", err, tt.wantCode)
			}
			_, err = b.SpotPrices(ctx, tt.region, []string{"g5.xlarge"})
			if err == nil || errorCode(err) != tt.wantCode || !strings.Contains(err.Error(), "describing spot price history in "+tt.region) {
				t.Errorf("SpotPrices error = %v, want %s wrapped with the region", err, tt.wantCode)
			}
			for _, a := range []string{"DescribeInstanceTypeOfferings", "DescribeSpotPriceHistory"} {
				if n := srv.CallCount(a); n != tt.wantCalls {
					t.Errorf("%s calls = %d, want %d", a, n, tt.wantCalls)
				}
			}
		})
	}
}

// TestRefinerOverEC2 drives the catalog's Refiner with the backend against
// the fake: live zones and spot prices replace the embedded ones.
func TestRefinerOverEC2(t *testing.T) {
	now := time.Now().UTC()
	b, _ := setup(t, fakeec2.Config{
		Offerings:        map[string]map[string][]string{"us-east-1": {"g5.xlarge": {"us-east-1b"}}},
		SpotPriceHistory: []fakeec2.SpotPrice{{InstanceType: "g5.xlarge", Zone: "us-east-1b", Price: 0.3456, Timestamp: now.Add(-time.Hour)}},
	})
	base, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	r := catalog.NewRefiner(base, map[string]catalog.Live{"aws": b}, catalog.RefinerOptions{Timeout: 10 * time.Second})
	cat := r.Catalog(context.Background(), []string{"aws"}, []string{"us-east-1"})
	if w := cat.Warnings(); len(w) > 0 {
		t.Fatalf("Warnings = %q, want none", w)
	}
	if _, ok := cat.Offer("aws", "us-east-1", "g4dn.xlarge", false); ok {
		t.Errorf("g4dn.xlarge is still offered in us-east-1; the fake offers only g5.xlarge there")
	}
	o, ok := cat.Offer("aws", "us-east-1", "g5.xlarge", true)
	if !ok {
		t.Fatal("g5.xlarge spot is not offered in us-east-1")
	}
	if !reflect.DeepEqual(o.Zones, []string{"us-east-1b"}) || o.HourlyPrice != 0.3456 || !o.Live {
		t.Errorf("g5.xlarge spot offer = zones %v, price %v, live %v; want [us-east-1b], 0.3456, true", o.Zones, o.HourlyPrice, o.Live)
	}
}
