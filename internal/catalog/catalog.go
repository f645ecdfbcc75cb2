package catalog

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Architectures, as written in the catalog and in filters.
const (
	ArchX86 = "x86_64"
	ArchARM = "arm64"
)

// Type is one instance type's hardware.
type Type struct {
	Cloud        string
	Name         string
	Family       string
	GPU          string  // normalised model name: H100, A100, A10G, ...
	GPUCount     int     // GPUs per instance
	GPUMemoryGiB float64 // per GPU
	VCPUs        int
	MemoryGiB    float64
	Arch         string // ArchX86 or ArchARM
	SpotDiscount float64
}

// offering is one instance type in one region: the unit the catalog stores.
type offering struct {
	typ      *Type
	region   string
	zones    []string
	onDemand float64
	estimate bool
	// spot is the known spot price (the lowest zone price when zoneSpot is
	// set); zero means estimate it from the type's spot discount.
	spot     float64
	zoneSpot map[string]float64
	live     bool // zones or spot prices came from live data
}

// Catalog answers questions about GPU offers. It is immutable: Refiner
// returns a new Catalog with live data merged in. Safe for concurrent use.
type Catalog struct {
	meta      Meta
	regions   map[string]map[string][]string // cloud -> region -> zones
	types     map[string]map[string]*Type    // cloud -> type name -> type
	offerings []offering                     // sorted by cloud, region, type
	warnings  []string
}

// Meta describes where the catalog's data comes from.
type Meta struct {
	AsOf     string
	Compiled string
	Sources  []string
	Notes    []string
}

// Embedded returns the catalog compiled into the binary.
func Embedded() (*Catalog, error) {
	f, err := Decode(embeddedJSON)
	if err != nil {
		return nil, fmt.Errorf("embedded catalog: %w", err)
	}
	return New(f), nil
}

// New builds a catalog from a decoded (validated) file.
func New(f *File) *Catalog {
	c := &Catalog{
		meta:    Meta{AsOf: f.AsOf, Compiled: f.Compiled, Sources: append([]string(nil), f.Sources...), Notes: append([]string(nil), f.Notes...)},
		regions: map[string]map[string][]string{},
		types:   map[string]map[string]*Type{},
	}
	for _, fc := range f.Clouds {
		regions := map[string][]string{}
		for _, r := range fc.Regions {
			regions[r.Name] = sortedCopy(r.Zones)
		}
		c.regions[fc.Name] = regions
		types := map[string]*Type{}
		for _, t := range fc.Types {
			types[t.Name] = &Type{
				Cloud: fc.Name, Name: t.Name, Family: t.Family, GPU: t.GPU, GPUCount: t.GPUCount,
				GPUMemoryGiB: t.GPUMemoryGiB, VCPUs: t.VCPUs, MemoryGiB: t.MemoryGiB, Arch: t.Arch,
				SpotDiscount: t.SpotDiscount,
			}
		}
		c.types[fc.Name] = types
		for _, p := range fc.Prices {
			c.offerings = append(c.offerings, offering{
				typ: types[p.Type], region: p.Region, zones: sortedCopy(p.Zones),
				onDemand: p.OnDemand, estimate: p.Estimate, spot: p.Spot,
			})
		}
	}
	sortOfferings(c.offerings)
	return c
}

func sortOfferings(os []offering) {
	sort.Slice(os, func(i, j int) bool {
		a, b := os[i], os[j]
		if a.typ.Cloud != b.typ.Cloud {
			return a.typ.Cloud < b.typ.Cloud
		}
		if a.region != b.region {
			return a.region < b.region
		}
		return a.typ.Name < b.typ.Name
	})
}

