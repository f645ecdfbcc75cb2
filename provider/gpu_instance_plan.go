package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/aliyun"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/aws"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/local"
)

var candidateType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"cloud":         types.StringType,
	"region":        types.StringType,
	"zone":          types.StringType,
	"instance_type": types.StringType,
	"spot":          types.BoolType,
	"hourly_price":  types.Float64Type,
}}

type placementModel struct {
	Cloud        types.String `tfsdk:"cloud"`
	Region       types.String `tfsdk:"region"`
	Zone         types.String `tfsdk:"zone"`
	InstanceType types.String `tfsdk:"instance_type"`
}

// placementCandidate is one resolved candidate, as stored in state.
type placementCandidate struct {
	Cloud        string
	Region       string
	Zone         string
	InstanceType string
	Spot         bool
	HourlyPrice  float64
}

func (c placementCandidate) cloudCandidate() cloud.Candidate {
	return cloud.Candidate{Region: c.Region, Zone: c.Zone, InstanceType: c.InstanceType, Spot: c.Spot, HourlyPrice: c.HourlyPrice}
}

func candidatesValue(cs []placementCandidate) types.List {
	elems := make([]attr.Value, len(cs))
	for i, c := range cs {
		elems[i] = types.ObjectValueMust(candidateType.AttrTypes, map[string]attr.Value{
			"cloud": types.StringValue(c.Cloud), "region": types.StringValue(c.Region), "zone": types.StringValue(c.Zone),
			"instance_type": types.StringValue(c.InstanceType), "spot": types.BoolValue(c.Spot),
			"hourly_price": types.Float64Value(c.HourlyPrice),
		})
	}
	return types.ListValueMust(candidateType, elems)
}

func candidatesFromValue(l types.List) []placementCandidate {
	var out []placementCandidate
	for _, e := range l.Elements() {
		o, ok := e.(types.Object)
		if !ok {
			continue
		}
		a := o.Attributes()
		str := func(k string) string { s, _ := a[k].(types.String); return s.ValueString() }
		spot, _ := a["spot"].(types.Bool)
		price, _ := a["hourly_price"].(types.Float64)
		out = append(out, placementCandidate{Cloud: str("cloud"), Region: str("region"), Zone: str("zone"),
			InstanceType: str("instance_type"), Spot: spot.ValueBool(), HourlyPrice: price.ValueFloat64()})
	}
	return out
}

// effectiveCloud is the cloud a configuration asks for: its cloud attribute,
// "" when the cloud is left to the candidates (several clouds), or "local"
// when nothing points at a cloud.
func (m *gpuInstanceModel) effectiveCloud() string {
	if !m.Cloud.IsNull() && !m.Cloud.IsUnknown() {
		return m.Cloud.ValueString()
	}
	if m.GPU != nil || !m.Clouds.IsNull() || !m.Placements.IsNull() || !m.InstanceType.IsNull() || !m.Regions.IsNull() {
		return ""
	}
	return "local"
}

// gpuSpecString renders the gpu block as a catalog requirement ("A10G:1").
func (g *gpuBlockModel) specString() string {
	s := g.Model.ValueString()
	if n := g.Count.ValueInt64(); n > 0 {
		if s == "" {
			return fmt.Sprintf("any:%d", n)
		}
		s = fmt.Sprintf("%s:%d", s, n)
	}
	return s
}

