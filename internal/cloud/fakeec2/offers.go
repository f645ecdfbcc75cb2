package fakeec2

import (
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

// SpotPrice is one entry of the spot price history: the price of a type in
// a zone from Timestamp until the next entry for the same type, zone and
// product.
type SpotPrice struct {
	InstanceType string `json:"instance_type"`
	Zone         string `json:"zone"`
	// ProductDescription defaults to "Linux/UNIX".
	ProductDescription string    `json:"product_description,omitempty"`
	Price              float64   `json:"price"` // USD per hour
	Timestamp          time.Time `json:"timestamp"`
}

const defaultProduct = "Linux/UNIX"

// DefaultOfferings returns where a region's instance types are offered when
// no offerings were set for it: a GPU type priced by Hadron's embedded
// catalog in the zones the catalog lists for it (those of zones that the
// fake serves), and any other type in every zone. This keeps the fake
// consistent with the plan the embedded catalog alone would make.
func DefaultOfferings(region string, zones []string, instanceType string) []string {
	cat, err := catalog.Embedded()
	if err != nil {
		return slices.Clone(zones)
	}
	if _, ok := cat.Lookup("aws", instanceType); !ok {
		return slices.Clone(zones)
	}
	o, ok := cat.Offer("aws", region, instanceType, false)
	if !ok {
		return nil // a catalog type not priced in this region
	}
	var out []string
	for _, z := range o.Zones {
		if slices.Contains(zones, z) {
			out = append(out, z)
		}
	}
	return out
}

// SetOfferings makes DescribeInstanceTypeOfferings in region answer exactly
// the given types and zones (a type left out is offered nowhere in the
// region); nil restores DefaultOfferings for the region.
func (f *Fake) SetOfferings(region string, offerings map[string][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if offerings == nil {
		delete(f.offerings, region)
		return
	}
	m := map[string][]string{}
	for t, zs := range offerings {
		m[t] = slices.Clone(zs)
	}
	f.offerings[region] = m
}

// SetSpotPriceHistory replaces the spot price history.
func (f *Fake) SetSpotPriceHistory(history []SpotPrice) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spotHist = slices.Clone(history)
}

func cloneOfferings(in map[string]map[string][]string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for r, m := range in {
		c := map[string][]string{}
		for t, zs := range m {
			c[t] = slices.Clone(zs)
		}
		out[r] = c
	}
	return out
}

// page cuts items to one page of MaxResults from NextToken (an offset).
func page(req *request, n, maxDefault int) (from, to int, next string, aerr *apiError) {
	size := maxDefault
	if s := req.form.Get("MaxResults"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 5 || v > 1000 {
			return 0, 0, "", badRequest("InvalidParameterValue", "MaxResults must be between 5 and 1000, got %q", s)
		}
		size = v
	}
	if tok := req.form.Get("NextToken"); tok != "" {
		v, err := strconv.Atoi(tok)
		if err != nil || v < 0 || v > n {
			return 0, 0, "", badRequest("InvalidNextToken", "The token '%s' is not valid", tok)
		}
		from = v
	}
	to = min(from+size, n)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next, nil
}

type describeInstanceTypeOfferingsResponse struct {
	responseBase
	Offerings []xmlInstanceTypeOffering `xml:"instanceTypeOfferingSet>item"`
	NextToken string                    `xml:"nextToken,omitempty"`
}

type xmlInstanceTypeOffering struct {
	InstanceType string `xml:"instanceType"`
	LocationType string `xml:"locationType"`
	Location     string `xml:"location"`
}

func (f *Fake) describeInstanceTypeOfferings(req *request) (response, *apiError) {
	lt := req.form.Get("LocationType")
	switch lt {
	case "", "region", "availability-zone":
	case "availability-zone-id":
		return nil, badRequest("InvalidParameterValue", "The fake does not serve location type %s", lt)
	default:
		return nil, badRequest("InvalidParameterValue", "Value (%s) for parameter locationType is invalid", lt)
	}
	if lt == "" {
		lt = "region"
	}
	var typeFilter, locFilter []string
	for _, fl := range filters(req.form) {
		switch fl.name {
		case "instance-type":
			typeFilter = fl.values
		case "location":
			locFilter = fl.values
		default:
			return nil, badRequest("InvalidParameterValue", "The filter '%s' is invalid", fl.name)
		}
	}
	zones := f.cfg.Zones[req.region]
	offered := f.offerings[req.region]
	var types []string
	if offered != nil {
		for t := range offered {
			types = append(types, t)
		}
	} else {
		// Without a table every type exists somewhere; only named types
		// can be answered.
		for _, v := range typeFilter {
			if !containsWildcard(v) {
				types = append(types, v)
			}
		}
	}
	sort.Strings(types)
	var all []xmlInstanceTypeOffering
	for _, t := range types {
		if len(typeFilter) > 0 && !matchAny(typeFilter, t) {
			continue
		}
		var in []string
		if offered != nil {
			in = offered[t]
		} else {
			in = DefaultOfferings(req.region, zones, t)
		}
		if len(in) == 0 {
			continue
		}
		if lt == "region" {
			if len(locFilter) == 0 || matchAny(locFilter, req.region) {
				all = append(all, xmlInstanceTypeOffering{InstanceType: t, LocationType: lt, Location: req.region})
			}
			continue
		}
		for _, z := range in {
			if len(locFilter) == 0 || matchAny(locFilter, z) {
				all = append(all, xmlInstanceTypeOffering{InstanceType: t, LocationType: lt, Location: z})
			}
		}
	}
	from, to, next, aerr := page(req, len(all), 1000)
	if aerr != nil {
		return nil, aerr
	}
	return &describeInstanceTypeOfferingsResponse{Offerings: all[from:to], NextToken: next}, nil
}

func containsWildcard(s string) bool {
	for _, c := range s {
		if c == '*' || c == '?' {
			return true
		}
	}
	return false
}

type describeSpotPriceHistoryResponse struct {
	responseBase
	History   []xmlSpotPrice `xml:"spotPriceHistorySet>item"`
	NextToken string         `xml:"nextToken,omitempty"`
}

type xmlSpotPrice struct {
	InstanceType       string `xml:"instanceType"`
	ProductDescription string `xml:"productDescription"`
	SpotPrice          string `xml:"spotPrice"`
	Timestamp          string `xml:"timestamp"`
	AvailabilityZone   string `xml:"availabilityZone"`
}

// describeSpotPriceHistory answers like EC2: entries between StartTime and
// EndTime (now by default), plus for each type, zone and product the entry
// in effect at StartTime, newest first.
func (f *Fake) describeSpotPriceHistory(req *request) (response, *apiError) {
	parseTime := func(name string) (time.Time, *apiError) {
		s := req.form.Get(name)
		if s == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, badRequest("InvalidParameterValue", "Value (%s) for parameter %s is invalid", s, name)
		}
		return t, nil
	}
	start, aerr := parseTime("StartTime")
	if aerr != nil {
		return nil, aerr
	}
	end, aerr := parseTime("EndTime")
	if aerr != nil {
		return nil, aerr
	}
	if end.IsZero() {
		end = f.cfg.Now()
	}
	typeFilter := list(req.form, "InstanceType")
	productFilter := list(req.form, "ProductDescription")
	var zoneFilter []string
	if z := req.form.Get("AvailabilityZone"); z != "" {
		zoneFilter = []string{z}
	}
	for _, fl := range filters(req.form) {
		switch fl.name {
		case "instance-type":
			typeFilter = append(typeFilter, fl.values...)
		case "product-description":
			productFilter = append(productFilter, fl.values...)
		case "availability-zone":
			zoneFilter = append(zoneFilter, fl.values...)
		default:
			return nil, badRequest("InvalidParameterValue", "The filter '%s' is invalid", fl.name)
		}
	}
	zones := f.cfg.Zones[req.region]
	type key struct{ typ, zone, product string }
	inEffect := map[key]SpotPrice{} // the latest entry at or before start
	var kept []SpotPrice
	for _, sp := range f.spotHist {
		if sp.ProductDescription == "" {
			sp.ProductDescription = defaultProduct
		}
		if !slices.Contains(zones, sp.Zone) ||
			(len(typeFilter) > 0 && !matchAny(typeFilter, sp.InstanceType)) ||
			(len(productFilter) > 0 && !matchAny(productFilter, sp.ProductDescription)) ||
			(len(zoneFilter) > 0 && !matchAny(zoneFilter, sp.Zone)) ||
			sp.Timestamp.After(end) {
			continue
		}
		if !start.IsZero() && !sp.Timestamp.After(start) {
			k := key{sp.InstanceType, sp.Zone, sp.ProductDescription}
			if old, ok := inEffect[k]; !ok || sp.Timestamp.After(old.Timestamp) {
				inEffect[k] = sp
			}
			continue
		}
		kept = append(kept, sp)
	}
	for _, sp := range inEffect {
		kept = append(kept, sp)
	}
	sort.SliceStable(kept, func(i, j int) bool {
		if !kept[i].Timestamp.Equal(kept[j].Timestamp) {
			return kept[i].Timestamp.After(kept[j].Timestamp)
		}
		if kept[i].InstanceType != kept[j].InstanceType {
			return kept[i].InstanceType < kept[j].InstanceType
		}
		return kept[i].Zone < kept[j].Zone
	})
	from, to, next, aerr := page(req, len(kept), 1000)
	if aerr != nil {
		return nil, aerr
	}
	res := &describeSpotPriceHistoryResponse{NextToken: next}
	for _, sp := range kept[from:to] {
		res.History = append(res.History, xmlSpotPrice{InstanceType: sp.InstanceType, ProductDescription: sp.ProductDescription,
			SpotPrice: strconv.FormatFloat(sp.Price, 'f', 6, 64), Timestamp: sp.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"),
			AvailabilityZone: sp.Zone})
	}
	return res, nil
}
