package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Live is what a cloud backend can say about its offers right now. A backend
// implements it with the cloud's APIs: on AWS DescribeInstanceTypeOfferings
// (location type availability-zone) and DescribeSpotPriceHistory; on Alibaba
// Cloud DescribeAvailableResource (zones with stock) and
// DescribeSpotPriceHistory or DescribePrice. Implementations must honour ctx
// and be safe for concurrent use.
type Live interface {
	// Offerings returns, for the given instance types, the zones of region
	// where each can be launched now. A type missing from the map (or mapped
	// to no zones) is not offered in the region now.
	Offerings(ctx context.Context, region string, instanceTypes []string) (map[string][]string, error)
	// SpotPrices returns current spot prices (USD/h) of the given instance
	// types in the region's zones. Types or zones without a price are left
	// out.
	SpotPrices(ctx context.Context, region string, instanceTypes []string) ([]SpotPrice, error)
}

// SpotPrice is one current spot price.
type SpotPrice struct {
	InstanceType string
	Zone         string
	Price        float64 // USD/h
}

// ErrLiveUnsupported is returned (wrapped) by a Live method the cloud cannot
// answer; the Refiner then keeps the embedded data without a warning.
var ErrLiveUnsupported = errors.New("live lookup not supported")

// Refiner defaults.
const (
	DefaultLiveTimeout     = 15 * time.Second
	DefaultLiveConcurrency = 4
)

// RefinerOptions tune a Refiner. The zero value uses the defaults.
type RefinerOptions struct {
	// Timeout bounds the live lookups of one region; 0 means
	// DefaultLiveTimeout.
	Timeout time.Duration
	// TTL is how long a region's live data is reused; 0 means for the
	// Refiner's life (one provider run).
	TTL time.Duration
	// Concurrency bounds the regions looked up at once; 0 means
	// DefaultLiveConcurrency.
	Concurrency int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Refiner merges live data over a base catalog, caching each region's
// answers. Safe for concurrent use; create one per provider run.
type Refiner struct {
	base *Catalog
	live map[string]Live
	opts RefinerOptions
	sem  chan struct{}

	mu    sync.Mutex
	cache map[string]*liveEntry
}

type liveEntry struct {
	done chan struct{} // closed when the fields below are set
	at   time.Time

	offerings    map[string][]string
	offeringsErr error
	spot         []SpotPrice
	spotErr      error
}

// NewRefiner returns a Refiner over base. live maps a cloud name ("aws",
// "aliyun") to its Live; clouds without one keep their embedded data.
func NewRefiner(base *Catalog, live map[string]Live, opts RefinerOptions) *Refiner {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultLiveTimeout
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultLiveConcurrency
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := map[string]Live{}
	for k, v := range live {
		if v != nil {
			l[strings.ToLower(k)] = v
		}
	}
	return &Refiner{base: base, live: l, opts: opts, sem: make(chan struct{}, opts.Concurrency), cache: map[string]*liveEntry{}}
}

// Catalog returns the base catalog refined with live data for the given
// clouds and regions (empty means all regions of all clouds that have a
// Live). It always answers: a lookup that fails or runs past the timeout
// leaves that region's embedded data in place, and the returned catalog's
// Warnings say so.
func (r *Refiner) Catalog(ctx context.Context, clouds, regions []string) *Catalog {
	type job struct{ cloud, region string }
	var jobs []job
	wantCloud := set(clouds, strings.ToLower)
	wantRegion := set(regions, nil)
	for _, cl := range sortedKeys(r.live) {
		if len(wantCloud) > 0 && !wantCloud[cl] {
			continue
		}
		for _, rg := range r.base.Regions(cl) {
			if len(wantRegion) > 0 && !wantRegion[rg] {
				continue
			}
			jobs = append(jobs, job{cl, rg})
		}
	}
	entries := make([]*liveEntry, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries[i] = r.entry(ctx, j.cloud, j.region)
		}()
	}
	wg.Wait()

	out := r.base.clone()
	for i, j := range jobs {
		out.merge(j.cloud, j.region, entries[i])
	}
	return out
}

func set(items []string, norm func(string) string) map[string]bool {
	m := map[string]bool{}
	for _, s := range items {
		s = strings.TrimSpace(s)
		if norm != nil {
			s = norm(s)
		}
		m[s] = true
	}
	return m
}

