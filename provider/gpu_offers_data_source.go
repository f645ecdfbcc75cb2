package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

var (
	_ datasource.DataSource              = (*gpuOffersDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*gpuOffersDataSource)(nil)
)

// NewGPUOffersDataSource returns the hadron_gpu_offers data source.
func NewGPUOffersDataSource() datasource.DataSource { return &gpuOffersDataSource{} }

type gpuOffersDataSource struct {
	data *providerData
}

// spotValues are the values of the spot filter; the first is the default.
var spotValues = []string{"false", "true", "any"}

// archValues are the values of the architecture filter.
var archValues = []string{catalog.ArchX86, catalog.ArchARM}

// gpuOffersModel is the configuration and result of hadron_gpu_offers.
type gpuOffersModel struct {
	GPU            types.String  `tfsdk:"gpu"`
	MinGPUMemoryGB types.Int64   `tfsdk:"min_gpu_memory_gb"`
	Clouds         types.List    `tfsdk:"clouds"`
	Regions        types.List    `tfsdk:"regions"`
	Spot           types.String  `tfsdk:"spot"`
	MaxHourlyPrice types.Float64 `tfsdk:"max_hourly_price"`
	Architecture   types.String  `tfsdk:"architecture"`

	Offers     []gpuOfferModel `tfsdk:"offers"`
	Cheapest   *gpuOfferModel  `tfsdk:"cheapest"`
	PricesAsOf types.String    `tfsdk:"prices_as_of"`
}

// gpuOfferModel is one offer of the result.
type gpuOfferModel struct {
	Cloud        types.String  `tfsdk:"cloud"`
	Region       types.String  `tfsdk:"region"`
	Zones        []string      `tfsdk:"zones"`
	InstanceType types.String  `tfsdk:"instance_type"`
	GPUModel     types.String  `tfsdk:"gpu_model"`
	GPUCount     types.Int64   `tfsdk:"gpu_count"`
	GPUMemoryGB  types.Float64 `tfsdk:"gpu_memory_gb"`
	VCPUs        types.Int64   `tfsdk:"vcpus"`
	MemoryGB     types.Float64 `tfsdk:"memory_gb"`
	Architecture types.String  `tfsdk:"architecture"`
	HourlyPrice  types.Float64 `tfsdk:"hourly_price"`
	Spot         types.Bool    `tfsdk:"spot"`
	Estimated    types.Bool    `tfsdk:"estimated"`
}

func (d *gpuOffersDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_gpu_offers"
}

