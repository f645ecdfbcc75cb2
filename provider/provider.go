// Package provider is the Hadron Terraform provider: the only package that
// imports terraform-plugin-framework. It maps HCL to the cloud backends in
// internal/cloud and to the node runtime's API.
package provider

import (
	"context"
	"os"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
)

var _ provider.Provider = (*hadronProvider)(nil)

// New returns a constructor for the provider at the given version.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &hadronProvider{version: version, getenv: os.Getenv} }
}

type hadronProvider struct {
	version string
	getenv  func(string) string
}

type providerModel struct {
	Local  *localBlockModel  `tfsdk:"local"`
	AWS    *awsBlockModel    `tfsdk:"aws"`
	Aliyun *aliyunBlockModel `tfsdk:"aliyun"`
	Budget *budgetBlockModel `tfsdk:"budget"`
	Bundle *bundleBlockModel `tfsdk:"bundle"`
}

type bundleBlockModel struct {
	Dir              types.String `tfsdk:"dir"`
	ORTLibraryURL    types.Map    `tfsdk:"ort_library_url"`
	ORTLibrarySHA256 types.Map    `tfsdk:"ort_library_sha256"`
}

type localBlockModel struct {
	DataDir     types.String `tfsdk:"data_dir"`
	RuntimePath types.String `tfsdk:"runtime_path"`
	ORTLibrary  types.String `tfsdk:"ort_library"`
}

type awsBlockModel struct {
	Region     types.String       `tfsdk:"region"`
	Profile    types.String       `tfsdk:"profile"`
	AccessKey  types.String       `tfsdk:"access_key"`
	SecretKey  types.String       `tfsdk:"secret_key"`
	Token      types.String       `tfsdk:"token"`
	AssumeRole *assumeRoleModel   `tfsdk:"assume_role"`
	Endpoints  *awsEndpointsModel `tfsdk:"endpoints"`
}

type assumeRoleModel struct {
	RoleARN     types.String `tfsdk:"role_arn"`
	SessionName types.String `tfsdk:"session_name"`
	ExternalID  types.String `tfsdk:"external_id"`
}

type awsEndpointsModel struct {
	EC2 types.String `tfsdk:"ec2"`
}

type aliyunBlockModel struct {
	Region        types.String `tfsdk:"region"`
	AccessKey     types.String `tfsdk:"access_key"`
	SecretKey     types.String `tfsdk:"secret_key"`
	SecurityToken types.String `tfsdk:"security_token"`
	Profile       types.String `tfsdk:"profile"`
	RAMRole       types.String `tfsdk:"ram_role"`
	Endpoint      types.String `tfsdk:"endpoint"`
}

type budgetBlockModel struct {
	MaxHourlyPrice types.Float64 `tfsdk:"max_hourly_price"`
}

func (p *hadronProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "hadron"
	resp.Version = p.version
}

