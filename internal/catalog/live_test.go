package catalog

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLive answers like a cloud's offering and spot price APIs would, from
// tables, and counts calls.
type fakeLive struct {
	offerings map[string]map[string][]string // region -> type -> zones
	spot      map[string][]SpotPrice         // region -> prices
	offErr    error
	spotErr   error
	block     bool // wait for ctx to end, like a hung endpoint

	mu       sync.Mutex
	calls    map[string]int      // "offerings region" / "spot region" -> count
	gotTypes map[string][]string // region -> types asked for
}

func (f *fakeLive) record(kind, region string, types []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls, f.gotTypes = map[string]int{}, map[string][]string{}
	}
	f.calls[kind+" "+region]++
	f.gotTypes[region] = types
}

func (f *fakeLive) count(kind, region string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[kind+" "+region]
}

func (f *fakeLive) Offerings(ctx context.Context, region string, types []string) (map[string][]string, error) {
	f.record("offerings", region, types)
	if f.block {
		<-ctx.Done()
		return nil, fmt.Errorf("DescribeInstanceTypeOfferings: %w", ctx.Err())
	}
	if f.offErr != nil {
		return nil, f.offErr
	}
	out := map[string][]string{}
	for _, ty := range types {
		if zs, ok := f.offerings[region][ty]; ok {
			out[ty] = zs
		}
	}
	return out, nil
}

func (f *fakeLive) SpotPrices(ctx context.Context, region string, types []string) ([]SpotPrice, error) {
	f.record("spot", region, types)
	if f.block {
		<-ctx.Done()
		return nil, fmt.Errorf("DescribeSpotPriceHistory: %w", ctx.Err())
	}
	if f.spotErr != nil {
		return nil, f.spotErr
	}
	return f.spot[region], nil
}

func usEast1Fake() *fakeLive {
	return &fakeLive{
		offerings: map[string]map[string][]string{"us-east-1": {
			"g5.xlarge":   {"us-east-1e", "us-east-1b"},
			"g4dn.xlarge": {"us-east-1a"},
		}},
		spot: map[string][]SpotPrice{"us-east-1": {
			{InstanceType: "g5.xlarge", Zone: "us-east-1b", Price: 0.35},
			{InstanceType: "g5.xlarge", Zone: "us-east-1e", Price: 0.31},
			{InstanceType: "g5.xlarge", Zone: "us-east-1e", Price: 0.33}, // older, higher quote
			{InstanceType: "g5.xlarge", Zone: "us-east-1z", Price: 0.01}, // not an offered zone
		}},
	}
}

