package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
)

var (
	_ resource.Resource                   = (*modelEndpointResource)(nil)
	_ resource.ResourceWithConfigure      = (*modelEndpointResource)(nil)
	_ resource.ResourceWithImportState    = (*modelEndpointResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*modelEndpointResource)(nil)
	_ resource.ResourceWithValidateConfig = (*modelEndpointResource)(nil)
)

const (
	defaultEndpointCreateTimeout = 20 * time.Minute
	defaultEndpointReadTimeout   = 2 * time.Minute
	defaultEndpointUpdateTimeout = 30 * time.Minute
	defaultEndpointDeleteTimeout = 10 * time.Minute
)

// NewModelEndpointResource returns the hadron_model_endpoint resource.
func NewModelEndpointResource() resource.Resource { return &modelEndpointResource{} }

type modelEndpointResource struct {
	data *providerData
}

func (r *modelEndpointResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_model_endpoint"
}

func (r *modelEndpointResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "An ONNX model served over the Open Inference Protocol v2 by the agents of one or more " +
			"`hadron_gpu_instance` nodes. The endpoint is keyed by the model's sha256: a new digest is an in-place update " +
			"that rolls node by node (load, wait ready, switch), and rolls the switched nodes back if one fails. Refresh " +
			"asks every node what it serves, so a model swapped or unloaded out of band shows up in the plan.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
				MarkdownDescription: "The model name."},
			"name": schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators: []validator.String{stringvalidator.RegexMatches(modelNameRE,
					"must be 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit")},
				MarkdownDescription: "Model name in the inference URL (`/v2/models/<name>/infer`)."},
			"instance_ids": schema.ListAttribute{Required: true, ElementType: types.StringType,
				Validators:          []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues()},
				MarkdownDescription: "Nodes (`hadron_gpu_instance` ids) that serve the model, updated in this order."},
			"source": schema.StringAttribute{Required: true,
				MarkdownDescription: "The ONNX model: a file path on the machine running Terraform, a `file://` URL, an " +
					"`http(s)://` URL the nodes fetch, or a training job's `model_uri`."},
			"sha256": schema.StringAttribute{Optional: true, Computed: true,
				Validators: []validator.String{stringvalidator.RegexMatches(sha256RE, "must be 64 lower-case hex digits")},
				MarkdownDescription: "Hex sha256 of the model. Computed from a local file when unset; required for URLs. " +
					"Nodes refuse a model whose digest differs. A change rolls out in place."},
			"max_batch_size": schema.Int64Attribute{Optional: true, Validators: []validator.Int64{int64validator.AtLeast(0)},
				MarkdownDescription: "Dynamic batching: requests are joined along the first dimension up to this many rows. 0 or 1 disables it."},
			"max_queue_delay": schema.StringAttribute{Optional: true,
				Validators: []validator.String{stringvalidator.RegexMatches(durationRE, `must be a duration such as "2ms" or "500us"`)},
				MarkdownDescription: "The longest a request waits in the queue for others to join its batch, e.g. `2ms` " +
					"(Triton's `max_queue_delay`). A batch waits only while more requests are being received, so a lone client pays none of it."},
			"instances_per_node": schema.Int64Attribute{Optional: true, Validators: []validator.Int64{int64validator.AtLeast(1)},
				MarkdownDescription: "Concurrent executions of the model on each node. Defaults to 1."},
			"execution_provider": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("auto"),
				Validators: []validator.String{stringvalidator.OneOf(executionProviders...)},
				MarkdownDescription: "ONNX Runtime execution provider: " + enumDescription(executionProviders) +
					". `auto` uses CUDA when the node has it; the provider actually used is in `execution_provider_in_use`."},
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Read: true, Update: true, Delete: true}),

			"version": schema.StringAttribute{Computed: true, MarkdownDescription: "Version name on the nodes: the first 12 hex digits of `sha256`."},
			"urls": schema.MapAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Inference URL per instance id."},
			"infer_url": schema.StringAttribute{Computed: true, MarkdownDescription: "Inference URL on the first node."},
			"inputs": schema.ListAttribute{Computed: true, ElementType: tensorSpecType,
				MarkdownDescription: "The model's inputs: name, datatype and shape (-1 for dynamic dimensions)."},
			"outputs": schema.ListAttribute{Computed: true, ElementType: tensorSpecType,
				MarkdownDescription: "The model's outputs: name, datatype and shape."},
			"execution_provider_in_use": schema.StringAttribute{Computed: true,
				MarkdownDescription: "Execution provider the nodes actually run (`cpu` or `cuda`): never a silent fallback."},
			"serving_sha256": schema.MapAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Digest each node serves, as last read (empty when the node serves nothing)."},
		},
	}
}

func (r *modelEndpointResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if d := providerDataFrom(req.ProviderData, &resp.Diagnostics); d != nil {
		r.data = d
	}
}

