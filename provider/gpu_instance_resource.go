package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/float64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/local"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/agent"
)

var (
	_ resource.Resource                   = (*gpuInstanceResource)(nil)
	_ resource.ResourceWithConfigure      = (*gpuInstanceResource)(nil)
	_ resource.ResourceWithImportState    = (*gpuInstanceResource)(nil)
	_ resource.ResourceWithValidateConfig = (*gpuInstanceResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*gpuInstanceResource)(nil)
)

// Default timeouts of hadron_gpu_instance, in one place.
const (
	defaultInstanceCreateTimeout = 30 * time.Minute
	defaultInstanceReadTimeout   = 5 * time.Minute
	defaultInstanceUpdateTimeout = 10 * time.Minute
	defaultInstanceDeleteTimeout = 20 * time.Minute
)

// NewGPUInstanceResource returns the hadron_gpu_instance resource.
func NewGPUInstanceResource() resource.Resource { return &gpuInstanceResource{} }

type gpuInstanceResource struct {
	data *providerData
}

// statusGone is the status of a node whose instance no longer exists, and
// statusStopped that of one stopped outside Terraform.
const (
	statusGone    = "gone"
	statusStopped = "stopped"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (r *gpuInstanceResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_gpu_instance"
}

func (r *gpuInstanceResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	replaceComputed := []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplace()}
	stable := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	stableInt := []planmodifier.Int64{int64planmodifier.UseStateForUnknown()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A node with the Hadron runtime (`hadrond`) on it: a process on this machine with " +
			"`cloud = \"local\"`, or a GPU instance on AWS EC2 or Alibaba Cloud ECS. Create returns only when the node's " +
			"agent answers ready; refresh asks the cloud and the agent, so a node that is gone shows up as one to replace.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, PlanModifiers: stable,
				MarkdownDescription: "Instance id: `local-…` for local nodes, the cloud's instance id otherwise."},
			"name": schema.StringAttribute{Required: true, PlanModifiers: replace,
				Validators: []validator.String{stringvalidator.RegexMatches(nameRE,
					"must be 1 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit")},
				MarkdownDescription: "Name of the node (its `Name` tag). Unique per cloud and region: it also identifies the " +
					"instance when an interrupted apply is retried, so a retry never creates a second one."},
			"cloud": schema.StringAttribute{Optional: true, Computed: true,
				PlanModifiers: replaceComputed, Validators: []validator.String{stringvalidator.OneOf(clouds...)},
				MarkdownDescription: "Where the node runs: " + enumDescription(clouds) + ". Unset: `local`, unless `gpu`, " +
					"`clouds` or `placements` leave the choice to the cheapest offer, in which case it is where the instance landed."},
			"clouds": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplace()},
				Validators: []validator.List{listvalidator.ValueStringsAre(stringvalidator.OneOf(clouds[1:]...)),
					listvalidator.ConflictsWith(path.MatchRoot("cloud"))},
				MarkdownDescription: "Clouds the `gpu` requirement may be met in (" + enumDescription(clouds[1:]) + "); all by default."},
			"regions": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				PlanModifiers:       []planmodifier.List{listplanmodifier.RequiresReplace()},
				Validators:          []validator.List{listvalidator.ConflictsWith(path.MatchRoot("region"))},
				MarkdownDescription: "Regions the `gpu` requirement may be met in; all the catalog knows by default."},
			"max_hourly_price": schema.Float64Attribute{Optional: true,
				PlanModifiers:       []planmodifier.Float64{float64planmodifier.RequiresReplace()},
				Validators:          []validator.Float64{float64validator.AtLeast(0)},
				MarkdownDescription: "Only offers at or below this price, USD per hour."},
			"placements": schema.ListNestedAttribute{Optional: true,
				PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplace()},
				MarkdownDescription: "Explicit candidates, tried in the order written (each narrowed by `gpu` and `max_hourly_price`). " +
					"An unset region, zone or instance type lets the catalog choose, cheapest first.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"cloud":         schema.StringAttribute{Required: true, Validators: []validator.String{stringvalidator.OneOf(clouds[1:]...)}, MarkdownDescription: "Cloud."},
					"region":        schema.StringAttribute{Optional: true, MarkdownDescription: "Region."},
					"zone":          schema.StringAttribute{Optional: true, MarkdownDescription: "Zone."},
					"instance_type": schema.StringAttribute{Optional: true, MarkdownDescription: "Instance type."},
				}},
			},
			"candidates": schema.ListAttribute{Computed: true, ElementType: candidateType,
				PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				MarkdownDescription: "Where apply may create the instance, in the order it tries: resolved and pinned at plan " +
					"time (zone, then region, then cloud), with each offer's hourly price."},
			"hourly_price": schema.Float64Attribute{Computed: true,
				PlanModifiers: []planmodifier.Float64{float64planmodifier.UseStateForUnknown()},
				MarkdownDescription: "Price of the instance, USD per hour: known at plan time when every candidate costs the same, " +
					"otherwise where it landed after apply (each candidate's price is in `candidates`); 0 for local nodes."},
			"region": schema.StringAttribute{Optional: true, Computed: true, PlanModifiers: replaceComputed,
				MarkdownDescription: "Region (`us-east-1`, `cn-hangzhou`, …). Defaults to the provider block's region. `local` for local nodes."},
			"zone": schema.StringAttribute{Optional: true, Computed: true, PlanModifiers: replaceComputed,
				MarkdownDescription: "Availability zone. When unset, the zone the instance landed in (see `zones`)."},
			"zones": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplace()},
				Validators:    []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues(), listvalidator.ConflictsWith(path.MatchRoot("zone"))},
				MarkdownDescription: "Candidate zones, tried in order: a zone out of capacity moves the create on to the next. " +
					"Conflicts with `zone`."},
			"instance_type": schema.StringAttribute{Optional: true, Computed: true, PlanModifiers: replaceComputed,
				MarkdownDescription: "Instance type (`g5.xlarge`, `ecs.gn7i-c8g1.2xlarge`). When unset, resolved from the `gpu` block."},
			"spot": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				PlanModifiers:       []planmodifier.Bool{boolplanmodifier.RequiresReplace()},
				MarkdownDescription: "Run as a spot (preemptible) instance. A reclaimed spot node is planned for replacement."},
			"spot_max_price": schema.Float64Attribute{Optional: true,
				PlanModifiers:       []planmodifier.Float64{float64planmodifier.RequiresReplace()},
				Validators:          []validator.Float64{float64validator.AtLeast(0)},
				MarkdownDescription: "Highest spot price to pay, USD per hour. Unset: up to the on-demand price."},
			"image_id": schema.StringAttribute{Optional: true, Computed: true, PlanModifiers: replaceComputed,
				MarkdownDescription: "Machine image. Defaults to the cloud's current GPU-ready Ubuntu image."},
			"root_volume_size": schema.Int64Attribute{Optional: true,
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.RequiresReplace()},
				Validators:          []validator.Int64{int64validator.Between(8, 16384)},
				MarkdownDescription: "Root (system) disk size in GiB."},
			"root_volume_type": schema.StringAttribute{Optional: true, PlanModifiers: replace,
				MarkdownDescription: "Root disk type (`gp3` on AWS, `cloud_essd` on Alibaba Cloud)."},
			"subnet_id": schema.StringAttribute{Optional: true, PlanModifiers: replace,
				MarkdownDescription: "Subnet (AWS) or vSwitch (Alibaba Cloud) id."},
			"security_group_ids": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplace()},
				MarkdownDescription: "Security groups. When unset, Hadron creates one that allows SSH and the runtime port " +
					"only from `allowed_cidrs`, and deletes it with the instance."},
			"allowed_cidrs": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				PlanModifiers:       []planmodifier.List{listplanmodifier.RequiresReplace()},
				MarkdownDescription: "CIDR blocks allowed to reach SSH and the runtime port on the Hadron-managed security group. Nothing is open to the world unless listed here."},
			"ssh_public_key": schema.StringAttribute{Optional: true, PlanModifiers: replace,
				MarkdownDescription: "Public key (authorized_keys format) imported as a key pair that is deleted with the instance."},
			"key_name": schema.StringAttribute{Optional: true, PlanModifiers: replace,
				MarkdownDescription: "Existing key pair name, instead of `ssh_public_key`."},
			"associate_public_ip": schema.BoolAttribute{Optional: true,
				PlanModifiers:       []planmodifier.Bool{boolplanmodifier.RequiresReplace()},
				MarkdownDescription: "Give the instance a public IP address."},
			"tags": schema.MapAttribute{Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Tags on the instance and its volumes, besides `Name` and `hadron:managed-by`. Changed in place."},
			"install_runtime": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				MarkdownDescription: "Install and start the `hadrond` runtime on the node, and finish create only when it answers " +
					"ready (default). `false` provisions the bare instance. Local nodes always run it."},
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Read: true, Update: true, Delete: true}),

			"host_key_fingerprint": schema.StringAttribute{Computed: true, PlanModifiers: stable,
				MarkdownDescription: "SSH host key of the node as first seen (`SHA256:…`); a different key later is an error."},
			"status": schema.StringAttribute{Computed: true,
				MarkdownDescription: "`ready` when the node's agent answers; otherwise what is wrong: `agent_unreachable`, the cloud's " +
					"state when the instance is not running (`stopped` outside Terraform: the next apply starts it), or `gone` when " +
					"the instance no longer exists (a reclaimed spot node, or one deleted outside Terraform). A gone node is replaced by the " +
					"next apply; destroy removes the security group and key pair Hadron made for it."},
			"endpoint": schema.StringAttribute{Computed: true, PlanModifiers: stable,
				MarkdownDescription: "Base URL of the node's agent (Open Inference Protocol v2 and the Hadron API)."},
			"token": schema.StringAttribute{Computed: true, Sensitive: true, PlanModifiers: stable,
				MarkdownDescription: "Bearer token of the node's agent."},
			"public_ip":  schema.StringAttribute{Computed: true, PlanModifiers: stable, MarkdownDescription: "Public IP address, if any."},
			"private_ip": schema.StringAttribute{Computed: true, PlanModifiers: stable, MarkdownDescription: "Private IP address."},
			"hostname":   schema.StringAttribute{Computed: true, PlanModifiers: stable, MarkdownDescription: "Host name the node reports."},
			"vcpus":      schema.Int64Attribute{Computed: true, PlanModifiers: stableInt, MarkdownDescription: "vCPUs the node reports."},
			"memory_mb":  schema.Int64Attribute{Computed: true, PlanModifiers: stableInt, MarkdownDescription: "Memory the node reports, MiB."},
			"detected_gpu_count": schema.Int64Attribute{Computed: true, PlanModifiers: stableInt,
				MarkdownDescription: "GPUs the node's driver reports (0 without NVIDIA GPUs)."},
			"detected_gpu_model": schema.StringAttribute{Computed: true, PlanModifiers: stable,
				MarkdownDescription: "GPU model the driver reports, or `none`."},
			"runtime_version": schema.StringAttribute{Computed: true, PlanModifiers: stable,
				MarkdownDescription: "Version of the `hadrond` runtime on the node."},
			"ort_version": schema.StringAttribute{Computed: true, PlanModifiers: stable,
				MarkdownDescription: "ONNX Runtime version loaded by the node (empty until a model is served)."},
		},
		Blocks: map[string]schema.Block{
			"ssh": schema.SingleNestedBlock{
				MarkdownDescription: "How the provider reaches a cloud node to install `hadrond` and talk to its agent " +
					"(through an SSH tunnel: the agent's port need not be public).",
				Attributes: map[string]schema.Attribute{
					"user":        schema.StringAttribute{Optional: true, MarkdownDescription: "Login user; `ubuntu` on AWS, `root` on Alibaba Cloud by default."},
					"private_key": schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Private key (PEM or OpenSSH), e.g. `file(\"~/.ssh/id_ed25519\")`."},
					"port":        schema.Int64Attribute{Optional: true, Validators: []validator.Int64{int64validator.Between(1, 65535)}, MarkdownDescription: "SSH port (22)."},
					"host":        schema.StringAttribute{Optional: true, MarkdownDescription: "Address to connect to instead of the public (else private) IP."},
					"use_agent":   schema.BoolAttribute{Optional: true, MarkdownDescription: "Also authenticate with the keys of the ssh-agent at `$SSH_AUTH_SOCK`."},
					"host_key_fingerprint": schema.StringAttribute{Optional: true,
						MarkdownDescription: "Pin the node's host key (`SHA256:…`). Unset: the key seen first is recorded in state and enforced afterwards."},
					"bastion_host":        schema.StringAttribute{Optional: true, MarkdownDescription: "Jump host to connect through."},
					"bastion_port":        schema.Int64Attribute{Optional: true, MarkdownDescription: "Jump host SSH port (22)."},
					"bastion_user":        schema.StringAttribute{Optional: true, MarkdownDescription: "Jump host user (the node's user by default)."},
					"bastion_private_key": schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Jump host key (the node's key by default)."},
				},
			},
			"runtime": schema.SingleNestedBlock{
				MarkdownDescription: "How `hadrond` is installed and run on a cloud node.",
				Attributes: map[string]schema.Attribute{
					"port": schema.Int64Attribute{Optional: true, Validators: []validator.Int64{int64validator.Between(0, 65535)},
						MarkdownDescription: "Agent port on the node (7070); 0 lets the agent pick one."},
					"prefix":   schema.StringAttribute{Optional: true, MarkdownDescription: "Install prefix (`/opt/hadron` with root or sudo, else `~/.hadron`)."},
					"data_dir": schema.StringAttribute{Optional: true, MarkdownDescription: "Agent data directory (`/var/lib/hadron` with root or sudo)."},
					"service": schema.StringAttribute{Optional: true, Validators: []validator.String{stringvalidator.OneOf(serviceModes...)},
						MarkdownDescription: "How the agent is kept running: " + enumDescription(serviceModes) + " (systemd when it runs, else a supervised process)."},
					"check_gpu_driver": schema.BoolAttribute{Optional: true,
						MarkdownDescription: "Require `nvidia-smi` to see the GPUs before the runtime is installed (default: when the instance type has GPUs)."},
					"public_inference": schema.BoolAttribute{Optional: true, MarkdownDescription: "Serve inference without the token."},
					"idle_timeout": schema.StringAttribute{Optional: true, Validators: []validator.String{stringvalidator.RegexMatches(durationRE, `must be a duration such as "30m"`)},
						MarkdownDescription: "Stop the agent after this long without work (e.g. `2h`): no inference request, model load, job " +
							"or upload, and no job running; reads such as refreshes, health checks and metrics scrapes do not count. Systemd and the " +
							"supervisor leave it stopped, and the next apply starts it again. See `idle_action`."},
					"idle_action": schema.StringAttribute{Optional: true, Validators: []validator.String{stringvalidator.OneOf(idleActions...)},
						MarkdownDescription: "What `idle_timeout` does: " + enumDescription(idleActions) + ". `stop` (default) stops the agent; " +
							"the instance keeps running and billing. `poweroff` also powers the node off (needs root or passwordless sudo on it): " +
							"EC2 stops an EBS-backed instance, which ends its compute charges (a spot instance is terminated instead, and the next " +
							"apply replaces it); ECS stops the instance, whose charges depend on the " +
							"account's stop mode. The next plan shows the node `stopped`, and apply starts it again."},
				},
			},
			"gpu": schema.SingleNestedBlock{
				MarkdownDescription: "GPU requirement, resolved to an instance type when `instance_type` is not set.",
				PlanModifiers:       []planmodifier.Object{objectplanmodifier.RequiresReplace()},
				Attributes: map[string]schema.Attribute{
					"model": schema.StringAttribute{Optional: true,
						MarkdownDescription: "GPU model, e.g. `A10G`, `A100`, `H100`, `T4`, `A10`."},
					"count": schema.Int64Attribute{Optional: true, Validators: []validator.Int64{int64validator.AtLeast(1)},
						MarkdownDescription: "Number of GPUs (1 or more). Defaults to 1."},
					"min_memory_gb": schema.Int64Attribute{Optional: true, Validators: []validator.Int64{int64validator.AtLeast(1)},
						MarkdownDescription: "Least GPU memory per GPU, GiB."},
				},
			},
		},
	}
}