func (d *gpuOffersDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "GPU offers of AWS EC2 and Alibaba Cloud ECS that meet a requirement, cheapest first, from " +
			"Hadron's GPU catalog (embedded list prices, see `prices_as_of`). An offer is one instance type in one region " +
			"on one market (on-demand or spot). Use it to see what a `hadron_gpu_instance` with the same `gpu`, `clouds`, " +
			"`regions` and `max_hourly_price` would choose, or to feed an exact placement into one. When no offer passes " +
			"every filter, reading fails and the error names the filter that removed the last offers. When a cloud has " +
			"credentials (its provider block, or its standard environment credentials), the zones that offer each type " +
			"now and current spot prices are looked up live for the regions in question (at most 10 seconds a region, " +
			"once per run); a lookup that fails leaves the embedded data in place with a warning.",
		Attributes: map[string]schema.Attribute{
			"gpu": schema.StringAttribute{Optional: true,
				Validators: []validator.String{gpuRequirementValidator{}},
				MarkdownDescription: "GPU requirement `MODEL[:COUNT]`, case-insensitive: `A100:8`, `H100`, `A10G:1`. " +
					"`A100-80GB:8` also asks for 80 GiB per GPU; `A10|A10G:1` accepts either model (one A10-class GPU on " +
					"either cloud). Without a count any count matches. Unset: any GPU."},
			"min_gpu_memory_gb": schema.Int64Attribute{Optional: true,
				Validators:          []validator.Int64{int64validator.AtLeast(1)},
				MarkdownDescription: "Least memory per GPU, GiB."},
			"clouds": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				Validators: []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues(),
					listvalidator.ValueStringsAre(stringvalidator.OneOf(clouds[1:]...))},
				MarkdownDescription: "Clouds to consider (" + enumDescription(clouds[1:]) + "). Unset: all."},
			"regions": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				Validators: []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues(),
					listvalidator.ValueStringsAre(catalogRegionValidator{})},
				MarkdownDescription: "Regions to consider, of any cloud (`us-east-1`, `cn-hangzhou`, …). Unset: every region the catalog prices."},
			"spot": schema.StringAttribute{Optional: true,
				Validators: []validator.String{stringvalidator.OneOf(spotValues...)},
				MarkdownDescription: "Market: " + enumDescription(spotValues) + ". `false` (the default) lists on-demand " +
					"offers, `true` spot offers, `any` both. Spot prices without live data are estimated from the usual discount."},
			"max_hourly_price": schema.Float64Attribute{Optional: true,
				Validators:          []validator.Float64{positivePriceValidator{}},
				MarkdownDescription: "Only offers at or below this price, USD per hour."},
			"architecture": schema.StringAttribute{Optional: true,
				Validators:          []validator.String{stringvalidator.OneOf(archValues...)},
				MarkdownDescription: "CPU architecture: " + enumDescription(archValues) + ". Unset: any."},
			"offers": schema.ListNestedAttribute{Computed: true,
				NestedObject:        schema.NestedAttributeObject{Attributes: offerAttributes()},
				MarkdownDescription: "Matching offers, cheapest first; ties ordered by cloud, region, instance type, on-demand first."},
			"cheapest": schema.SingleNestedAttribute{Computed: true, Attributes: offerAttributes(),
				MarkdownDescription: "The first of `offers`."},
			"prices_as_of": schema.StringAttribute{Computed: true,
				MarkdownDescription: "Date the catalog's list prices are valid for (`YYYY-MM-DD`)."},
		},
	}
}

// offerAttributes is the schema of one offer.
func offerAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"cloud":  schema.StringAttribute{Computed: true, MarkdownDescription: "Cloud: " + enumDescription(clouds[1:]) + "."},
		"region": schema.StringAttribute{Computed: true, MarkdownDescription: "Region."},
		"zones": schema.ListAttribute{Computed: true, ElementType: types.StringType,
			MarkdownDescription: "Zones of the region that offer the instance type, sorted."},
		"instance_type": schema.StringAttribute{Computed: true, MarkdownDescription: "Instance type (`g5.xlarge`, `ecs.gn7i-c8g1.2xlarge`)."},
		"gpu_model":     schema.StringAttribute{Computed: true, MarkdownDescription: "GPU model as the catalog spells it (`A10G`, `A100`, `H100`)."},
		"gpu_count":     schema.Int64Attribute{Computed: true, MarkdownDescription: "GPUs per instance."},
		"gpu_memory_gb": schema.Float64Attribute{Computed: true, MarkdownDescription: "Memory per GPU, GiB."},
		"vcpus":         schema.Int64Attribute{Computed: true, MarkdownDescription: "vCPUs."},
		"memory_gb":     schema.Float64Attribute{Computed: true, MarkdownDescription: "Instance memory, GiB."},
		"architecture":  schema.StringAttribute{Computed: true, MarkdownDescription: "CPU architecture: " + enumDescription(archValues) + "."},
		"hourly_price": schema.Float64Attribute{Computed: true,
			MarkdownDescription: "Price, USD per hour: on-demand, or for a spot offer the known or estimated spot price."},
		"spot": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether this is a spot offer."},
		"estimated": schema.BoolAttribute{Computed: true,
			MarkdownDescription: "Whether `hourly_price` is an approximation (an estimated list price, or a spot price derived from the usual discount)."},
	}
}

func (d *gpuOffersDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	pd, ok := req.ProviderData.(*providerData)
	if !ok {
		resp.Diagnostics.Append(unexpectedDataDiag(req.ProviderData))
		return
	}
	d.data = pd
}