// entry returns the region's cached live data, fetching it once. A caller
// whose ctx ends first gets an entry carrying ctx's error, and the fetch
// goes on for later callers.
func (r *Refiner) entry(ctx context.Context, cloud, region string) *liveEntry {
	key := cloud + "\x00" + region
	r.mu.Lock()
	e, ok := r.cache[key]
	if ok {
		select {
		case <-e.done:
			if r.opts.TTL > 0 && r.opts.Now().Sub(e.at) > r.opts.TTL {
				ok = false
			}
		default:
		}
	}
	if !ok {
		e = &liveEntry{done: make(chan struct{})}
		r.cache[key] = e
		go r.fetch(context.WithoutCancel(ctx), cloud, region, e)
	}
	r.mu.Unlock()
	select {
	case <-e.done:
		return e
	case <-ctx.Done():
		err := fmt.Errorf("waiting for live data: %w", ctx.Err())
		return &liveEntry{offeringsErr: err, spotErr: err}
	}
}

func (r *Refiner) fetch(parent context.Context, cloud, region string, e *liveEntry) {
	defer close(e.done)
	r.sem <- struct{}{}
	defer func() { <-r.sem }()
	ctx, cancel := context.WithTimeout(parent, r.opts.Timeout)
	defer cancel()
	types := r.base.typesIn(cloud, region)
	live := r.live[cloud]
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.offerings, e.offeringsErr = live.Offerings(ctx, region, types)
	}()
	go func() {
		defer wg.Done()
		e.spot, e.spotErr = live.SpotPrices(ctx, region, types)
	}()
	wg.Wait()
	e.at = r.opts.Now()
}

// typesIn returns the instance types the catalog prices in a region, sorted.
func (c *Catalog) typesIn(cloud, region string) []string {
	var ts []string
	for i := range c.offerings {
		o := &c.offerings[i]
		if o.typ.Cloud == cloud && o.region == region {
			ts = append(ts, o.typ.Name)
		}
	}
	sort.Strings(ts)
	return ts
}

// clone copies the catalog deeply enough for merge to change offerings,
// zones and warnings without touching the original.
func (c *Catalog) clone() *Catalog {
	out := &Catalog{
		meta:      c.meta,
		regions:   map[string]map[string][]string{},
		types:     c.types, // immutable
		offerings: append([]offering(nil), c.offerings...),
		warnings:  append([]string(nil), c.warnings...),
	}
	for cl, rs := range c.regions {
		m := map[string][]string{}
		for rg, zs := range rs {
			m[rg] = zs
		}
		out.regions[cl] = m
	}
	return out
}

// merge applies one region's live data.
func (c *Catalog) merge(cloud, region string, e *liveEntry) {
	where := cloud + " " + region
	if e.offeringsErr != nil && !errors.Is(e.offeringsErr, ErrLiveUnsupported) {
		c.warnings = append(c.warnings, fmt.Sprintf("%s: live zone lookup failed, using the embedded catalog (prices as of %s): %v", where, c.meta.AsOf, e.offeringsErr))
	}
	if e.spotErr != nil && !errors.Is(e.spotErr, ErrLiveUnsupported) {
		c.warnings = append(c.warnings, fmt.Sprintf("%s: live spot price lookup failed, using estimated spot prices: %v", where, e.spotErr))
	}
	spotByType := map[string]map[string]float64{}
	if e.spotErr == nil {
		for _, sp := range e.spot {
			if !positive(sp.Price) || sp.Zone == "" {
				continue
			}
			if spotByType[sp.InstanceType] == nil {
				spotByType[sp.InstanceType] = map[string]float64{}
			}
			if old, ok := spotByType[sp.InstanceType][sp.Zone]; !ok || sp.Price < old {
				spotByType[sp.InstanceType][sp.Zone] = sp.Price
			}
		}
	}
	regionZones := set(c.regions[cloud][region], nil)
	kept := c.offerings[:0:0]
	for _, o := range c.offerings {
		if o.typ.Cloud != cloud || o.region != region {
			kept = append(kept, o)
			continue
		}
		if e.offeringsErr == nil {
			zones := e.offerings[o.typ.Name]
			if len(zones) == 0 {
				continue // not offered in this region now
			}
			o.zones = sortedCopy(zones)
			o.live = true
			for _, z := range zones {
				regionZones[z] = true
			}
		}
		if zp := spotByType[o.typ.Name]; len(zp) > 0 {
			zoneSpot := map[string]float64{}
			lowest := 0.0
			for _, z := range o.zones {
				if p, ok := zp[z]; ok {
					zoneSpot[z] = p
					if lowest == 0 || p < lowest {
						lowest = p
					}
				}
			}
			if lowest > 0 {
				o.spot, o.zoneSpot, o.live = lowest, zoneSpot, true
			}
		}
		kept = append(kept, o)
	}
	c.offerings = kept
	c.regions[cloud][region] = sortedKeys(regionZones)
}