// resolveCandidates turns the placement attributes into the ordered list of
// candidates apply will try. It runs at plan time; errors name the attribute.
func (d *providerData) resolveCandidates(ctx context.Context, m *gpuInstanceModel) ([]placementCandidate, diag.Diagnostics) {
	var diags diag.Diagnostics
	cloudName := m.effectiveCloud()
	spot := m.Spot.ValueBool()
	market := catalog.OnDemand
	if spot {
		market = catalog.Spot
	}
	filter := catalog.Filter{Market: market, MaxHourlyPrice: m.MaxHourlyPrice.ValueFloat64()}
	if m.GPU != nil {
		spec, err := catalog.ParseGPU(m.GPU.specString())
		if err != nil {
			diags.Append(attrError(path.Root("gpu").AtName("model"), "Invalid GPU Requirement", err.Error()))
			return nil, diags
		}
		filter.GPU = spec
		filter.MinGPUMemoryGiB = float64(m.GPU.MinMemoryGB.ValueInt64())
	}
	if cloudName != "" {
		filter.Clouds = []string{cloudName}
	} else if l, dd := stringList(ctx, m.Clouds); len(l) > 0 {
		diags.Append(dd...)
		filter.Clouds = l
	}
	region := m.Region.ValueString()
	if region == "" && cloudName != "" {
		region = d.defaultRegion(cloudName)
	}
	if region != "" {
		filter.Regions = []string{region}
	} else if l, dd := stringList(ctx, m.Regions); len(l) > 0 {
		diags.Append(dd...)
		filter.Regions = l
	}
	zones, dd := stringList(ctx, m.Zones)
	diags.Append(dd...)
	if z := m.Zone.ValueString(); z != "" {
		zones = []string{z}
	}

	var placements []catalog.Placement
	var pm []placementModel
	if !m.Placements.IsNull() {
		diags.Append(m.Placements.ElementsAs(ctx, &pm, false)...)
	}
	for i, p := range pm {
		if cloudName != "" && p.Cloud.ValueString() != cloudName {
			diags.Append(attrError(path.Root("placements").AtListIndex(i).AtName("cloud"), "Placement In Another Cloud",
				fmt.Sprintf("placement %d is in %s but cloud = %q; remove cloud to allow several clouds.", i+1, p.Cloud.ValueString(), cloudName)))
		}
		if z := p.Zone.ValueString(); z != "" {
			if err := validateZone(p.Cloud.ValueString(), p.Region.ValueString(), z); err != nil {
				diags.Append(attrError(path.Root("placements").AtListIndex(i).AtName("zone"), "Zone Not In Region", err.Error()))
			}
		}
		placements = append(placements, catalog.Placement{Cloud: p.Cloud.ValueString(), Region: p.Region.ValueString(),
			Zone: p.Zone.ValueString(), InstanceType: p.InstanceType.ValueString()})
	}
	if len(pm) == 0 && (!m.InstanceType.IsNull() || len(zones) > 0) {
		if cloudName == "" {
			attrName := "instance_type"
			if m.InstanceType.IsNull() {
				attrName = "zones"
			}
			diags.Append(attrError(path.Root(attrName), "Missing Cloud",
				attrName+" names a place in one cloud: set cloud = \"aws\" or \"aliyun\", or use placements."))
			return nil, diags
		}
		if region == "" {
			diags.Append(attrError(path.Root("region"), "Missing Region",
				fmt.Sprintf("Set region, or a region in the provider's %s block (or %s).", cloudName, regionEnv(cloudName))))
			return nil, diags
		}
		for _, z := range zones {
			if err := validateZone(cloudName, region, z); err != nil {
				p := path.Root("zones")
				if m.Zone.ValueString() != "" {
					p = path.Root("zone")
				}
				diags.Append(attrError(p, "Zone Not In Region", err.Error()))
			}
		}
		if len(zones) == 0 {
			zones = []string{""}
		}
		for _, z := range zones {
			placements = append(placements, catalog.Placement{Cloud: cloudName, Region: region, Zone: z, InstanceType: m.InstanceType.ValueString()})
		}
	}
	if diags.HasError() {
		return nil, diags
	}
	if cloudName != "" && region == "" && len(placements) == 0 && len(filter.Regions) == 0 {
		diags.Append(attrError(path.Root("region"), "Missing Region",
			fmt.Sprintf("Set region or regions, or a region in the provider's %s block (or %s).", cloudName, regionEnv(cloudName))))
		return nil, diags
	}
	// An explicit instance type the catalog does not know (a CPU type, a new
	// family) is tried as written, without a price.
	if t := m.InstanceType.ValueString(); t != "" && m.GPU == nil && len(pm) == 0 {
		if _, ok := d.catalog.Lookup(cloudName, t); !ok {
			diags.AddAttributeWarning(path.Root("instance_type"), "Instance Type Not In The Catalog",
				fmt.Sprintf("%s is not among Hadron's %s GPU types, so its price is unknown (0 in the plan and the budget).", t, cloudName))
			out := make([]placementCandidate, 0, len(placements))
			for _, p := range placements {
				out = append(out, placementCandidate{Cloud: p.Cloud, Region: p.Region, Zone: p.Zone, InstanceType: t, Spot: spot})
			}
			return out, diags
		}
	}
	// Live zones and spot prices, where the clouds in question have
	// credentials, for the clouds and regions the request can reach. Live
	// data changes zones and spot prices but never adds a type, so a request the
	// embedded catalog cannot meet even without a price cap fails here
	// without a call.
	cat := d.catalog
	loose := filter
	loose.MaxHourlyPrice = 0
	if _, err := cat.Candidates(catalog.Request{Filter: loose, Placements: placements}); err == nil {
		clouds, regions := filter.Clouds, filter.Regions
		if len(placements) > 0 {
			clouds, regions = nil, nil
			for _, p := range placements {
				clouds, regions = append(clouds, p.Cloud), append(regions, p.Region)
			}
		}
		var dd diag.Diagnostics
		cat, dd = d.offerCatalog(ctx, clouds, regions, false)
		diags.Append(dd...)
	}
	cands, err := cat.Candidates(catalog.Request{Filter: filter, Placements: placements})
	if err != nil {
		p := path.Root("gpu").AtName("model")
		switch {
		case len(pm) > 0:
			p = path.Root("placements")
		case !m.InstanceType.IsNull():
			p = path.Root("instance_type")
		case m.GPU == nil:
			p = path.Root("cloud")
		}
		diags.Append(attrError(p, "No Matching GPU Offer", err.Error()))
		return nil, diags
	}
	out := make([]placementCandidate, len(cands))
	for i, c := range cands {
		out[i] = placementCandidate{Cloud: c.Cloud, Region: c.Region, Zone: c.Zone, InstanceType: c.InstanceType, Spot: c.Spot, HourlyPrice: c.HourlyPrice}
	}
	return out, diags
}