func TestRefinerMergesLiveData(t *testing.T) {
	base := embedded(t)
	live := usEast1Fake()
	r := NewRefiner(base, map[string]Live{"aws": live}, RefinerOptions{})
	c := r.Catalog(context.Background(), []string{"aws"}, []string{"us-east-1"})
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("Warnings = %v, want none", w)
	}

	// Only the live-offered A10G type remains in us-east-1, in the live zones.
	offers, err := c.Query(Filter{GPU: mustGPU(t, "A10G:1"), Regions: []string{"us-east-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(offers) != 1 || offers[0].InstanceType != "g5.xlarge" || !reflect.DeepEqual(offers[0].Zones, []string{"us-east-1b", "us-east-1e"}) || !offers[0].Live || offers[0].HourlyPrice != 1.006 {
		t.Errorf("live A10G offers in us-east-1 = %+v, want g5.xlarge in us-east-1b, us-east-1e at $1.006/h", offers)
	}
	// Spot uses the live prices, lowest first.
	spot, err := c.Query(Filter{GPU: mustGPU(t, "A10G:1"), Regions: []string{"us-east-1"}, Market: Spot})
	if err != nil {
		t.Fatal(err)
	}
	if spot[0].HourlyPrice != 0.31 || spot[0].Estimated || !reflect.DeepEqual(spot[0].ZonePrices, map[string]float64{"us-east-1b": 0.35, "us-east-1e": 0.31}) {
		t.Errorf("live spot offer = %+v, want $0.31/h from zone prices", spot[0])
	}
	cands, err := c.Candidates(Request{Filter: Filter{GPU: mustGPU(t, "A10G:1"), Regions: []string{"us-east-1"}, Market: Spot}})
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(cands); !reflect.DeepEqual(got, []string{"aws us-east-1e g5.xlarge spot", "aws us-east-1b g5.xlarge spot"}) || cands[0].HourlyPrice != 0.31 || cands[1].HourlyPrice != 0.35 {
		t.Errorf("spot candidates = %v (%v, %v), want us-east-1e at 0.31 then us-east-1b at 0.35", got, cands[0].HourlyPrice, cands[1].HourlyPrice)
	}
	// A zone the static table did not know becomes valid.
	if err := c.ValidateZone("aws", "us-east-1", "us-east-1e"); err != nil {
		t.Errorf("ValidateZone(us-east-1e) after live data = %v", err)
	}
	// Other regions and the base catalog are untouched.
	if _, ok := c.Offer("aws", "us-west-2", "g5.2xlarge", false); !ok {
		t.Errorf("g5.2xlarge in us-west-2 disappeared; only us-east-1 was refined")
	}
	if _, ok := base.Offer("aws", "us-east-1", "g5.2xlarge", false); !ok {
		t.Errorf("refining changed the base catalog")
	}
	if err := base.ValidateZone("aws", "us-east-1", "us-east-1e"); err == nil {
		t.Errorf("refining changed the base catalog's zones")
	}
	// The backend was asked about exactly the types priced in the region.
	asked := live.gotTypes["us-east-1"]
	if !sort.StringsAreSorted(asked) || len(asked) != len(base.typesIn("aws", "us-east-1")) {
		t.Errorf("Offerings asked for %v, want the %d types priced in us-east-1, sorted", asked, len(base.typesIn("aws", "us-east-1")))
	}
}

func TestRefinerCachesPerRun(t *testing.T) {
	live := usEast1Fake()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := NewRefiner(embedded(t), map[string]Live{"aws": live}, RefinerOptions{TTL: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Catalog(ctx, []string{"aws"}, []string{"us-east-1"})
		}()
	}
	wg.Wait()
	r.Catalog(ctx, []string{"aws"}, []string{"us-east-1"})
	if n := live.count("offerings", "us-east-1"); n != 1 {
		t.Errorf("Offerings called %d times for 9 catalogs within the TTL, want 1", n)
	}
	now = now.Add(2 * time.Minute)
	r.Catalog(ctx, []string{"aws"}, []string{"us-east-1"})
	if n, s := live.count("offerings", "us-east-1"), live.count("spot", "us-east-1"); n != 2 || s != 2 {
		t.Errorf("after the TTL: Offerings called %d times, SpotPrices %d; want 2 each", n, s)
	}
}

func TestRefinerDefaultScope(t *testing.T) {
	live := usEast1Fake()
	r := NewRefiner(embedded(t), map[string]Live{"aws": live, "aliyun": nil}, RefinerOptions{})
	c := r.Catalog(context.Background(), nil, nil)
	for _, region := range embedded(t).Regions("aws") {
		if n := live.count("offerings", region); n != 1 {
			t.Errorf("Offerings for %s called %d times, want 1", region, n)
		}
	}
	// Regions the fake does not know report no offerings: nothing is left there.
	if _, err := c.Query(Filter{Clouds: []string{"aws"}, Regions: []string{"eu-west-1"}}); err == nil {
		t.Errorf("eu-west-1 still has offers although the live data offers nothing there")
	}
	// Alibaba Cloud has no Live: its data stays embedded.
	if _, ok := c.Offer("aliyun", "cn-hangzhou", "ecs.gn7i-c8g1.2xlarge", false); !ok {
		t.Errorf("aliyun offers changed without a Live")
	}
}

func TestRefinerFallsBackWithWarnings(t *testing.T) {
	tests := []struct {
		name      string
		live      *fakeLive
		opts      RefinerOptions
		cancelled bool
		want      []string
	}{
		{
			name: "zone lookup fails",
			live: &fakeLive{offErr: errors.New("UnauthorizedOperation: not authorized (request id 1234)")},
			want: []string{"aws us-east-1: live zone lookup failed, using the embedded catalog (prices as of 2025-06-01): UnauthorizedOperation: not authorized (request id 1234)"},
		},
		{
			name: "spot lookup fails",
			live: &fakeLive{offErr: ErrLiveUnsupported, spotErr: errors.New("Throttling")},
			want: []string{"aws us-east-1: live spot price lookup failed, using estimated spot prices: Throttling"},
		},
		{
			name: "endpoint hangs past the timeout",
			live: &fakeLive{block: true},
			opts: RefinerOptions{Timeout: 10 * time.Millisecond},
			want: []string{
				"aws us-east-1: live zone lookup failed, using the embedded catalog (prices as of 2025-06-01): DescribeInstanceTypeOfferings: context deadline exceeded",
				"aws us-east-1: live spot price lookup failed, using estimated spot prices: DescribeSpotPriceHistory: context deadline exceeded",
			},
		},
		{
			name:      "caller gives up",
			live:      &fakeLive{block: true},
			opts:      RefinerOptions{Timeout: 10 * time.Millisecond},
			cancelled: true,
			want: []string{
				"aws us-east-1: live zone lookup failed, using the embedded catalog (prices as of 2025-06-01): waiting for live data: context canceled",
				"aws us-east-1: live spot price lookup failed, using estimated spot prices: waiting for live data: context canceled",
			},
		},
		{
			name: "unsupported lookups are silent",
			live: &fakeLive{offErr: fmt.Errorf("aws: %w", ErrLiveUnsupported), spotErr: ErrLiveUnsupported},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := embedded(t)
			r := NewRefiner(base, map[string]Live{"aws": tt.live}, tt.opts)
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancelled {
				cancel()
			}
			defer cancel()
			c := r.Catalog(ctx, []string{"aws"}, []string{"us-east-1"})
			if got := c.Warnings(); !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("Warnings =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			// The embedded data still answers.
			got, err := c.Query(Filter{GPU: mustGPU(t, "A10G:1"), Regions: []string{"us-east-1"}, Market: AnyMarket})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := base.Query(Filter{GPU: mustGPU(t, "A10G:1"), Regions: []string{"us-east-1"}, Market: AnyMarket})
			if !reflect.DeepEqual(got, want) {
				t.Errorf("offers after a failed refinement differ from the embedded ones")
			}
		})
	}
}