func (r *modelEndpointResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m modelEndpointModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.Source.IsUnknown() || m.Source.IsNull() {
		return
	}
	kind, _, err := sourceKind(m.Source.ValueString())
	if err != nil {
		resp.Diagnostics.Append(attrError(path.Root("source"), "Invalid Model Source", err.Error()))
		return
	}
	if kind == "url" && m.SHA256.IsNull() {
		resp.Diagnostics.Append(attrError(path.Root("sha256"), "Missing Model Digest",
			"sha256 is required when source is a URL, so that nodes can refuse a model that is not the one reviewed."))
	}
}

// ModifyPlan computes the digest of a local model file at plan time, so that
// a changed file shows up in the plan as a digest change.
func (r *modelEndpointResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan, config modelEndpointModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !config.SHA256.IsNull() || plan.Source.IsUnknown() {
		return
	}
	kind, loc, err := sourceKind(plan.Source.ValueString())
	if err != nil || kind != "file" {
		return
	}
	digest, err := fileSHA256(loc)
	if err != nil {
		resp.Diagnostics.Append(attrError(path.Root("source"), "Model File Not Readable",
			fmt.Sprintf("Hadron hashes a local model file at plan time: %v. Check the path, or set sha256.", err)))
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("sha256"), digest)...)
}

