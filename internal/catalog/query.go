package catalog

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Market selects on-demand offers, spot offers or both.
type Market int

// Markets. The zero value is OnDemand: spot is opt-in.
const (
	OnDemand Market = iota
	Spot
	AnyMarket
)

// String returns "on-demand", "spot" or "any".
func (m Market) String() string {
	switch m {
	case Spot:
		return "spot"
	case AnyMarket:
		return "any"
	default:
		return "on-demand"
	}
}

// ParseMarket reads the data source's spot filter: "true" or "spot", "false"
// or "on-demand", "any" (case-insensitive).
func ParseMarket(s string) (Market, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "false", "on-demand", "on_demand", "ondemand":
		return OnDemand, nil
	case "true", "spot":
		return Spot, nil
	case "any":
		return AnyMarket, nil
	}
	return OnDemand, fmt.Errorf("spot %q: want true, false or any", s)
}

// ParseArch normalises an architecture name: x86_64 (amd64, x86-64) or arm64
// (aarch64).
func ParseArch(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "x86_64", "amd64", "x86-64", "x86":
		return ArchX86, nil
	case "arm64", "aarch64", "arm":
		return ArchARM, nil
	}
	return "", fmt.Errorf("architecture %q: want %s or %s", s, ArchX86, ArchARM)
}

// Filter narrows the catalog's offers. The zero value matches every
// on-demand offer.
type Filter struct {
	GPU             GPUSpec
	MinGPUMemoryGiB float64  // per GPU; 0 means any
	Clouds          []string // empty means all
	Regions         []string // empty means all
	Market          Market
	MaxHourlyPrice  float64 // USD/h; 0 means no limit
	Arch            string  // ArchX86, ArchARM or empty for any
}

// NoMatchError says which filter emptied the list of offers, how many offers
// matched the filters before it, and what was available instead.
type NoMatchError struct {
	// Filter names the filter that removed the last offers: "gpu",
	// "gpu_count", "min_gpu_memory", "arch", "clouds", "regions", "spot" or
	// "max_hourly_price".
	Filter string
	// Matched counts the offers (instance type and region pairs) matching
	// the filters before Filter; Matching describes those filters.
	Matched  int
	Matching string
	// Want describes what Filter asked for, e.g. "in region eu-west-1".
	Want string
	// Available lists what the Matched offers have instead.
	Available []string
}

// Error renders e.g. "no offer matches: 4 offers with H100:8, none in region
// cn-hangzhou (available: ap-northeast-1, us-east-1, us-east-2, us-west-2)".
func (e *NoMatchError) Error() string {
	avail := ""
	if len(e.Available) > 0 {
		avail = " (available: " + strings.Join(e.Available, ", ") + ")"
	}
	if e.Matching == "" {
		return fmt.Sprintf("no offer matches: no instance type %s%s", e.Want, avail)
	}
	noun := "offers"
	if e.Matched == 1 {
		noun = "offer"
	}
	return fmt.Sprintf("no offer matches: %d %s %s, none %s%s", e.Matched, noun, e.Matching, e.Want, avail)
}

// candidateRow is one offer under consideration while filtering.
type candidateRow struct {
	of   *offering
	spot bool
}

// stage is one filter step of Query, applied in a fixed order so that the
// error names the first filter that leaves nothing.
type stage struct {
	name    string
	keep    func(candidateRow) bool
	matched string // fragment describing the rows kept, e.g. "in us-east-1"
	want    string // fragment for the error, e.g. "in region eu-west-1"
	avail   func(rows []candidateRow) []string
	// replaces drops the previous fragment (the count stage restates the
	// whole GPU spec).
	replaces bool
}