func (d *gpuOffersDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m gpuOffersModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	filter, diags := offersFilter(ctx, &m)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	cat, diags := d.catalog(ctx, filter)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	offers, err := cat.Query(filter)
	if err != nil {
		resp.Diagnostics.Append(noOfferDiag(err))
		return
	}
	m.Offers = make([]gpuOfferModel, len(offers))
	for i, o := range offers {
		m.Offers[i] = offerModel(o)
	}
	m.Cheapest = &m.Offers[0]
	m.PricesAsOf = types.StringValue(cat.Meta().AsOf)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// catalog is the provider's catalog for the filter's clouds and regions,
// refined with live data where the clouds have credentials, or the embedded
// one before the provider is configured.
func (d *gpuOffersDataSource) catalog(ctx context.Context, f catalog.Filter) (*catalog.Catalog, diag.Diagnostics) {
	if d.data != nil && d.data.catalog != nil {
		return d.data.offerCatalog(ctx, f.Clouds, f.Regions, true)
	}
	cat, err := catalog.Embedded()
	if err != nil {
		var diags diag.Diagnostics
		diags.Append(errorDiag("Catalog Not Readable", "The provider's embedded GPU catalog could not be read; this is a bug.", err))
		return nil, diags
	}
	return cat, nil
}

// catalogWarnings reports what went wrong while refining the catalog with
// live cloud data, one warning each.
func catalogWarnings(cat *catalog.Catalog) diag.Diagnostics {
	var diags diag.Diagnostics
	for _, w := range cat.Warnings() {
		diags.AddWarning("GPU Offers Partly From The Embedded Catalog",
			"Live cloud data could not refine the catalog, so some zones and spot prices come from the embedded list: "+w)
	}
	return diags
}

// offersFilter maps the configured filters to a catalog filter.
func offersFilter(ctx context.Context, m *gpuOffersModel) (catalog.Filter, diag.Diagnostics) {
	var diags diag.Diagnostics
	var f catalog.Filter
	if s := m.GPU.ValueString(); s != "" {
		spec, err := catalog.ParseGPU(s)
		if err != nil {
			diags.Append(attrError(path.Root("gpu"), "Invalid GPU Requirement", gpuRequirementHelp(err)))
		}
		f.GPU = spec
	}
	f.MinGPUMemoryGiB = float64(m.MinGPUMemoryGB.ValueInt64())
	var dd diag.Diagnostics
	f.Clouds, dd = stringList(ctx, m.Clouds)
	diags.Append(dd...)
	f.Regions, dd = stringList(ctx, m.Regions)
	diags.Append(dd...)
	if s := m.Spot.ValueString(); s != "" {
		market, err := catalog.ParseMarket(s)
		if err != nil {
			diags.Append(attrError(path.Root("spot"), "Invalid Market", err.Error()))
		}
		f.Market = market
	}
	f.MaxHourlyPrice = m.MaxHourlyPrice.ValueFloat64()
	if s := m.Architecture.ValueString(); s != "" {
		arch, err := catalog.ParseArch(s)
		if err != nil {
			diags.Append(attrError(path.Root("architecture"), "Invalid Architecture", err.Error()))
		}
		f.Arch = arch
	}
	return f, diags
}

// offerModel maps a catalog offer to its Terraform value.
func offerModel(o catalog.Offer) gpuOfferModel {
	zones := append([]string{}, o.Zones...)
	return gpuOfferModel{
		Cloud:        types.StringValue(o.Cloud),
		Region:       types.StringValue(o.Region),
		Zones:        zones,
		InstanceType: types.StringValue(o.InstanceType),
		GPUModel:     types.StringValue(o.GPU),
		GPUCount:     types.Int64Value(int64(o.GPUCount)),
		GPUMemoryGB:  types.Float64Value(o.GPUMemoryGiB),
		VCPUs:        types.Int64Value(int64(o.VCPUs)),
		MemoryGB:     types.Float64Value(o.MemoryGiB),
		Architecture: types.StringValue(o.Arch),
		HourlyPrice:  types.Float64Value(o.HourlyPrice),
		Spot:         types.BoolValue(o.Spot),
		Estimated:    types.BoolValue(o.Estimated),
	}
}

// filterAttribute is the data source attribute behind each filter name a
// catalog.NoMatchError reports.
var filterAttribute = map[string]string{
	"gpu":              "gpu",
	"gpu_count":        "gpu",
	"min_gpu_memory":   "min_gpu_memory_gb",
	"arch":             "architecture",
	"clouds":           "clouds",
	"regions":          "regions",
	"spot":             "spot",
	"max_hourly_price": "max_hourly_price",
}

// noOfferDiag turns a failed query into a diagnostic on the attribute of the
// filter that emptied the list.
func noOfferDiag(err error) diag.Diagnostic {
	var nm *catalog.NoMatchError
	if !errors.As(err, &nm) {
		return errorDiag("Invalid GPU Offer Filter", "The filters could not be applied to the GPU catalog.", err)
	}
	name, ok := filterAttribute[nm.Filter]
	if !ok {
		return errorDiag("No Matching GPU Offer", "No offer in the GPU catalog passes every filter.", err)
	}
	return attrError(path.Root(name), "No Matching GPU Offer",
		fmt.Sprintf("No offer in the GPU catalog passes every filter: %s removed the last ones. Relax %s "+
			"(the offers it removed are listed as available), or another filter.\n\n%s", name, name, err))
}

func gpuRequirementHelp(err error) string {
	return fmt.Sprintf("Write the requirement as MODEL[:COUNT], e.g. \"A100:8\", \"H100\", \"A10|A10G:1\": %s.", err)
}

// gpuRequirementValidator checks a "MODEL[:COUNT]" GPU requirement.
type gpuRequirementValidator struct{}

func (gpuRequirementValidator) Description(context.Context) string {
	return "must be a GPU requirement MODEL[:COUNT], e.g. A100:8, H100, A10|A10G:1"
}

func (v gpuRequirementValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (gpuRequirementValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := catalog.ParseGPU(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.Append(attrError(req.Path, "Invalid GPU Requirement", gpuRequirementHelp(err)))
	}
}

// catalogRegionValidator checks that a region is one the GPU catalog prices,
// so that a misspelt region among valid ones is not silently ignored.
type catalogRegionValidator struct{}

func (catalogRegionValidator) Description(context.Context) string {
	return "must be a region of the GPU catalog"
}

func (v catalogRegionValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (catalogRegionValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	cat, err := catalog.Embedded()
	if err != nil {
		resp.Diagnostics.Append(errorDiag("Catalog Not Readable", "The provider's embedded GPU catalog could not be read; this is a bug.", err))
		return
	}
	region := req.ConfigValue.ValueString()
	var known []string
	for _, c := range cat.Clouds() {
		for _, r := range cat.Regions(c) {
			if r == region {
				return
			}
			known = append(known, c+" "+r)
		}
	}
	resp.Diagnostics.Append(attrError(req.Path, "Unknown Region",
		fmt.Sprintf("%q is not a region the GPU catalog prices. Known regions: %s.", region, strings.Join(known, ", "))))
}

// positivePriceValidator rejects a price ceiling of zero or less, which
// would match nothing (the catalog reads 0 as "no limit", so a literal 0
// must not reach it).
type positivePriceValidator struct{}

func (positivePriceValidator) Description(context.Context) string {
	return "must be more than 0 (USD per hour)"
}

func (v positivePriceValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (v positivePriceValidator) ValidateFloat64(ctx context.Context, req validator.Float64Request, resp *validator.Float64Response) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if p := req.ConfigValue.ValueFloat64(); !(p > 0) {
		resp.Diagnostics.Append(attrError(req.Path, "Invalid Price",
			fmt.Sprintf("Attribute %s %s, got: %g.", req.Path, v.Description(ctx), p)))
	}
}