func (p *hadronProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Hadron declares GPU instances, training jobs and model endpoints on the `local` cloud " +
			"(processes on this machine, the default), AWS EC2 and Alibaba Cloud ECS, and bootstraps the `hadrond` " +
			"node runtime onto every node. Every block is optional: with none, everything runs on the local cloud.",
		Blocks: map[string]schema.Block{
			"local": schema.SingleNestedBlock{
				MarkdownDescription: "Settings of the `local` cloud, which runs nodes as `hadrond` processes on this machine.",
				Attributes: map[string]schema.Attribute{
					"data_dir": schema.StringAttribute{Optional: true, MarkdownDescription: "Directory holding the local nodes' " +
						"data. Defaults to `$HADRON_LOCAL_DATA_DIR`, else `$XDG_STATE_HOME/hadron`, else `~/.local/state/hadron`."},
					"runtime_path": schema.StringAttribute{Optional: true, MarkdownDescription: "Path of the `hadrond` binary the " +
						"local nodes run. Defaults to `$HADRON_RUNTIME_PATH`, else the `hadrond` installed next to the provider, " +
						"else `hadrond` on `PATH`."},
					"ort_library": schema.StringAttribute{Optional: true, MarkdownDescription: "Path of the ONNX Runtime shared " +
						"library (`libonnxruntime.so.1`) the local nodes load. Defaults to `$HADRON_ORT_LIBRARY`, else the one " +
						"installed next to the provider."},
				},
			},
			"aws": schema.SingleNestedBlock{
				MarkdownDescription: "AWS settings. Credentials follow the AWS SDK's standard chain (environment, shared " +
					"config and profiles, SSO, instance role) unless set here.",
				Attributes: map[string]schema.Attribute{
					"region":     schema.StringAttribute{Optional: true, MarkdownDescription: "Default region. Defaults to `$AWS_REGION` or the profile's region."},
					"profile":    schema.StringAttribute{Optional: true, MarkdownDescription: "Shared config profile. Defaults to `$AWS_PROFILE`."},
					"access_key": schema.StringAttribute{Optional: true, MarkdownDescription: "Static access key id. Prefer the environment or a profile."},
					"secret_key": schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Static secret access key; requires `access_key`."},
					"token":      schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Session token for temporary static credentials."},
				},
				Blocks: map[string]schema.Block{
					"assume_role": schema.SingleNestedBlock{
						MarkdownDescription: "Role to assume with STS after the base credentials are found.",
						Attributes: map[string]schema.Attribute{
							"role_arn":     schema.StringAttribute{Optional: true, MarkdownDescription: "ARN of the role to assume."},
							"session_name": schema.StringAttribute{Optional: true, MarkdownDescription: "Session name; defaults to `hadron`."},
							"external_id":  schema.StringAttribute{Optional: true, MarkdownDescription: "External id the role's trust policy requires."},
						},
					},
					"endpoints": schema.SingleNestedBlock{
						MarkdownDescription: "Endpoint overrides, for private endpoints and tests.",
						Attributes: map[string]schema.Attribute{
							"ec2": schema.StringAttribute{Optional: true, MarkdownDescription: "EC2 API endpoint URL. Defaults to `$HADRON_AWS_EC2_ENDPOINT`."},
						},
					},
				},
			},
			"aliyun": schema.SingleNestedBlock{
				MarkdownDescription: "Alibaba Cloud settings. Credentials default to `$ALIBABA_CLOUD_ACCESS_KEY_ID`, " +
					"`$ALIBABA_CLOUD_ACCESS_KEY_SECRET` and `$ALIBABA_CLOUD_SECURITY_TOKEN`, then the aliyun CLI profile, then an ECS RAM role.",
				Attributes: map[string]schema.Attribute{
					"region":         schema.StringAttribute{Optional: true, MarkdownDescription: "Default region, e.g. `cn-hangzhou`. Defaults to `$ALIBABA_CLOUD_REGION`."},
					"access_key":     schema.StringAttribute{Optional: true, MarkdownDescription: "AccessKey id. Prefer the environment."},
					"secret_key":     schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "AccessKey secret; requires `access_key`."},
					"security_token": schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "STS security token for temporary credentials."},
					"profile":        schema.StringAttribute{Optional: true, MarkdownDescription: "Profile name in the aliyun CLI config (`~/.aliyun/config.json`)."},
					"ram_role":       schema.StringAttribute{Optional: true, MarkdownDescription: "ECS RAM role name, when running on an ECS instance."},
					"endpoint":       schema.StringAttribute{Optional: true, MarkdownDescription: "ECS API endpoint URL, for private endpoints and tests. Defaults to `$HADRON_ALIYUN_ECS_ENDPOINT`."},
				},
			},
			"bundle": schema.SingleNestedBlock{
				MarkdownDescription: "The node runtime the provider installs on cloud nodes: `hadrond` and ONNX Runtime for linux/amd64 and linux/arm64.",
				Attributes: map[string]schema.Attribute{
					"dir": schema.StringAttribute{Optional: true, MarkdownDescription: "Bundle directory (with manifest.json). " +
						"Defaults to `$HADRON_BUNDLE_DIR`, else the `bundle/` that `make install` puts next to the provider."},
					"ort_library_url": schema.MapAttribute{Optional: true, ElementType: types.StringType,
						MarkdownDescription: "ONNX Runtime library to install instead of the bundled one, per architecture " +
							"(`amd64`, `arm64`), e.g. a CUDA build; the node fetches it and checks `ort_library_sha256`."},
					"ort_library_sha256": schema.MapAttribute{Optional: true, ElementType: types.StringType,
						MarkdownDescription: "sha256 of each `ort_library_url`, per architecture."},
				},
			},
			"budget": schema.SingleNestedBlock{
				MarkdownDescription: "A spending guard checked at plan time.",
				Attributes: map[string]schema.Attribute{
					"max_hourly_price": schema.Float64Attribute{Optional: true, MarkdownDescription: "Most that all Hadron " +
						"instances of this configuration may cost together, in USD per hour. A plan above it fails."},
				},
			},
		},
	}
}