// Query returns the offers matching f, cheapest first. Ties are broken by
// cloud, region, instance type and market (on-demand first), so the order is
// deterministic. When nothing matches, the error is a *NoMatchError naming
// the filter that emptied the list.
func (c *Catalog) Query(f Filter) ([]Offer, error) {
	stages, err := c.stages(f)
	if err != nil {
		return nil, err
	}
	rows := make([]candidateRow, 0, 2*len(c.offerings))
	for i := range c.offerings {
		rows = append(rows, candidateRow{of: &c.offerings[i], spot: false})
		rows = append(rows, candidateRow{of: &c.offerings[i], spot: true})
	}
	var fragments []string
	for _, s := range stages {
		var kept []candidateRow
		for _, r := range rows {
			if s.keep(r) {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			return nil, &NoMatchError{
				Filter: s.name, Matched: countPairs(rows), Matching: strings.Join(fragments, " "),
				Want: s.want, Available: s.avail(rows),
			}
		}
		if s.replaces && len(fragments) > 0 {
			fragments = fragments[:len(fragments)-1]
		}
		if s.matched != "" {
			fragments = append(fragments, s.matched)
		}
		rows = kept
	}
	offers := make([]Offer, len(rows))
	for i, r := range rows {
		offers[i] = r.of.offer(r.spot)
	}
	SortOffers(offers)
	return offers, nil
}

// SortOffers orders offers by price, then cloud, region, instance type and
// market (on-demand first).
func SortOffers(offers []Offer) {
	sort.SliceStable(offers, func(i, j int) bool { return offerLess(offers[i], offers[j]) })
}

func offerLess(a, b Offer) bool {
	if a.HourlyPrice != b.HourlyPrice {
		return a.HourlyPrice < b.HourlyPrice
	}
	if a.Cloud != b.Cloud {
		return a.Cloud < b.Cloud
	}
	if a.Region != b.Region {
		return a.Region < b.Region
	}
	if a.InstanceType != b.InstanceType {
		return a.InstanceType < b.InstanceType
	}
	return !a.Spot && b.Spot
}

// countPairs counts distinct instance type and region pairs.
func countPairs(rows []candidateRow) int {
	seen := map[*offering]bool{}
	for _, r := range rows {
		seen[r.of] = true
	}
	return len(seen)
}

func (c *Catalog) stages(f Filter) ([]stage, error) {
	var st []stage
	distinct := func(rows []candidateRow, key func(candidateRow) string) []string {
		m := map[string]bool{}
		for _, r := range rows {
			m[key(r)] = true
		}
		return sortedKeys(m)
	}
	if len(f.GPU.Choices) > 0 {
		spec := f.GPU
		st = append(st, stage{
			name:    "gpu",
			keep:    func(r candidateRow) bool { return spec.matchesModel(*r.of.typ) },
			matched: "with " + spec.models(),
			want:    "has GPU " + spec.models(),
			avail: func(rows []candidateRow) []string {
				return distinct(rows, func(r candidateRow) string { return r.of.typ.GPU })
			},
		})
	}
	if f.GPU.Count > 0 {
		spec := f.GPU
		st = append(st, stage{
			name:     "gpu_count",
			keep:     func(r candidateRow) bool { return r.of.typ.GPUCount == spec.Count },
			matched:  "with " + spec.String(),
			want:     fmt.Sprintf("with %d GPUs", spec.Count),
			replaces: len(spec.Choices) > 0,
			avail: func(rows []candidateRow) []string {
				counts := map[int]bool{}
				for _, r := range rows {
					counts[r.of.typ.GPUCount] = true
				}
				var ns []int
				for n := range counts {
					ns = append(ns, n)
				}
				sort.Ints(ns)
				out := make([]string, len(ns))
				for i, n := range ns {
					out[i] = strconv.Itoa(n)
				}
				return out
			},
		})
	}
	if f.MinGPUMemoryGiB < 0 || math.IsNaN(f.MinGPUMemoryGiB) {
		return nil, fmt.Errorf("min GPU memory %v must not be negative", f.MinGPUMemoryGiB)
	}
	if f.MinGPUMemoryGiB > 0 {
		min := f.MinGPUMemoryGiB
		st = append(st, stage{
			name:    "min_gpu_memory",
			keep:    func(r candidateRow) bool { return r.of.typ.GPUMemoryGiB >= min },
			matched: fmt.Sprintf("with at least %s GiB per GPU", num(min)),
			want:    fmt.Sprintf("with at least %s GiB per GPU", num(min)),
			avail: func(rows []candidateRow) []string {
				return distinct(rows, func(r candidateRow) string {
					return fmt.Sprintf("%s %s GiB", r.of.typ.GPU, num(r.of.typ.GPUMemoryGiB))
				})
			},
		})
	}
	if f.Arch != "" {
		arch, err := ParseArch(f.Arch)
		if err != nil {
			return nil, err
		}
		st = append(st, stage{
			name:    "arch",
			keep:    func(r candidateRow) bool { return r.of.typ.Arch == arch },
			matched: "on " + arch,
			want:    "on " + arch,
			avail: func(rows []candidateRow) []string {
				return distinct(rows, func(r candidateRow) string { return r.of.typ.Arch })
			},
		})
	}
	if len(f.Clouds) > 0 {
		clouds := map[string]bool{}
		for _, cl := range f.Clouds {
			cl = strings.ToLower(strings.TrimSpace(cl))
			if err := c.validateCloud(cl); err != nil {
				return nil, err
			}
			clouds[cl] = true
		}
		list := strings.Join(sortedKeys(clouds), ", ")
		st = append(st, stage{
			name:    "clouds",
			keep:    func(r candidateRow) bool { return clouds[r.of.typ.Cloud] },
			matched: "on " + list,
			want:    "on " + list,
			avail: func(rows []candidateRow) []string {
				return distinct(rows, func(r candidateRow) string { return r.of.typ.Cloud })
			},
		})
	}
	if len(f.Regions) > 0 {
		regions := map[string]bool{}
		for _, r := range f.Regions {
			regions[strings.TrimSpace(r)] = true
		}
		list := strings.Join(sortedKeys(regions), ", ")
		noun := "region"
		if len(regions) > 1 {
			noun = "regions"
		}
		st = append(st, stage{
			name:    "regions",
			keep:    func(r candidateRow) bool { return regions[r.of.region] },
			matched: "in " + list,
			want:    "in " + noun + " " + list,
			avail: func(rows []candidateRow) []string {
				return distinct(rows, func(r candidateRow) string { return r.of.region })
			},
		})
	}
	market := f.Market
	marketWant := map[Market]string{OnDemand: "on-demand", Spot: "on the spot market", AnyMarket: "on any market"}[market]
	st = append(st, stage{
		name: "spot",
		keep: func(r candidateRow) bool {
			switch market {
			case Spot:
				return r.spot
			case AnyMarket:
				return true
			default:
				return !r.spot
			}
		},
		want: marketWant,
		avail: func(rows []candidateRow) []string {
			return distinct(rows, func(r candidateRow) string { return map[bool]string{false: "on-demand", true: "spot"}[r.spot] })
		},
	})
	if f.MaxHourlyPrice < 0 || math.IsNaN(f.MaxHourlyPrice) {
		return nil, fmt.Errorf("max hourly price %v must not be negative", f.MaxHourlyPrice)
	}
	if f.MaxHourlyPrice > 0 {
		max := f.MaxHourlyPrice
		st = append(st, stage{
			name: "max_hourly_price",
			keep: func(r candidateRow) bool { return r.of.offer(r.spot).HourlyPrice <= max },
			want: "at or under " + FormatPrice(max),
			avail: func(rows []candidateRow) []string {
				offers := make([]Offer, len(rows))
				for i, r := range rows {
					offers[i] = r.of.offer(r.spot)
				}
				SortOffers(offers)
				return []string{"cheapest " + offers[0].String()}
			},
		})
	}
	return st, nil
}

// num formats a float without trailing zeros.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