// enumDescription renders allowed values for a MarkdownDescription.
func enumDescription(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "`" + v + "`"
	}
	return strings.Join(q, ", ")
}

func (r *gpuInstanceResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if d := providerDataFrom(req.ProviderData, &resp.Diagnostics); d != nil {
		r.data = d
	}
}

// localUnsupported lists the attributes that make no sense for local nodes.
var localUnsupported = []string{"region", "zone", "zones", "instance_type", "spot_max_price", "image_id",
	"root_volume_size", "root_volume_type", "subnet_id", "security_group_ids", "allowed_cidrs", "ssh_public_key",
	"key_name", "associate_public_ip", "clouds", "regions", "placements", "max_hourly_price"}

func (r *gpuInstanceResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m gpuInstanceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.Cloud.IsUnknown() {
		return
	}
	if rt := m.Runtime; rt != nil && rt.IdleAction.ValueString() == agent.IdlePoweroff && rt.IdleTimeout.IsNull() {
		resp.Diagnostics.Append(attrError(path.Root("runtime").AtName("idle_action"), "Idle Action Without Idle Timeout",
			"idle_action = \"poweroff\" acts when the node has been idle for idle_timeout: set idle_timeout (for example \"2h\") too."))
	}
	c := m.effectiveCloud()
	if c != "local" {
		if !m.InstallRuntime.IsNull() && !m.InstallRuntime.ValueBool() || m.InstallRuntime.IsUnknown() {
			return
		}
		if m.SSH == nil || (m.SSH.PrivateKey.IsNull() && !m.SSH.UseAgent.ValueBool()) {
			resp.Diagnostics.Append(attrError(path.Root("ssh"), "Missing SSH Credentials",
				"Installing the runtime on a cloud node needs SSH: set ssh { private_key = file(\"~/.ssh/id_ed25519\") } "+
					"or ssh { use_agent = true }, or set install_runtime = false for a bare instance."))
		}
		return
	}
	for _, name := range localUnsupported {
		if v := m.attr(name); !v.IsNull() {
			resp.Diagnostics.Append(unsupportedForCloudDiag(path.Root(name), c))
		}
	}
	if m.Spot.ValueBool() {
		resp.Diagnostics.Append(unsupportedForCloudDiag(path.Root("spot"), c))
	}
	if m.GPU != nil {
		resp.Diagnostics.Append(attrError(path.Root("gpu"), "Attribute not supported for this cloud",
			"gpu is not supported with cloud = \"local\": local nodes use this machine's GPUs as they are (see "+
				"detected_gpu_count). Remove the gpu block, or choose cloud = \"aws\" or \"aliyun\"."))
	}
}

