package fakeecs

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

// SpotPrice is one entry of the spot price history of a type in a zone
// (vpc network, linux, I/O optimized), in the account's currency.
type SpotPrice struct {
	InstanceType string    `json:"instance_type"`
	Zone         string    `json:"zone"`
	Price        float64   `json:"price"`
	OriginPrice  float64   `json:"origin_price,omitempty"` // the pay-as-you-go price
	Timestamp    time.Time `json:"timestamp"`
}

// DefaultCurrency is the currency DescribeSpotPriceHistory answers in unless
// Options.Currency says otherwise (an international-site account).
const DefaultCurrency = "USD"

// catalogOfferings returns what a region offers when no table was set for
// it: the GPU types Hadron's embedded catalog prices in the region, in the
// catalog's zones that the fake serves.
func catalogOfferings(region string, zones []string) map[string][]string {
	out := map[string][]string{}
	cat, err := catalog.Embedded()
	if err != nil {
		return out
	}
	for _, t := range cat.Types("aliyun") {
		o, ok := cat.Offer("aliyun", region, t.Name, false)
		if !ok {
			continue
		}
		for _, z := range o.Zones {
			if slices.Contains(zones, z) {
				out[t.Name] = append(out[t.Name], z)
			}
		}
	}
	return out
}

// SetOfferings sets which instance types a region offers in which zones (a
// type left out is offered nowhere in it): DescribeAvailableResource lists
// only these, and RunInstances answers InvalidInstanceType.NotSupported
// elsewhere. nil restores the default: a query for one type finds it in
// every zone, a query for every type lists the embedded catalog's types in
// the catalog's zones.
func (s *Server) SetOfferings(region string, offerings map[string][]string) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	if offerings == nil {
		delete(w.offerings, region)
		return
	}
	m := map[string][]string{}
	for t, zs := range offerings {
		m[t] = slices.Clone(zs)
	}
	w.offerings[region] = m
}

// SetSpotPriceHistory replaces the spot price history and the currency
// DescribeSpotPriceHistory states ("" means DefaultCurrency).
func (s *Server) SetSpotPriceHistory(currency string, history []SpotPrice) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	if currency == "" {
		currency = DefaultCurrency
	}
	w.currency, w.spotHist = currency, slices.Clone(history)
}

// offered reports whether a region's table (when it has one) offers typ in
// zone, and whether the region has a table.
func (w *world) offered(region, zone, typ string) (offered, hasTable bool) {
	m, ok := w.offerings[region]
	if !ok {
		return true, false
	}
	return slices.Contains(m[typ], zone), true
}

// typesIn returns the types an all-types DescribeAvailableResource lists
// for a zone, sorted.
func (w *world) typesIn(region, zone string) []string {
	m, ok := w.offerings[region]
	if !ok {
		m = catalogOfferings(region, w.zones[region])
	}
	var out []string
	for t, zs := range m {
		if slices.Contains(zs, zone) {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// spotPageSize is how many entries one DescribeSpotPriceHistory answer holds.
const spotPageSize = 100

// describeSpotPriceHistory answers like ECS: InstanceType and NetworkType
// are required; entries of the region (optionally one zone) between
// StartTime (default three hours ago) and EndTime (default now), newest
// first, paged by Offset/NextOffset.
func (w *world) describeSpotPriceHistory(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	for _, k := range []string{"InstanceType", "NetworkType"} {
		if p[k] == "" {
			return nil, errorf(http.StatusBadRequest, "MissingParameter", "The input parameter %q that is mandatory for processing this request is not supplied.", k)
		}
	}
	if nt := p["NetworkType"]; nt != "vpc" && nt != "classic" {
		return nil, errorf(http.StatusBadRequest, "InvalidNetworkType.ValueNotSupported", "The specified NetworkType %q is not supported.", nt)
	}
	if os := p["OSType"]; os != "" && os != "linux" && os != "windows" {
		return nil, errorf(http.StatusBadRequest, "InvalidOSType.ValueNotSupported", "The specified OSType %q is not supported.", os)
	}
	now := w.opts.Now()
	parse := func(k string, def time.Time) (time.Time, *apiError) {
		v := p[k]
		if v == "" {
			return def, nil
		}
		t, err := time.Parse("2006-01-02T15:04:05Z", v)
		if err != nil {
			return time.Time{}, errorf(http.StatusBadRequest, "InvalidParameter", "The specified %s %q is not in the format yyyy-MM-ddTHH:mm:ssZ.", k, v)
		}
		return t, nil
	}
	start, aerr := parse("StartTime", now.Add(-3*time.Hour))
	if aerr != nil {
		return nil, aerr
	}
	end, aerr := parse("EndTime", now)
	if aerr != nil {
		return nil, aerr
	}
	offset := 0
	if v := p["Offset"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errorf(http.StatusBadRequest, "InvalidParameter", "The specified Offset %q is not valid.", v)
		}
		offset = n
	}
	var kept []SpotPrice
	for _, sp := range w.spotHist {
		if sp.InstanceType != p["InstanceType"] || !slices.Contains(w.zones[region], sp.Zone) ||
			(p["ZoneId"] != "" && p["ZoneId"] != sp.Zone) || sp.Timestamp.Before(start) || sp.Timestamp.After(end) {
			continue
		}
		kept = append(kept, sp)
	}
	sort.SliceStable(kept, func(i, j int) bool {
		if !kept[i].Timestamp.Equal(kept[j].Timestamp) {
			return kept[i].Timestamp.After(kept[j].Timestamp)
		}
		return kept[i].Zone < kept[j].Zone
	})
	from := min(offset, len(kept))
	to := min(from+spotPageSize, len(kept))
	next := 0
	if to < len(kept) {
		next = to
	}
	items := []map[string]any{}
	for _, sp := range kept[from:to] {
		items = append(items, map[string]any{
			"ZoneId": sp.Zone, "InstanceType": sp.InstanceType, "IoOptimized": "optimized", "NetworkType": "vpc",
			"SpotPrice": sp.Price, "OriginPrice": sp.OriginPrice, "Timestamp": sp.Timestamp.UTC().Format("2006-01-02T15:04:05Z"),
		})
	}
	return map[string]any{"Currency": w.currency, "NextOffset": next, "SpotPrices": map[string]any{"SpotPriceType": items}}, nil
}