// validateZone checks a zone against its cloud's region table.
func validateZone(cloudName, region, zone string) error {
	switch cloudName {
	case "aws":
		return aws.ValidateZone(region, zone)
	case "aliyun":
		return aliyun.ValidateZone(region, zone)
	}
	return nil
}

func regionEnv(cloudName string) string {
	if cloudName == "aliyun" {
		return "ALIBABA_CLOUD_REGION_ID"
	}
	return "AWS_REGION"
}

// ModifyPlan pins the candidates and the hourly price in the plan, so apply
// cannot land anywhere the reviewer did not see, and checks the budget.
func (r *gpuInstanceResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return // destroy
	}
	var plan, config gpuInstanceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() || r.data == nil {
		return
	}
	if !req.State.Raw.IsNull() {
		var status types.String
		resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("status"), &status)...)
		if status.ValueString() == statusGone {
			// Terraform replaces a resource when a path it is told about
			// changes: the status of the new node is not known yet.
			plan.Status = types.StringUnknown()
			resp.RequiresReplace = append(resp.RequiresReplace, path.Root("status"))
			resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		}
	}
	creating := req.State.Raw.IsNull() || len(resp.RequiresReplace) > 0
	if !creating {
		r.planStart(ctx, &plan, req, resp)
		r.planRuntimeUpgrade(ctx, &plan, req, resp)
		r.data.budget.add(plan.Name.ValueString(), plan.HourlyPrice.ValueFloat64())
		resp.Diagnostics.Append(r.data.budget.check(path.Root("hourly_price"))...)
		return
	}
	if !knownPlacement(&config) {
		return
	}
	cloudName := config.effectiveCloud()
	if cloudName == "local" {
		plan.Cloud = types.StringValue("local")
		for _, s := range []*types.String{&plan.Region, &plan.Zone, &plan.InstanceType, &plan.ImageID} {
			*s = types.StringValue("local")
		}
		plan.Candidates = candidatesValue(nil)
		plan.HourlyPrice = types.Float64Value(0)
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	cands, diags := r.data.resolveCandidates(ctx, &config)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	plan.Candidates = candidatesValue(cands)
	// hourly_price is known in the plan only when every candidate costs the
	// same: a fallback may land on a candidate with another price, and
	// Terraform rejects an apply whose result differs from a known planned
	// value. Each candidate's price is in the plan either way.
	low, high := priceRange(cands)
	if low == high {
		plan.HourlyPrice = types.Float64Value(low)
	} else {
		plan.HourlyPrice = types.Float64Unknown()
	}
	same := func(f func(placementCandidate) string) (string, bool) {
		v := f(cands[0])
		for _, c := range cands[1:] {
			if f(c) != v {
				return "", false
			}
		}
		return v, v != ""
	}
	for _, a := range []struct {
		dst *types.String
		f   func(placementCandidate) string
	}{
		{&plan.Cloud, func(c placementCandidate) string { return c.Cloud }},
		{&plan.Region, func(c placementCandidate) string { return c.Region }},
		{&plan.Zone, func(c placementCandidate) string { return c.Zone }},
		{&plan.InstanceType, func(c placementCandidate) string { return c.InstanceType }},
	} {
		if v, ok := same(a.f); ok {
			*a.dst = types.StringValue(v)
		} else {
			*a.dst = types.StringUnknown()
		}
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	// The budget counts the most apply may cost: the priciest candidate.
	r.data.budget.add(plan.Name.ValueString(), high)
	resp.Diagnostics.Append(r.data.budget.check(path.Root("hourly_price"))...)
}

// priceRange returns the lowest and highest hourly price of the candidates.
func priceRange(cands []placementCandidate) (low, high float64) {
	for i, c := range cands {
		if i == 0 || c.HourlyPrice < low {
			low = c.HourlyPrice
		}
		if i == 0 || c.HourlyPrice > high {
			high = c.HourlyPrice
		}
	}
	return low, high
}

// knownPlacement reports whether every attribute that decides the placement
// is known at plan time.
func knownPlacement(m *gpuInstanceModel) bool {
	for _, v := range []attr.Value{m.Cloud, m.Region, m.Zone, m.Zones, m.InstanceType, m.Spot, m.Clouds, m.Regions,
		m.Placements, m.MaxHourlyPrice, m.Name} {
		if v.IsUnknown() {
			return false
		}
	}
	if m.GPU != nil && (m.GPU.Model.IsUnknown() || m.GPU.Count.IsUnknown() || m.GPU.MinMemoryGB.IsUnknown()) {
		return false
	}
	return true
}

// landedCandidates fills candidates and hourly_price of an imported
// instance from where it is.
func (d *providerData) landedCandidates(m *gpuInstanceModel, inst *cloud.Instance) {
	if inst.Cloud == "local" {
		m.Candidates, m.HourlyPrice = candidatesValue(nil), types.Float64Value(0)
		return
	}
	price, _ := d.catalog.Price(inst.Cloud, inst.Region, inst.InstanceType, inst.Spot)
	m.Candidates = candidatesValue([]placementCandidate{{Cloud: inst.Cloud, Region: inst.Region, Zone: inst.Zone,
		InstanceType: inst.InstanceType, Spot: inst.Spot, HourlyPrice: price}})
	m.HourlyPrice = types.Float64Value(price)
}

// planRuntimeUpgrade plans an in-place runtime install on a cloud node whose
// runtime is not the bundle's version: a provider upgrade, a dead agent, or
// install_runtime turned on.
// planStart plans starting a cloud instance that was stopped outside
// Terraform: its status and public IP are known after apply (a runtime node
// also plans a re-install, which brings its agent back; see
// planRuntimeUpgrade).
func (r *gpuInstanceResource) planStart(ctx context.Context, plan *gpuInstanceModel, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	var status types.String
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("status"), &status)...)
	if status.ValueString() != statusStopped || plan.Cloud.ValueString() == "local" {
		return
	}
	plan.Status, plan.PublicIP = types.StringUnknown(), types.StringUnknown()
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
}