func (r *modelEndpointResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan modelEndpointModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultEndpointCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := r.resolveDigest(&plan); err != nil {
		resp.Diagnostics.Append(attrError(path.Root("sha256"), "Missing Model Digest", err.Error()))
		return
	}
	ids, d := stringList(ctx, plan.InstanceIDs)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	lr, err := plan.loadRequest()
	if err != nil {
		resp.Diagnostics.Append(attrError(path.Root("source"), "Invalid Model Source", err.Error()))
		return
	}
	var done []string
	for _, id := range ids {
		if _, err := r.load(ctx, id, plan.Name.ValueString(), lr); err != nil {
			for _, prev := range done {
				r.unload(ctx, prev, plan.Name.ValueString())
			}
			resp.Diagnostics.Append(errorDiag("Model Not Served",
				fmt.Sprintf("Node %s could not serve model %q; it was removed again from the %d node(s) that had loaded it.",
					id, plan.Name.ValueString(), len(done)), err))
			return
		}
		done = append(done, id)
	}
	plan.ID = plan.Name
	resp.Diagnostics.Append(r.readInto(ctx, &plan, ids)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// resolveDigest fills sha256 from a local file when the plan left it unknown
// (the source was known only after apply, e.g. a training job's artifact).
func (r *modelEndpointResource) resolveDigest(m *modelEndpointModel) error {
	if !m.SHA256.IsUnknown() && !m.SHA256.IsNull() {
		return nil
	}
	kind, loc, err := sourceKind(m.Source.ValueString())
	if err != nil {
		return err
	}
	if kind != "file" {
		return errors.New("sha256 is required when source is a URL")
	}
	digest, err := fileSHA256(loc)
	if err != nil {
		return fmt.Errorf("hashing model file: %w", err)
	}
	m.SHA256 = types.StringValue(digest)
	return nil
}

// load asks one node to load (or swap in) the model and checks the digest.
func (r *modelEndpointResource) load(ctx context.Context, instanceID, name string, lr agentclient.LoadRequest) (*agentclient.ModelStatus, error) {
	c, err := r.data.agentFor(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	tflog.Info(ctx, "loading model", map[string]any{"node": instanceID, "model": name, "version": lr.Version})
	st, err := c.LoadModel(ctx, name, lr)
	if err != nil {
		return nil, err
	}
	if st.SHA256 != lr.SHA256 || st.State != agentclient.ModelReady {
		return nil, fmt.Errorf("node %s serves %s in state %s after the load, want %s READY", instanceID, st.SHA256, st.State, lr.SHA256)
	}
	return st, nil
}

func (r *modelEndpointResource) unload(ctx context.Context, instanceID, name string) {
	c, err := r.data.agentFor(ctx, instanceID)
	if err == nil {
		err = c.UnloadModel(ctx, name)
	}
	if err != nil {
		tflog.Warn(ctx, "could not unload model", map[string]any{"node": instanceID, "model": name, "error": err.Error()})
	}
}

// readInto asks each node what it serves and fills the computed attributes.
// The sha256 attribute becomes the digest every node serves, or "" when they
// disagree or a node serves nothing: that drift plans an update.
func (r *modelEndpointResource) readInto(ctx context.Context, m *modelEndpointModel, ids []string) (diags diagList) {
	name := m.Name.ValueString()
	urls := map[string]string{}
	serving := map[string]string{}
	var first *agentclient.ModelStatus
	digest, agreed := "", true
	for i, id := range ids {
		c, err := r.data.agentFor(ctx, id)
		var st *agentclient.ModelStatus
		ok := false
		if err == nil {
			st, ok, err = c.Model(ctx, name)
		}
		if err != nil {
			tflog.Warn(ctx, "node did not answer about the model", map[string]any{"node": id, "error": err.Error()})
		}
		if err == nil {
			urls[id] = inferURL(c.BaseURL, name)
		}
		if !ok || st.State != agentclient.ModelReady {
			serving[id] = ""
			agreed = false
			continue
		}
		serving[id] = st.SHA256
		if first == nil {
			first = st
		}
		if i == 0 || digest == "" {
			digest = st.SHA256
		}
		if st.SHA256 != digest {
			agreed = false
		}
	}
	if !agreed {
		digest = ""
	}
	m.SHA256 = types.StringValue(digest)
	m.Version = types.StringValue(modelVersion(digest))
	m.URLs = stringMapValue(urls)
	m.InferURL = types.StringValue(urls[ids[0]])
	m.ServingSHA256s = stringMapValue(serving)
	m.Inputs = tensorSpecsValue(nil)
	m.Outputs = tensorSpecsValue(nil)
	m.ProviderInUse = types.StringValue("")
	if first != nil {
		if first.Signature != nil {
			m.Inputs = tensorSpecsValue(first.Signature.Inputs)
			m.Outputs = tensorSpecsValue(first.Signature.Outputs)
		}
		m.ProviderInUse = types.StringValue(first.ExecutionProvider)
	}
	return nil
}

func (r *modelEndpointResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state modelEndpointModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Read(ctx, defaultEndpointReadTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ids, d := stringList(ctx, state.InstanceIDs)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.readInto(ctx, &state, ids)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update rolls the new model (or configuration) out node by node: load, wait
// ready, switch, next. If a node fails, the nodes already switched go back to
// the previous version and the apply fails with the reason.
func (r *modelEndpointResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state modelEndpointModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, defaultEndpointUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := r.resolveDigest(&plan); err != nil {
		resp.Diagnostics.Append(attrError(path.Root("sha256"), "Missing Model Digest", err.Error()))
		return
	}
	newIDs, d := stringList(ctx, plan.InstanceIDs)
	resp.Diagnostics.Append(d...)
	oldIDs, d := stringList(ctx, state.InstanceIDs)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	next, err := plan.loadRequest()
	if err != nil {
		resp.Diagnostics.Append(attrError(path.Root("source"), "Invalid Model Source", err.Error()))
		return
	}
	prev, prevErr := r.previousRequest(ctx, &state)
	name := plan.Name.ValueString()
	wasServing := map[string]bool{}
	for _, id := range oldIDs {
		wasServing[id] = true
	}
	var switched []string
	for _, id := range newIDs {
		if _, err := r.load(ctx, id, name, next); err != nil {
			rolled := r.rollBack(ctx, name, switched, wasServing, prev, prevErr)
			resp.Diagnostics.Append(errorDiag("Rolling Update Failed",
				fmt.Sprintf("Node %s could not serve version %s of model %q. %s", id, next.Version, name, rolled), err))
			return
		}
		switched = append(switched, id)
	}
	for _, id := range oldIDs {
		if !contains(newIDs, id) {
			r.unload(ctx, id, name)
		}
	}
	plan.ID = plan.Name
	resp.Diagnostics.Append(r.readInto(ctx, &plan, newIDs)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// previousRequest rebuilds the load request of the version in state, for
// roll-backs. A version that drifted away has no digest to go back to.
func (r *modelEndpointResource) previousRequest(ctx context.Context, state *modelEndpointModel) (agentclient.LoadRequest, error) {
	if state.SHA256.ValueString() == "" {
		return agentclient.LoadRequest{}, errors.New("the previous version was not serving everywhere, so there is nothing to roll back to")
	}
	return state.loadRequest()
}

// rollBack returns switched nodes to the previous version (or removes the
// model from nodes that did not serve it before) and says what it did.
func (r *modelEndpointResource) rollBack(ctx context.Context, name string, switched []string, wasServing map[string]bool,
	prev agentclient.LoadRequest, prevErr error) string {
	if len(switched) == 0 {
		return "No node had switched; every node still serves the previous version."
	}
	var failed []string
	for _, id := range switched {
		if !wasServing[id] {
			r.unload(ctx, id, name)
			continue
		}
		if prevErr != nil {
			failed = append(failed, id+" ("+prevErr.Error()+")")
			continue
		}
		if _, err := r.load(ctx, id, name, prev); err != nil {
			failed = append(failed, id+" ("+err.Error()+")")
		}
	}
	if len(failed) > 0 {
		return fmt.Sprintf("Rolling back failed on: %s.", strings.Join(failed, ", "))
	}
	return fmt.Sprintf("The %d node(s) already switched were rolled back to version %s.", len(switched), prev.Version)
}

func (r *modelEndpointResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state modelEndpointModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultEndpointDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ids, d := stringList(ctx, state.InstanceIDs)
	resp.Diagnostics.Append(d...)
	for _, id := range ids {
		r.unload(ctx, id, state.Name.ValueString())
	}
}

// ImportState takes "name@instance-id[,instance-id...]".
func (r *modelEndpointResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	name, nodes, ok := strings.Cut(req.ID, "@")
	if !ok || name == "" || nodes == "" {
		resp.Diagnostics.Append(errorDiag("Invalid Import ID",
			fmt.Sprintf("Import id %q must be model-name@instance-id[,instance-id...].", req.ID), nil))
		return
	}
	ids := strings.Split(nodes, ",")
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("instance_ids"), ids)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("execution_provider"), "auto")...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