func (r *gpuInstanceResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan gpuInstanceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultInstanceCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	spec, diags := specFromModel(ctx, &plan, nil)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	inst, err := r.createOnCandidates(ctx, &plan, spec)
	if inst != nil && inst.ID != "" {
		resp.Diagnostics.Append(saveManaged(ctx, resp.Private, inst)...)
	}
	if err != nil && inst != nil && inst.ID != "" {
		// Launched but never confirmed running: keep it (tainted) so destroy removes it.
		applyInstance(&plan, inst)
		plan.Status = types.StringValue(inst.State)
		setUnknownsNull(&plan)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		resp.Diagnostics.Append(errorDiag("Instance Not Running", "Instance "+inst.ID+" was launched but did not reach running; "+
			"it is kept in state (tainted) and will be replaced on the next apply.", err))
		return
	}
	if err != nil {
		var ae *cloud.AttemptsError
		if errors.As(err, &ae) {
			resp.Diagnostics.Append(errorDiag("No Capacity For Instance",
				"Every candidate placement failed. Add zones, regions or clouds, allow other GPUs, or retry later.", err))
			return
		}
		resp.Diagnostics.Append(errorDiag("Error Creating Instance", "The cloud refused or failed the create.", err))
		return
	}
	applyInstance(&plan, inst)
	if !r.runsRuntime(&plan) {
		bareInstance(&plan, inst)
		setUnknownsNull(&plan)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	if err := r.startRuntime(ctx, &plan, inst); err != nil {
		// The instance exists: keep it in state (tainted) so nothing is orphaned.
		plan.Status = types.StringValue("agent_unreachable")
		setUnknownsNull(&plan)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		resp.Diagnostics.Append(errorDiag("Node Runtime Not Ready",
			"The instance "+inst.ID+" was created but its runtime did not come up; it is kept in state (tainted) and will be replaced on the next apply.", err))
		return
	}
	setUnknownsNull(&plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// startRuntime makes the node's agent answer: local nodes run it already,
// cloud nodes get it over SSH.
func (r *gpuInstanceResource) startRuntime(ctx context.Context, m *gpuInstanceModel, inst *cloud.Instance) error {
	if m.Cloud.ValueString() == "local" {
		return r.refreshNode(ctx, m)
	}
	return r.bootstrapNode(ctx, m, inst)
}

// createOnCandidates tries the pinned candidates in order, one cloud's run
// of candidates at a time, and reports every attempt when all fail.
func (r *gpuInstanceResource) createOnCandidates(ctx context.Context, plan *gpuInstanceModel, spec cloud.Spec) (*cloud.Instance, error) {
	cands := candidatesFromValue(plan.Candidates)
	if plan.Cloud.ValueString() == "local" || len(cands) == 0 {
		b, err := r.data.backend(ctx, "local")
		if err != nil {
			return nil, err
		}
		return b.Create(ctx, spec)
	}
	all := &cloud.AttemptsError{Cloud: "any"}
	for i := 0; i < len(cands); {
		j := i
		for j < len(cands) && cands[j].Cloud == cands[i].Cloud {
			j++
		}
		name := cands[i].Cloud
		spec.Candidates = nil
		for _, c := range cands[i:j] {
			spec.Candidates = append(spec.Candidates, c.cloudCandidate())
		}
		i = j
		b, err := r.data.backend(ctx, name)
		if err != nil {
			all.Attempts = append(all.Attempts, cloud.Attempt{Candidate: spec.Candidates[0], Code: "CloudNotConfigured", Message: err.Error()})
			continue
		}
		tflog.Info(ctx, "creating instance", map[string]any{"cloud": name, "candidates": len(spec.Candidates), "name": spec.Name})
		inst, err := b.Create(ctx, spec)
		var ae *cloud.AttemptsError
		switch {
		case err == nil:
			inst.Cloud = name
			inst.Attempts = append(all.Attempts, inst.Attempts...)
			for _, c := range cands {
				if c.Cloud == name && c.InstanceType == inst.InstanceType && (c.Zone == "" || c.Zone == inst.Zone) && (c.Region == "" || c.Region == inst.Region) {
					plan.HourlyPrice = types.Float64Value(c.HourlyPrice)
					break
				}
			}
			return inst, nil
		case errors.As(err, &ae):
			all.Attempts = append(all.Attempts, ae.Attempts...)
			tflog.Warn(ctx, "no capacity in this cloud; trying the next", map[string]any{"cloud": name, "error": err.Error()})
		default:
			if inst != nil {
				inst.Cloud = name
			}
			return inst, err // an instance may exist even so
		}
	}
	return nil, all
}

// runsRuntime reports whether the node runs hadrond (local nodes always do).
func (r *gpuInstanceResource) runsRuntime(m *gpuInstanceModel) bool {
	return m.Cloud.ValueString() == "local" || m.InstallRuntime.ValueBool()
}

// bareInstance fills the runtime attributes of an instance without hadrond.
func bareInstance(m *gpuInstanceModel, inst *cloud.Instance) {
	m.Status = types.StringValue(inst.State)
	for _, s := range []*types.String{&m.Endpoint, &m.Token, &m.Hostname, &m.DetectedGPUModel, &m.RuntimeVersion, &m.ORTVersion} {
		*s = types.StringValue("")
	}
	for _, i := range []*types.Int64{&m.VCPUs, &m.MemoryMB, &m.DetectedGPUCount} {
		*i = types.Int64Value(0)
	}
}

// refreshNode asks the node's agent what it is and fills the model.
func (r *gpuInstanceResource) refreshNode(ctx context.Context, m *gpuInstanceModel) error {
	if m.Endpoint.ValueString() == "" {
		return fmt.Errorf("node %s has no agent endpoint", m.ID.ValueString())
	}
	c := agentclient.New(m.Endpoint.ValueString(), m.Token.ValueString())
	if m.Cloud.ValueString() != "local" {
		conn, ok := r.data.nodes.get(m.ID.ValueString())
		if !ok {
			return fmt.Errorf("node %s is not connected", m.ID.ValueString())
		}
		c = conn.client
	}
	n, err := c.Node(ctx)
	if err != nil {
		return err
	}
	applyNode(m, n)
	return nil
}

// setUnknownsNull replaces values still unknown after an apply with nulls, as
// Terraform requires of state.
func setUnknownsNull(m *gpuInstanceModel) {
	for _, s := range []*types.String{&m.Region, &m.Zone, &m.InstanceType, &m.ImageID, &m.Endpoint, &m.Token, &m.PublicIP,
		&m.PrivateIP, &m.Hostname, &m.DetectedGPUModel, &m.RuntimeVersion, &m.ORTVersion, &m.Status, &m.HostKeyFingerprint} {
		if s.IsUnknown() {
			*s = types.StringNull()
		}
	}
	if m.Cloud.IsUnknown() {
		m.Cloud = types.StringNull()
	}
	if m.HourlyPrice.IsUnknown() {
		m.HourlyPrice = types.Float64Null()
	}
	if m.Candidates.IsUnknown() {
		m.Candidates = candidatesValue(nil)
	}
	for _, i := range []*types.Int64{&m.VCPUs, &m.MemoryMB, &m.DetectedGPUCount} {
		if i.IsUnknown() {
			*i = types.Int64Null()
		}
	}
}

func (r *gpuInstanceResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state gpuInstanceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Read(ctx, defaultInstanceReadTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := r.data.backendIn(ctx, state.Cloud.ValueString(), state.Region.ValueString())
	if err != nil {
		resp.Diagnostics.Append(errorDiag("Cloud Not Available", "Hadron could not set up the "+state.Cloud.ValueString()+" cloud.", err))
		return
	}
	inst, err := b.Get(ctx, state.ID.ValueString())
	if errors.Is(err, cloud.ErrNotFound) {
		if state.Name.IsNull() { // an import of an id that does not exist
			resp.State.RemoveResource(ctx)
			return
		}
		// A reclaimed or externally deleted node stays in state as gone, so
		// that the next apply replaces it and a destroy still runs Delete,
		// which removes what Hadron made for it (security group, key pair).
		tflog.Warn(ctx, "node is gone; planning its replacement", map[string]any{"id": state.ID.ValueString(), "reason": err.Error()})
		r.data.nodes.drop(state.ID.ValueString())
		state.Status = types.StringValue(statusGone)
		resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(errorDiag("Error Reading Instance", "Hadron could not read instance "+state.ID.ValueString()+".", err))
		return
	}
	resp.Diagnostics.Append(saveManaged(ctx, resp.Private, inst)...)
	applyInstance(&state, inst)
	if state.Candidates.IsNull() || state.Candidates.IsUnknown() {
		r.data.landedCandidates(&state, inst)
	}
	if state.InstallRuntime.IsNull() {
		// Imported: local nodes run the runtime; for a cloud node the token is
		// unknown, so it counts as bare until an apply installs the runtime
		// (with a new token) if the configuration asks for it.
		state.InstallRuntime = types.BoolValue(state.Cloud.ValueString() == "local")
	}
	if !r.runsRuntime(&state) {
		bareInstance(&state, inst)
		setUnknownsNull(&state)
		resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
		return
	}
	if state.Cloud.ValueString() != "local" && inst.State != "running" {
		// Stopped (or starting, or stopping) out of band: there is no
		// agent to ask. A stopped node is started by the next apply (see
		// planStart); one in transition is read again next time.
		r.data.nodes.drop(state.ID.ValueString())
		state.Status = types.StringValue(inst.State)
		setUnknownsNull(&state)
		resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
		if inst.State == statusStopped {
			resp.Diagnostics.AddWarning("Instance Stopped",
				fmt.Sprintf("Instance %s was stopped outside Terraform: the next apply starts it and brings its runtime back.", state.ID.ValueString()))
		}
		return
	}
	var nerr error
	if state.Cloud.ValueString() == "local" {
		nerr = r.refreshNode(ctx, &state)
	} else {
		nerr = r.connectNode(ctx, &state, inst)
	}
	if nerr != nil {
		var hk *bootstrap.HostKeyMismatchError
		if errors.As(nerr, &hk) {
			resp.Diagnostics.Append(errorDiag("SSH Host Key Changed",
				"The SSH host key of "+state.ID.ValueString()+" is not the one recorded in state. If the node was rebuilt on purpose, "+
					"taint or replace the resource; otherwise someone may be intercepting the connection.", nerr))
			return
		}
		tflog.Warn(ctx, "node agent did not answer", map[string]any{"id": state.ID.ValueString(), "error": nerr.Error()})
		state.Status = types.StringValue("agent_unreachable")
		// An unknown runtime plans an in-place re-install (see ModifyPlan).
		state.RuntimeVersion = types.StringValue("")
	}
	setUnknownsNull(&state)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *gpuInstanceResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state gpuInstanceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, defaultInstanceUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := r.data.backendIn(ctx, state.Cloud.ValueString(), state.Region.ValueString())
	if err != nil {
		resp.Diagnostics.Append(errorDiag("Cloud Not Available", "Hadron could not set up the "+state.Cloud.ValueString()+" cloud.", err))
		return
	}
	if !plan.Tags.Equal(state.Tags) {
		tagger, ok := b.(cloud.Tagger)
		if !ok {
			resp.Diagnostics.Append(attrError(path.Root("tags"), "Tags Cannot Be Changed In Place",
				"The "+b.Name()+" cloud does not support changing tags of an existing instance."))
			return
		}
		tags, d := userTags(ctx, plan.Tags)
		resp.Diagnostics.Append(d...)
		if resp.Diagnostics.HasError() {
			return
		}
		if err := tagger.SetTags(ctx, state.ID.ValueString(), cloud.Tags(cloud.Spec{Name: state.Name.ValueString(), Tags: tags})); err != nil {
			resp.Diagnostics.Append(errorDiag("Error Updating Tags", "Hadron could not change the tags of "+state.ID.ValueString()+".", err))
			return
		}
	}
	// Everything else that can change is replaced; copy the computed values.
	plan.ID, plan.Endpoint, plan.Token, plan.HostKeyFingerprint = state.ID, state.Endpoint, state.Token, state.HostKeyFingerprint
	var started *cloud.Instance
	if state.Status.ValueString() == statusStopped && state.Cloud.ValueString() != "local" {
		starter, ok := b.(cloud.Starter)
		if !ok {
			resp.Diagnostics.Append(errorDiag("Instance Not Started", "The "+b.Name()+" cloud cannot start "+state.ID.ValueString()+"; start it there and apply again.", nil))
			return
		}
		if started, err = starter.Start(ctx, state.ID.ValueString()); err != nil {
			resp.Diagnostics.Append(errorDiag("Instance Not Started", "Hadron could not start "+state.ID.ValueString()+", which was stopped outside Terraform.", err))
			return
		}
		applyInstance(&plan, started)
	}
	if !r.runsRuntime(&plan) {
		plan.Status = state.Status
		if started != nil {
			bareInstance(&plan, started)
		}
		setUnknownsNull(&plan)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	if lb, ok := b.(*local.Backend); ok && !plan.RuntimeVersion.Equal(state.RuntimeVersion) {
		// A new hadrond next to the provider: restart the node on it.
		if _, err := lb.Restart(ctx, state.ID.ValueString()); err != nil {
			resp.Diagnostics.Append(errorDiag("Runtime Not Upgraded", "Hadron could not restart "+state.ID.ValueString()+" on the new runtime.", err))
			return
		}
		if err := r.refreshNode(ctx, &plan); err != nil {
			plan.Status = types.StringValue("agent_unreachable")
		}
	} else if plan.Cloud.ValueString() != "local" && (started != nil || !plan.RuntimeVersion.Equal(state.RuntimeVersion) || !sameRuntimeBlock(plan.Runtime, state.Runtime)) {
		// A runtime upgrade, a dead agent, install_runtime turned on, a
		// changed runtime block or a node just started (its supervisor does
		// not outlive a stop): install again, which keeps what is in place
		// and reconfigures or restarts what is not.
		inst, err := b.Get(ctx, state.ID.ValueString())
		if err == nil {
			err = r.bootstrapNode(ctx, &plan, inst)
		}
		if err != nil {
			resp.Diagnostics.Append(errorDiag("Runtime Not Installed", "Hadron could not install the runtime on "+state.ID.ValueString()+".", err))
			return
		}
	} else if err := r.refreshNode(ctx, &plan); err != nil {
		plan.Status = types.StringValue("agent_unreachable")
	}
	setUnknownsNull(&plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *gpuInstanceResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state gpuInstanceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultInstanceDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := r.data.backendIn(ctx, state.Cloud.ValueString(), state.Region.ValueString())
	if err != nil {
		resp.Diagnostics.Append(errorDiag("Cloud Not Available", "Hadron could not set up the "+state.Cloud.ValueString()+" cloud.", err))
		return
	}
	r.uninstallRuntime(ctx, &state)
	r.data.nodes.drop(state.ID.ValueString())
	if err := b.Delete(ctx, state.ID.ValueString()); err != nil && !errors.Is(err, cloud.ErrNotFound) {
		resp.Diagnostics.Append(errorDiag("Error Deleting Instance", "Hadron could not delete instance "+state.ID.ValueString()+
			"; it may still exist and be billed. Run terraform destroy again, or delete it in the cloud console.", err))
		return
	}
	// Delete finds the security group and key pair Hadron made through the
	// instance; one that has left the cloud's API takes them from state.
	m, diags := loadManaged(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if rm, ok := b.(cloud.ManagedRemover); ok && (m.SecurityGroupID != "" || m.KeyName != "") {
		if err := rm.RemoveManaged(ctx, state.ID.ValueString(), m.SecurityGroupID, m.KeyName); err != nil {
			resp.Diagnostics.Append(errorDiag("Error Deleting Security Group Or Key Pair",
				fmt.Sprintf("Instance %s is deleted, but Hadron could not delete the security group %q or key pair %q it made for it. "+
					"Run terraform destroy again, or delete them in the cloud console.", state.ID.ValueString(), m.SecurityGroupID, m.KeyName), err))
		}
	}
}

// managedPrivate is what private state keeps of the security group and key
// pair Hadron made for an instance, so that they can be deleted even when
// the instance has left the cloud's API.
type managedPrivate struct {
	SecurityGroupID string `json:"security_group_id,omitempty"`
	KeyName         string `json:"key_name,omitempty"`
}

const managedPrivateKey = "managed"

func saveManaged(ctx context.Context, p interface {
	SetKey(context.Context, string, []byte) diag.Diagnostics
}, inst *cloud.Instance) diag.Diagnostics {
	if p == nil || (inst.ManagedSecurityGroupID == "" && inst.ManagedKeyName == "") {
		return nil
	}
	b, _ := json.Marshal(managedPrivate{SecurityGroupID: inst.ManagedSecurityGroupID, KeyName: inst.ManagedKeyName})
	return p.SetKey(ctx, managedPrivateKey, b)
}

func loadManaged(ctx context.Context, p interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}) (managedPrivate, diag.Diagnostics) {
	var m managedPrivate
	if p == nil {
		return m, nil
	}
	b, diags := p.GetKey(ctx, managedPrivateKey)
	if len(b) > 0 {
		_ = json.Unmarshal(b, &m)
	}
	return m, diags
}

func (r *gpuInstanceResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	cloudName, id, err := parseImportID(req.ID, r.data.cloudConfigured)
	if err != nil {
		resp.Diagnostics.Append(errorDiag("Invalid Import ID", "Import ids are local-<hex> for local nodes, or cloud:instance-id (aws:i-0abc…, aliyun:i-bp1…).", err))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("cloud"), cloudName)...)
}