// planRuntimeUpgrade plans an in-place (re)install of the runtime: a newer
// bundle or local hadrond, a runtime that is unknown (dead agent, imported
// node) or was not installed, a changed runtime block, or a stopped node
// that apply starts. What the agent reports is then known after apply.
func (r *gpuInstanceResource) planRuntimeUpgrade(ctx context.Context, plan *gpuInstanceModel, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	var state gpuInstanceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var want string
	switch {
	case plan.Cloud.ValueString() == "local":
		// A local node runs the hadrond next to the provider: a new one
		// (provider upgrade) restarts the node in place.
		b, err := r.data.backend(ctx, "local")
		lb, ok := b.(*local.Backend)
		if err != nil || !ok {
			return
		}
		if want, err = lb.RuntimeVersion(ctx); err != nil || want == state.RuntimeVersion.ValueString() {
			return
		}
	case plan.InstallRuntime.ValueBool():
		b, err := r.data.bundle()
		if err != nil || (state.RuntimeVersion.ValueString() == b.Version && state.InstallRuntime.ValueBool() &&
			state.Status.ValueString() != statusStopped && sameRuntimeBlock(plan.Runtime, state.Runtime)) {
			return
		}
		want = b.Version
		plan.Endpoint = types.StringUnknown()
	default:
		return
	}
	plan.RuntimeVersion = types.StringValue(want)
	for _, s := range []*types.String{&plan.Status, &plan.Hostname, &plan.ORTVersion, &plan.DetectedGPUModel} {
		*s = types.StringUnknown()
	}
	for _, i := range []*types.Int64{&plan.VCPUs, &plan.MemoryMB, &plan.DetectedGPUCount} {
		*i = types.Int64Unknown()
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
}