func sortedCopy(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

// Meta returns the data's provenance: price date, sources and notes.
func (c *Catalog) Meta() Meta { return c.meta }

// Warnings returns what went wrong while refining the catalog with live data
// (empty for the embedded catalog).
func (c *Catalog) Warnings() []string { return append([]string(nil), c.warnings...) }

// Clouds returns the clouds the catalog knows, sorted.
func (c *Catalog) Clouds() []string { return sortedKeys(c.regions) }

// Regions returns a cloud's regions, sorted; nil for an unknown cloud.
func (c *Catalog) Regions(cloud string) []string {
	r, ok := c.regions[strings.ToLower(cloud)]
	if !ok {
		return nil
	}
	return sortedKeys(r)
}

// ZonesFor returns the zones of a region, sorted. ok is false when the cloud
// or region is not in the catalog.
func (c *Catalog) ZonesFor(cloud, region string) (zones []string, ok bool) {
	z, ok := c.regions[strings.ToLower(cloud)][region]
	return append([]string(nil), z...), ok
}

// ValidateZone returns nil when zone belongs to region, otherwise an error
// that lists the region's zones.
func (c *Catalog) ValidateZone(cloud, region, zone string) error {
	cloud = strings.ToLower(strings.TrimSpace(cloud))
	if err := c.validateRegion(cloud, region); err != nil {
		return err
	}
	zones, _ := c.ZonesFor(cloud, region)
	for _, z := range zones {
		if z == zone {
			return nil
		}
	}
	return fmt.Errorf("zone %q is not in %s region %s (zones: %s)", zone, cloud, region, strings.Join(zones, ", "))
}

func (c *Catalog) validateCloud(cloud string) error {
	if _, ok := c.regions[cloud]; !ok {
		return fmt.Errorf("unknown cloud %q (known: %s)", cloud, strings.Join(c.Clouds(), ", "))
	}
	return nil
}

func (c *Catalog) validateRegion(cloud, region string) error {
	if err := c.validateCloud(cloud); err != nil {
		return err
	}
	if _, ok := c.regions[cloud][region]; !ok {
		return fmt.Errorf("region %q is not in the %s catalog (regions: %s)", region, cloud, strings.Join(c.Regions(cloud), ", "))
	}
	return nil
}

// Lookup returns an instance type's hardware.
func (c *Catalog) Lookup(cloud, instanceType string) (Type, bool) {
	t, ok := c.types[strings.ToLower(cloud)][instanceType]
	if !ok {
		return Type{}, false
	}
	return *t, true
}

// Types returns every instance type of a cloud, sorted by name.
func (c *Catalog) Types(cloud string) []Type {
	m := c.types[strings.ToLower(cloud)]
	out := make([]Type, 0, len(m))
	for _, name := range sortedKeys(m) {
		out = append(out, *m[name])
	}
	return out
}

// Offer returns the offer for one instance type in one region and market;
// ok is false when the catalog has no price for it there.
func (c *Catalog) Offer(cloud, region, instanceType string, spot bool) (Offer, bool) {
	cloud = strings.ToLower(cloud)
	for i := range c.offerings {
		o := &c.offerings[i]
		if o.typ.Cloud == cloud && o.region == region && o.typ.Name == instanceType {
			return o.offer(spot), true
		}
	}
	return Offer{}, false
}

// Price returns the hourly USD price of an instance type in a region, spot
// or on-demand; ok is false when the catalog has no price for it there.
func (c *Catalog) Price(cloud, region, instanceType string, spot bool) (price float64, ok bool) {
	o, ok := c.Offer(cloud, region, instanceType, spot)
	return o.HourlyPrice, ok
}

// Offer is one instance type in one region, on one market, with its price.
type Offer struct {
	Cloud        string
	Region       string
	Zones        []string // where the type is offered, sorted
	InstanceType string
	GPU          string
	GPUCount     int
	GPUMemoryGiB float64 // per GPU
	VCPUs        int
	MemoryGiB    float64
	Arch         string
	Spot         bool
	// HourlyPrice is USD per hour: the on-demand price, or for a spot offer
	// the known or estimated spot price (the lowest zone's when zone prices
	// are known).
	HourlyPrice float64
	// ZonePrices holds per-zone spot prices when live data gave them.
	ZonePrices map[string]float64
	// Estimated is true when HourlyPrice is an approximation: an estimated
	// list price or a spot price derived from the usual discount.
	Estimated bool
	// Live is true when live cloud data refined the zones or price.
	Live bool
}

// TotalGPUMemoryGiB is the memory of all the offer's GPUs together.
func (o Offer) TotalGPUMemoryGiB() float64 { return o.GPUMemoryGiB * float64(o.GPUCount) }

// String renders an offer for messages: "aws us-east-1 g5.xlarge (1x A10G, on-demand, $1.006/h)".
func (o Offer) String() string {
	market := "on-demand"
	if o.Spot {
		market = "spot"
	}
	return fmt.Sprintf("%s %s %s (%dx %s, %s, %s)", o.Cloud, o.Region, o.InstanceType, o.GPUCount, o.GPU, market, FormatPrice(o.HourlyPrice))
}

// FormatPrice renders a USD hourly price the way the catalog's messages do:
// "$1.006/h", "$45.20/h", at most four decimals and at least two.
func FormatPrice(p float64) string {
	s := strconv.FormatFloat(roundPrice(p), 'f', 4, 64)
	for strings.HasSuffix(s, "0") && len(s)-strings.IndexByte(s, '.') > 3 {
		s = s[:len(s)-1]
	}
	return "$" + s + "/h"
}

// zonePrice is the price of an offer in one zone.
func (o Offer) zonePrice(zone string) float64 {
	if p, ok := o.ZonePrices[zone]; ok {
		return p
	}
	return o.HourlyPrice
}

func (of *offering) offer(spot bool) Offer {
	t := of.typ
	o := Offer{
		Cloud: t.Cloud, Region: of.region, Zones: append([]string(nil), of.zones...), InstanceType: t.Name,
		GPU: t.GPU, GPUCount: t.GPUCount, GPUMemoryGiB: t.GPUMemoryGiB, VCPUs: t.VCPUs, MemoryGiB: t.MemoryGiB,
		Arch: t.Arch, Spot: spot, HourlyPrice: of.onDemand, Estimated: of.estimate, Live: of.live,
	}
	if spot {
		switch {
		case of.spot > 0:
			o.HourlyPrice = of.spot
			o.Estimated = false
			if len(of.zoneSpot) > 0 {
				o.ZonePrices = map[string]float64{}
				for z, p := range of.zoneSpot {
					o.ZonePrices[z] = p
				}
			}
		default:
			o.HourlyPrice = roundPrice(of.onDemand * (1 - t.SpotDiscount))
			o.Estimated = true
		}
	}
	return o
}

func roundPrice(p float64) float64 { return math.Round(p*1e4) / 1e4 }