func (p *hadronProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for _, u := range cfg.unknowns() {
		resp.Diagnostics.AddAttributeError(u, "Unknown provider setting",
			"The provider cannot be configured with a value known only after apply. Set "+u.String()+
				" to a literal, a variable, or leave it out and use its environment variable.")
	}
	if resp.Diagnostics.HasError() {
		return
	}
	data, diags := newProviderData(cfg, p.version, p.getenv)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	tflog.Debug(ctx, "configured hadron provider", map[string]any{"local_data_dir": data.local.DataDir, "runtime_path": data.local.RuntimePath})
	resp.ResourceData = data
	resp.DataSourceData = data
}

// unknowns lists the provider settings whose values are unknown at plan time.
func (m providerModel) unknowns() []path.Path {
	var out []path.Path
	check := func(p path.Path, unknown bool) {
		if unknown {
			out = append(out, p)
		}
	}
	if m.Local != nil {
		check(path.Root("local").AtName("data_dir"), m.Local.DataDir.IsUnknown())
		check(path.Root("local").AtName("runtime_path"), m.Local.RuntimePath.IsUnknown())
		check(path.Root("local").AtName("ort_library"), m.Local.ORTLibrary.IsUnknown())
	}
	if a := m.AWS; a != nil {
		for name, v := range map[string]types.String{"region": a.Region, "profile": a.Profile, "access_key": a.AccessKey, "secret_key": a.SecretKey, "token": a.Token} {
			check(path.Root("aws").AtName(name), v.IsUnknown())
		}
		if a.Endpoints != nil {
			check(path.Root("aws").AtName("endpoints").AtName("ec2"), a.Endpoints.EC2.IsUnknown())
		}
		if a.AssumeRole != nil {
			check(path.Root("aws").AtName("assume_role").AtName("role_arn"), a.AssumeRole.RoleARN.IsUnknown())
		}
	}
	if a := m.Aliyun; a != nil {
		for name, v := range map[string]types.String{"region": a.Region, "access_key": a.AccessKey, "secret_key": a.SecretKey,
			"security_token": a.SecurityToken, "profile": a.Profile, "ram_role": a.RAMRole, "endpoint": a.Endpoint} {
			check(path.Root("aliyun").AtName(name), v.IsUnknown())
		}
	}
	if m.Budget != nil {
		check(path.Root("budget").AtName("max_hourly_price"), m.Budget.MaxHourlyPrice.IsUnknown())
	}
	return out
}

func (p *hadronProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewGPUInstanceResource,
		NewModelEndpointResource,
		NewTrainingJobResource,
	}
}

func (p *hadronProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{NewGPUOffersDataSource}
}

// defaultStateDir is $XDG_STATE_HOME/hadron, else ~/.local/state/hadron.
func defaultStateDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "hadron")
	}
	home := getenv("HOME")
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = h
		}
	}
	return filepath.Join(home, ".local", "state", "hadron")
}
