package catalog

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// Defaults for Request.
const (
	// DefaultMaxCandidates bounds the resolved list so that a plan stays
	// readable and a failing apply does not try for ever.
	DefaultMaxCandidates = 16
	// DefaultTypesPerRegion is how many instance types (cheapest first) of
	// one region are tried before moving to the next region. Sizes of one
	// family usually share capacity, so the default moves on to other zones
	// and regions rather than to a bigger size.
	DefaultTypesPerRegion = 1
)

// Placement is one entry of an explicit candidate list: where the user allows
// an instance to land. Cloud is required; an empty Region, Zone or
// InstanceType lets the catalog choose (cheapest first).
type Placement struct {
	Cloud        string
	Region       string
	Zone         string
	InstanceType string
}

// String renders the placement's set fields, e.g. "aws us-east-1".
func (p Placement) String() string {
	var parts []string
	for _, s := range []string{p.Cloud, p.Region, p.Zone, p.InstanceType} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// Request asks for an ordered list of launch candidates.
type Request struct {
	// Filter holds the requirements (GPU, memory, architecture, market,
	// price ceiling) and, without Placements, the clouds and regions allowed.
	Filter Filter
	// Placements, when set, are tried in the order written; each one is
	// narrowed by Filter.
	Placements []Placement
	// MaxCandidates bounds the result; 0 means DefaultMaxCandidates.
	MaxCandidates int
	// TypesPerRegion is how many offers (instance type and market) of one
	// region are tried before the next region; 0 means DefaultTypesPerRegion.
	TypesPerRegion int
}

// Candidate is one place an instance may land, with its price: a
// cloud.Candidate plus the cloud and what the catalog knows.
type Candidate struct {
	Cloud        string
	Region       string
	Zone         string
	InstanceType string
	Spot         bool
	HourlyPrice  float64 // USD/h
	Estimated    bool    // HourlyPrice is an approximation
	GPU          string
	GPUCount     int
}

// CloudCandidate converts to the backend's candidate type.
func (c Candidate) CloudCandidate() cloud.Candidate {
	return cloud.Candidate{Region: c.Region, Zone: c.Zone, InstanceType: c.InstanceType, Spot: c.Spot, HourlyPrice: c.HourlyPrice}
}

// String renders a candidate for plans and messages:
// "aws us-east-1a g5.xlarge (on-demand, $1.006/h)".
func (c Candidate) String() string {
	market := "on-demand"
	if c.Spot {
		market = "spot"
	}
	return fmt.Sprintf("%s %s %s (%s, %s)", c.Cloud, c.Zone, c.InstanceType, market, FormatPrice(c.HourlyPrice))
}

// Candidates resolves requirements to an ordered candidate list.
//
// Without placements the order is zone, then region, then cloud: the
// cheapest offer in each of its zones, then the region's next offers (up to
// TypesPerRegion), then the next region of the same cloud (regions ordered by
// their cheapest offer), then the other clouds (ordered by their cheapest
// offer). With placements, each placement is expanded the same way and the
// placements keep the order written. MaxCandidates is shared fairly between
// the clouds (or placements), so that every cloud keeps its best candidates
// when the list is cut. The result is deterministic; a candidate never
// appears twice.
func (c *Catalog) Candidates(req Request) ([]Candidate, error) {
	maxN := req.MaxCandidates
	if maxN <= 0 {
		maxN = DefaultMaxCandidates
	}
	perRegion := req.TypesPerRegion
	if perRegion <= 0 {
		perRegion = DefaultTypesPerRegion
	}
	// Groups are the clouds (without placements) or the placements; the
	// bound is shared fairly between them so that a cloud or placement with
	// many zones does not crowd out the fallbacks after it.
	var groups [][]Candidate
	if len(req.Placements) == 0 {
		offers, err := c.Query(req.Filter)
		if err != nil {
			return nil, err
		}
		all := expand(offers, perRegion, "")
		for i, cand := range all {
			if i == 0 || all[i-1].Cloud != cand.Cloud {
				groups = append(groups, nil)
			}
			groups[len(groups)-1] = append(groups[len(groups)-1], cand)
		}
	} else {
		seen := map[Candidate]bool{}
		for i, p := range req.Placements {
			cs, err := c.placementCandidates(req.Filter, p, perRegion)
			if err != nil {
				return nil, fmt.Errorf("candidate %d (%s): %w", i+1, p, err)
			}
			var group []Candidate
			for _, cand := range cs {
				key := cand
				key.HourlyPrice, key.Estimated = 0, false
				if !seen[key] {
					seen[key] = true
					group = append(group, cand)
				}
			}
			groups = append(groups, group)
		}
	}
	return fairTruncate(groups, maxN), nil
}

// fairTruncate keeps at most maxN candidates, in group order: each group
// first gets an equal share (maxN divided by the number of groups), and the
// slots a short group leaves unused go to the groups in order.
func fairTruncate(groups [][]Candidate, maxN int) []Candidate {
	total := 0
	for _, g := range groups {
		total += len(g)
	}
	take := make([]int, len(groups))
	if total <= maxN {
		for i, g := range groups {
			take[i] = len(g)
		}
	} else {
		share := maxN / len(groups)
		left := maxN
		for i, g := range groups {
			take[i] = min(len(g), share)
			left -= take[i]
		}
		for i, g := range groups {
			more := min(len(g)-take[i], left)
			take[i] += more
			left -= more
		}
	}
	var out []Candidate
	for i, g := range groups {
		out = append(out, g[:take[i]]...)
	}
	return out
}

func (c *Catalog) placementCandidates(f Filter, p Placement, perRegion int) ([]Candidate, error) {
	p.Cloud = strings.ToLower(strings.TrimSpace(p.Cloud))
	if p.Cloud == "" {
		return nil, fmt.Errorf("cloud is required (one of %s)", strings.Join(c.Clouds(), ", "))
	}
	if err := c.validateCloud(p.Cloud); err != nil {
		return nil, err
	}
	if p.Zone != "" && p.Region == "" {
		return nil, fmt.Errorf("zone %s given without its region", p.Zone)
	}
	if p.Region != "" {
		if err := c.validateRegion(p.Cloud, p.Region); err != nil {
			return nil, err
		}
	}
	if p.Zone != "" {
		if err := c.ValidateZone(p.Cloud, p.Region, p.Zone); err != nil {
			return nil, err
		}
	}
	if p.InstanceType != "" {
		t, ok := c.Lookup(p.Cloud, p.InstanceType)
		if !ok {
			return nil, fmt.Errorf("instance type %s is not in the %s catalog", p.InstanceType, p.Cloud)
		}
		if !f.GPU.IsZero() && !f.GPU.Matches(t) {
			return nil, fmt.Errorf("instance type %s has %dx %s %s GiB, which does not satisfy gpu %s", t.Name, t.GPUCount, t.GPU, num(t.GPUMemoryGiB), f.GPU)
		}
		if p.Region != "" {
			if _, ok := c.Offer(p.Cloud, p.Region, t.Name, false); !ok {
				return nil, fmt.Errorf("instance type %s is not offered in %s (offered in: %s)", t.Name, p.Region, strings.Join(c.regionsOffering(p.Cloud, t.Name), ", "))
			}
		}
	}
	f.Clouds = []string{p.Cloud}
	if p.Region != "" {
		f.Regions = []string{p.Region}
	}
	offers, err := c.Query(f)
	if err != nil {
		return nil, err
	}
	if p.InstanceType != "" {
		kept := offers[:0:0]
		for _, o := range offers {
			if o.InstanceType == p.InstanceType {
				kept = append(kept, o)
			}
		}
		if len(kept) == 0 {
			return nil, fmt.Errorf("no offer of %s matches the requirements (%d other offers do)", p.InstanceType, len(offers))
		}
		offers = kept
	}
	if p.Zone != "" {
		// Prefer the offers the catalog lists in that zone; when none is
		// listed there, trust the user's zone (the static zone table is an
		// approximation) and let the cloud decide.
		var inZone []Offer
		for _, o := range offers {
			for _, z := range o.Zones {
				if z == p.Zone {
					inZone = append(inZone, o)
					break
				}
			}
		}
		if len(inZone) > 0 {
			offers = inZone
		}
	}
	return expand(offers, perRegion, p.Zone), nil
}

func (c *Catalog) regionsOffering(cloud, instanceType string) []string {
	var rs []string
	for i := range c.offerings {
		o := &c.offerings[i]
		if o.typ.Cloud == cloud && o.typ.Name == instanceType {
			rs = append(rs, o.region)
		}
	}
	return rs
}

// expand turns price-sorted offers into zone -> region -> cloud ordered
// candidates, keeping perRegion offers per region. A non-empty onlyZone
// replaces each offer's zones.
func expand(offers []Offer, perRegion int, onlyZone string) []Candidate {
	type region struct {
		cloud, name string
		offers      []Offer
	}
	var clouds []string
	regionsOf := map[string][]*region{}
	byKey := map[string]*region{}
	for _, o := range offers {
		if _, ok := regionsOf[o.Cloud]; !ok {
			clouds = append(clouds, o.Cloud)
			regionsOf[o.Cloud] = nil
		}
		key := o.Cloud + "\x00" + o.Region
		r, ok := byKey[key]
		if !ok {
			r = &region{cloud: o.Cloud, name: o.Region}
			byKey[key] = r
			regionsOf[o.Cloud] = append(regionsOf[o.Cloud], r)
		}
		if len(r.offers) < perRegion {
			r.offers = append(r.offers, o)
		}
	}
	var out []Candidate
	for _, cl := range clouds {
		for _, r := range regionsOf[cl] {
			for _, o := range r.offers {
				zones := o.Zones
				if onlyZone != "" {
					zones = []string{onlyZone}
				}
				zones = append([]string(nil), zones...)
				sort.SliceStable(zones, func(i, j int) bool {
					pi, pj := o.zonePrice(zones[i]), o.zonePrice(zones[j])
					if pi != pj {
						return pi < pj
					}
					return zones[i] < zones[j]
				})
				for _, z := range zones {
					out = append(out, Candidate{
						Cloud: o.Cloud, Region: o.Region, Zone: z, InstanceType: o.InstanceType, Spot: o.Spot,
						HourlyPrice: o.zonePrice(z), Estimated: o.Estimated, GPU: o.GPU, GPUCount: o.GPUCount,
					})
				}
			}
		}
	}
	return out
}

// ResolveGPU returns the cheapest on-demand instance type of a cloud and
// region that satisfies a GPU requirement such as "A10G:1": what a gpu block
// with a fixed placement resolves to.
func (c *Catalog) ResolveGPU(cloud, region, gpuSpec string) (instanceType string, err error) {
	spec, err := ParseGPU(gpuSpec)
	if err != nil {
		return "", err
	}
	cloud = strings.ToLower(strings.TrimSpace(cloud))
	if err := c.validateRegion(cloud, region); err != nil {
		return "", err
	}
	offers, err := c.Query(Filter{GPU: spec, Clouds: []string{cloud}, Regions: []string{region}})
	if err != nil {
		return "", fmt.Errorf("resolving gpu %s in %s %s: %w", spec, cloud, region, err)
	}
	return offers[0].InstanceType, nil
}
