package aliyun

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

const gpuType2 = "ecs.gn6v-c8g1.2xlarge"

func TestOfferings(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*fakeecs.Server)
		types []string
		want  map[string][]string
	}{
		{
			name: "configured offerings and stock",
			setup: func(s *fakeecs.Server) {
				s.SetOfferings("cn-hangzhou", map[string][]string{gpuType: {zoneH, zoneJ}, gpuType2: {zoneI}, "ecs.g7.large": {zoneH}})
				s.SetStock("cn-hangzhou", zoneJ, gpuType, false) // sold out: not offered now
			},
			types: []string{gpuType, gpuType2, "ecs.gn7e-c16g1.4xlarge"},
			want:  map[string][]string{gpuType: {zoneH}, gpuType2: {zoneI}},
		},
		{
			name:  "default follows the embedded catalog",
			setup: func(*fakeecs.Server) {},
			types: []string{gpuType},
			want:  map[string][]string{gpuType: catalogZones(t, "cn-hangzhou", gpuType)},
		},
		{
			name:  "no types",
			setup: func(*fakeecs.Server) {},
			want:  map[string][]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, b := newTestBackend(t)
			tt.setup(srv)
			got, err := b.Offerings(ctxT(t), "cn-hangzhou", tt.types)
			if err != nil {
				t.Fatalf("Offerings: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Offerings = %v, want %v", got, tt.want)
			}
			if n, want := srv.CallCount("DescribeAvailableResource"), min(len(tt.types), 1); n != want {
				t.Errorf("DescribeAvailableResource calls = %d, want %d (one answers for every type)", n, want)
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
	o, ok := cat.Offer("aliyun", region, typ, false)
	if !ok || len(o.Zones) == 0 {
		t.Fatalf("the catalog has no zones for %s in %s", typ, region)
	}
	return o.Zones
}

// TestOfferingsTableRejectsRun checks that the fake's offerings table also
// governs RunInstances, so Create and Offerings agree.
func TestOfferingsTableRejectsRun(t *testing.T) {
	srv, b := newTestBackend(t)
	srv.SetOfferings("cn-hangzhou", map[string][]string{gpuType: {zoneJ}})
	inst, err := b.Create(ctxT(t), testSpec(hz(zoneH), hz(zoneJ)))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if inst.Zone != zoneJ {
		t.Errorf("landed in %s, want %s (the only zone offering %s)", inst.Zone, zoneJ, gpuType)
	}
}

func TestSpotPrices(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	history := []fakeecs.SpotPrice{
		{InstanceType: gpuType, Zone: zoneH, Price: 0.52, OriginPrice: 1.33, Timestamp: now.Add(-2 * time.Hour)},
		{InstanceType: gpuType, Zone: zoneH, Price: 0.41, OriginPrice: 1.33, Timestamp: now.Add(-time.Hour)}, // latest in h
		{InstanceType: gpuType, Zone: zoneI, Price: 0.39, OriginPrice: 1.33, Timestamp: now.Add(-30 * time.Minute)},
		{InstanceType: gpuType, Zone: zoneJ, Price: 0.2, OriginPrice: 1.33, Timestamp: now.Add(-5 * time.Hour)}, // too old
		{InstanceType: gpuType2, Zone: zoneI, Price: 0.8, Timestamp: now.Add(-time.Hour)},
		{InstanceType: "ecs.gn7e-c16g1.4xlarge", Zone: zoneI, Price: 2, Timestamp: now.Add(-time.Hour)}, // not asked
		{InstanceType: gpuType, Zone: "cn-shanghai-e", Price: 0.3, Timestamp: now.Add(-time.Hour)},      // another region
	}
	tests := []struct {
		name     string
		currency string
		want     []catalog.SpotPrice
		wantErr  error
	}{
		{name: "USD", currency: "USD", want: []catalog.SpotPrice{
			{InstanceType: gpuType2, Zone: zoneI, Price: 0.8},
			{InstanceType: gpuType, Zone: zoneH, Price: 0.41},
			{InstanceType: gpuType, Zone: zoneI, Price: 0.39},
		}},
		{name: "CNY is not converted", currency: "CNY", wantErr: ErrNotUSD},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, b := newTestBackend(t)
			srv.SetSpotPriceHistory(tt.currency, history)
			got, err := b.SpotPrices(ctxT(t), "cn-hangzhou", []string{gpuType, gpuType2})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SpotPrices error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SpotPrices = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLiveErrorsRetryOnce(t *testing.T) {
	srv, b := newTestBackend(t)
	srv.InjectErrors("", "InternalError", 100)
	ctx := ctxT(t)
	if _, err := b.Offerings(ctx, "cn-hangzhou", []string{gpuType}); err == nil || !strings.Contains(err.Error(), "describing available instance types in cn-hangzhou") {
		t.Errorf("Offerings error = %v, want the failure wrapped with the region", err)
	}
	if _, err := b.SpotPrices(ctx, "cn-hangzhou", []string{gpuType}); err == nil || !strings.Contains(err.Error(), "describing spot price history of "+gpuType) {
		t.Errorf("SpotPrices error = %v, want the failure wrapped with the type", err)
	}
	for _, a := range []string{"DescribeAvailableResource", "DescribeSpotPriceHistory"} {
		if n := srv.CallCount(a); n != 1+liveMaxRetries {
			t.Errorf("%s calls = %d, want %d", a, n, 1+liveMaxRetries)
		}
	}
}

// TestRefinerOverECS drives the catalog's Refiner with the backend against
// the fake: live zones and spot prices replace the embedded ones.
func TestRefinerOverECS(t *testing.T) {
	srv, b := newTestBackend(t)
	srv.SetOfferings("cn-hangzhou", map[string][]string{gpuType: {zoneI}})
	srv.SetSpotPriceHistory("USD", []fakeecs.SpotPrice{{InstanceType: gpuType, Zone: zoneI, Price: 0.4321, Timestamp: time.Now().Add(-time.Minute)}})
	base, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	r := catalog.NewRefiner(base, map[string]catalog.Live{"aliyun": b}, catalog.RefinerOptions{Timeout: 10 * time.Second})
	cat := r.Catalog(context.Background(), []string{"aliyun"}, []string{"cn-hangzhou"})
	if w := cat.Warnings(); len(w) > 0 {
		t.Fatalf("Warnings = %q, want none", w)
	}
	o, ok := cat.Offer("aliyun", "cn-hangzhou", gpuType, true)
	if !ok {
		t.Fatalf("%s spot is not offered in cn-hangzhou", gpuType)
	}
	if !reflect.DeepEqual(o.Zones, []string{zoneI}) || o.HourlyPrice != 0.4321 || !o.Live {
		t.Errorf("spot offer = zones %v, price %v, live %v; want [%s], 0.4321, true", o.Zones, o.HourlyPrice, o.Live, zoneI)
	}
}

// TestSpotPricesPages puts a zone's only price on the fake's second page
// (it answers 100 entries a page, newest first).
func TestSpotPricesPages(t *testing.T) {
	srv, b := newTestBackend(t)
	now := time.Now().UTC().Truncate(time.Second)
	var history []fakeecs.SpotPrice
	for i := range 120 {
		history = append(history, fakeecs.SpotPrice{InstanceType: gpuType, Zone: zoneH, Price: 0.5 + float64(i)/1000, Timestamp: now.Add(-time.Duration(i+1) * time.Minute)})
	}
	history = append(history, fakeecs.SpotPrice{InstanceType: gpuType, Zone: zoneI, Price: 0.45, Timestamp: now.Add(-150 * time.Minute)})
	srv.SetSpotPriceHistory("USD", history)
	got, err := b.SpotPrices(ctxT(t), "cn-hangzhou", []string{gpuType})
	if err != nil {
		t.Fatalf("SpotPrices: %v", err)
	}
	want := []catalog.SpotPrice{{InstanceType: gpuType, Zone: zoneH, Price: 0.5}, {InstanceType: gpuType, Zone: zoneI, Price: 0.45}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SpotPrices = %v, want %v", got, want)
	}
	if n := srv.CallCount("DescribeSpotPriceHistory"); n != 2 {
		t.Errorf("DescribeSpotPriceHistory calls = %d, want 2 (two pages)", n)
	}
}
