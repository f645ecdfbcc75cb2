package provider

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
)

var (
	_ resource.Resource                   = (*trainingJobResource)(nil)
	_ resource.ResourceWithConfigure      = (*trainingJobResource)(nil)
	_ resource.ResourceWithImportState    = (*trainingJobResource)(nil)
	_ resource.ResourceWithValidateConfig = (*trainingJobResource)(nil)
)

const (
	defaultJobCreateTimeout = 6 * time.Hour
	defaultJobReadTimeout   = 2 * time.Minute
	defaultJobDeleteTimeout = 10 * time.Minute
	jobPollInterval         = time.Second
	defaultMasterPort       = 29500
)

// NewTrainingJobResource returns the hadron_training_job resource.
func NewTrainingJobResource() resource.Resource { return &trainingJobResource{} }

type trainingJobResource struct {
	data *providerData
}

func (r *trainingJobResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_training_job"
}

func (r *trainingJobResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replaceList := []planmodifier.List{listplanmodifier.RequiresReplace()}
	optInt := func(desc string, v ...validator.Int64) schema.Int64Attribute {
		return schema.Int64Attribute{Optional: true, MarkdownDescription: desc, Validators: v}
	}
	optStr := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, MarkdownDescription: desc}
	}
	intList := func(desc string) schema.ListAttribute {
		return schema.ListAttribute{Optional: true, ElementType: types.Int64Type, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A training job on `hadron_gpu_instance` nodes: the built-in engine (a Keras-style layer list " +
			"trained in Go, exported to ONNX) or your own `command` (with the torchrun environment on every node). Apply " +
			"waits for the job (progress in `TF_LOG=info`) and outputs the model's URI and sha256 for a " +
			"`hadron_model_endpoint`. Any change to the job is a new job.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
				MarkdownDescription: "Job key: the name and a digest of the spec."},
			"name": schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:          []validator.String{stringvalidator.RegexMatches(nameRE, "must be 1 to 63 lower-case letters, digits and hyphens")},
				MarkdownDescription: "Job name."},
			"instance_ids": schema.ListAttribute{Required: true, ElementType: types.StringType, PlanModifiers: replaceList,
				Validators:          []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues()},
				MarkdownDescription: "Nodes the job runs on. The built-in engine uses exactly one; a `command` runs on each, rank 0 first."},
			"engine": schema.SingleNestedAttribute{Optional: true,
				PlanModifiers:       []planmodifier.Object{objectplanmodifier.RequiresReplace()},
				Validators:          []validator.Object{objectvalidator.ExactlyOneOf(path.MatchRoot("engine"), path.MatchRoot("command")), objectvalidator.AlsoRequires(path.MatchRoot("dataset"))},
				MarkdownDescription: "The built-in training engine: a Keras Sequential-style model trained on the node.",
				Attributes: map[string]schema.Attribute{
					"input_shape": intList("Input shape: height, width, channels (e.g. `[28, 28, 1]`), or a feature count."),
					"layers": schema.ListNestedAttribute{Required: true,
						MarkdownDescription: "Layers in order: `conv2d`, `max_pooling2d`, `dense`, `flatten`, `dropout`, `relu`, `sigmoid`, `softmax`.",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"type":        schema.StringAttribute{Required: true, MarkdownDescription: "Layer type (Keras spellings such as `Conv2D` work too)."},
							"filters":     optInt("conv2d: number of filters.", int64validator.AtLeast(1)),
							"kernel_size": intList("conv2d: kernel height and width, e.g. `[3, 3]`."),
							"strides":     intList("conv2d and max_pooling2d: strides."),
							"padding":     optStr("conv2d: `valid` (default) or `same`."),
							"units":       optInt("dense: output units.", int64validator.AtLeast(1)),
							"activation":  optStr("conv2d and dense: `relu`, `sigmoid`, `softmax` or `linear` (default)."),
							"initializer": optStr("conv2d and dense: `he_uniform`, `he_normal`, `glorot_uniform` or `glorot_normal`."),
							"pool_size":   intList("max_pooling2d: pool height and width, e.g. `[2, 2]`."),
							"rate":        schema.Float64Attribute{Optional: true, MarkdownDescription: "dropout: fraction dropped.", Validators: []validator.Float64{float64validator.Between(0, 1)}},
							"input_shape": intList("First layer only: the input shape, as in Keras."),
						}},
					},
					"loss": schema.StringAttribute{Required: true,
						MarkdownDescription: "`sparse_categorical_crossentropy` (softmax cross-entropy on logits), `binary_crossentropy` or `mse`."},
					"optimizer": schema.SingleNestedAttribute{Optional: true, MarkdownDescription: "Optimizer; Adam by default.",
						Attributes: map[string]schema.Attribute{
							"type":          optStr("`adam` (default) or `sgd`."),
							"learning_rate": schema.Float64Attribute{Optional: true, MarkdownDescription: "Learning rate (Adam 0.001, SGD 0.01 by default)."},
							"momentum":      schema.Float64Attribute{Optional: true, MarkdownDescription: "SGD momentum."},
							"beta1":         schema.Float64Attribute{Optional: true, MarkdownDescription: "Adam beta1 (0.9)."},
							"beta2":         schema.Float64Attribute{Optional: true, MarkdownDescription: "Adam beta2 (0.999)."},
							"epsilon":       schema.Float64Attribute{Optional: true, MarkdownDescription: "Adam epsilon (1e-7)."},
						}},
					"epochs":                 schema.Int64Attribute{Required: true, MarkdownDescription: "Epochs to train.", Validators: []validator.Int64{int64validator.AtLeast(1)}},
					"batch_size":             optInt("Batch size (32).", int64validator.AtLeast(1)),
					"validation_split":       schema.Float64Attribute{Optional: true, MarkdownDescription: "Fraction of the training data held out for validation.", Validators: []validator.Float64{float64validator.Between(0, 0.99)}},
					"seed":                   optInt("Seed for initialisation, split, shuffling and dropout: the same seed gives the same model."),
					"threads":                optInt("Worker threads (all CPUs by default).", int64validator.AtLeast(1)),
					"checkpoint_every_steps": optInt("Extra checkpoints inside epochs (0: at epoch ends only).", int64validator.AtLeast(0)),
				},
			},
			"dataset": schema.SingleNestedAttribute{Optional: true,
				PlanModifiers:       []planmodifier.Object{objectplanmodifier.RequiresReplace()},
				MarkdownDescription: "Training data for the engine.",
				Attributes: map[string]schema.Attribute{
					"format": schema.StringAttribute{Required: true, Validators: []validator.String{stringvalidator.OneOf("idx", "csv", "image_folder")},
						MarkdownDescription: "`idx` (MNIST format, gzipped or not), `csv` (label column plus features) or `image_folder` (one subfolder per class)."},
					"location": schema.StringAttribute{Optional: true, Validators: []validator.String{stringvalidator.OneOf(datasetLocations...)},
						MarkdownDescription: "Where the paths point: `node` (already on the node, the default), `upload` (files on " +
							"the machine running Terraform, uploaded to the node) or `url` (http(s) URLs the node fetches)."},
					"train_images": optStr("idx: training images."),
					"train_labels": optStr("idx: training labels."),
					"test_images":  optStr("idx: test images."),
					"test_labels":  optStr("idx: test labels."),
					"train":        optStr("csv: training file; image_folder: training directory."),
					"test":         optStr("csv: test file; image_folder: test directory."),
					"label_column": optInt("csv: column (from 0) holding the label.", int64validator.AtLeast(0)),
					"rescale":      schema.Float64Attribute{Optional: true, MarkdownDescription: "Factor applied to every input value, e.g. `1/255`."},
					"limit":        optInt("Use only the first N training samples (0: all).", int64validator.AtLeast(0)),
					"test_limit":   optInt("Use only the first N test samples (0: all).", int64validator.AtLeast(0)),
					"sha256": schema.MapAttribute{Optional: true, ElementType: types.StringType,
						MarkdownDescription: "Expected sha256 per file attribute (e.g. `{ train_images = \"…\" }`), checked on the node for uploads and URLs."},
				},
			},
			"command": schema.SingleNestedAttribute{Optional: true,
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
				MarkdownDescription: "Your own program, run on every node with `MASTER_ADDR`, `MASTER_PORT`, `NODE_RANK`, `NNODES`, " +
					"`WORLD_SIZE` (one process per node) and `HADRON_NODE_IPS`, so `torchrun` and PyTorch DDP work across the nodes. " +
					"Rank 0 may write `model.onnx` into `$HADRON_OUTPUT_DIR` to make it the job's model.",
				Attributes: map[string]schema.Attribute{
					"argv": schema.ListAttribute{Required: true, ElementType: types.StringType, Validators: []validator.List{listvalidator.SizeAtLeast(1)},
						MarkdownDescription: "Program and arguments."},
					"env":         schema.MapAttribute{Optional: true, ElementType: types.StringType, MarkdownDescription: "Extra environment variables."},
					"working_dir": optStr("Working directory on the node; relative paths are inside the uploaded directory."),
					"upload_dir":  optStr("Directory on the machine running Terraform, uploaded to each node before the start."),
					"master_port": optInt("`MASTER_PORT` (29500).", int64validator.Between(1, 65535)),
				},
			},
			"wait_for_completion": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				MarkdownDescription: "Block the apply until the job ends (default). A failed job fails the apply with its last log lines."},
			"keep_artifacts": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Keep the job's directory (model, checkpoints, metrics) on the nodes when the resource is destroyed."},
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Read: true, Delete: true}),

			"status":       schema.StringAttribute{Computed: true, MarkdownDescription: "`queued`, `running`, `succeeded`, `failed` or `cancelled`."},
			"node_job_ids": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Job id on each node."},
			"model_uri": schema.StringAttribute{Computed: true,
				MarkdownDescription: "The trained ONNX model on the node (`file://…`), for `hadron_model_endpoint.source`."},
			"model_sha256":  schema.StringAttribute{Computed: true, MarkdownDescription: "sha256 of the model, for `hadron_model_endpoint.sha256`."},
			"chart_path":    schema.StringAttribute{Computed: true, MarkdownDescription: "Loss and accuracy chart (PNG) on the node."},
			"metrics_path":  schema.StringAttribute{Computed: true, MarkdownDescription: "metrics.json on the node."},
			"test_accuracy": schema.Float64Attribute{Computed: true, MarkdownDescription: "Accuracy on the test set, when one is given."},
			"test_loss":     schema.Float64Attribute{Computed: true, MarkdownDescription: "Loss on the test set, when one is given."},
			"history": schema.ListAttribute{Computed: true, ElementType: epochHistoryType,
				MarkdownDescription: "Per-epoch training and validation loss and accuracy, throughput and time."},
		},
	}
}

func (r *trainingJobResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if d := providerDataFrom(req.ProviderData, &resp.Diagnostics); d != nil {
		r.data = d
	}
}

// ValidateConfig checks the model spec at plan time (shapes, layer fields),
// so a layer that does not fit fails before any node is touched.
func (r *trainingJobResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m trainingJobModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if m.Engine != nil && !m.InstanceIDs.IsUnknown() && len(m.InstanceIDs.Elements()) > 1 {
		resp.Diagnostics.Append(attrError(path.Root("instance_ids"), "Too Many Nodes For The Engine",
			"The built-in engine trains on one node; list one instance, or use command for multi-node jobs."))
	}
	if m.Engine == nil || m.Dataset == nil || !allKnown(ctx, m.Engine, m.Dataset) {
		return
	}
	spec, d := m.jobSpec(ctx, nil)
	resp.Diagnostics.Append(d...)
	if err := spec.Validate(); err != nil {
		resp.Diagnostics.Append(attrError(path.Root("engine"), "Invalid Training Job", err.Error()))
	}
	files := m.Dataset.files()
	if len(files) == 0 {
		resp.Diagnostics.Append(attrError(path.Root("dataset"), "Missing Training Data",
			"Set train_images and train_labels (idx) or train (csv, image_folder)."))
	}
	if m.Dataset.Location.ValueString() == "upload" {
		for attr, p := range files {
			if _, err := os.Stat(p); err != nil {
				resp.Diagnostics.Append(attrError(path.Root("dataset").AtName(attr), "Dataset File Not Found",
					fmt.Sprintf("location = \"upload\" uploads %s from this machine, but: %v", p, err)))
			}
		}
	}
}

// allKnown reports whether the engine and dataset hold no unknown values.
func allKnown(ctx context.Context, e *engineModel, d *datasetModel) bool {
	for _, v := range []interface{ IsUnknown() bool }{e.InputShape, e.Loss, e.Epochs, e.BatchSize, e.ValidationSplit, e.Seed,
		e.Threads, d.Format, d.Location, d.TrainImages, d.TrainLabels, d.TestImages, d.TestLabels, d.Train, d.Test, d.Rescale} {
		if v.IsUnknown() {
			return false
		}
	}
	for _, l := range e.Layers {
		for _, v := range []interface{ IsUnknown() bool }{l.Type, l.Filters, l.KernelSize, l.Units, l.PoolSize, l.Activation, l.InputShape} {
			if v.IsUnknown() {
				return false
			}
		}
	}
	return true
}

func (r *trainingJobResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan trainingJobModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultJobCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ids, d := stringList(ctx, plan.InstanceIDs)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.Engine != nil {
		r.createEngineJob(ctx, &plan, ids[0], resp)
	} else {
		r.createCommandJob(ctx, &plan, ids, resp)
	}
}

func (r *trainingJobResource) createEngineJob(ctx context.Context, plan *trainingJobModel, nodeID string, resp *resource.CreateResponse) {
	c, err := r.data.agentFor(ctx, nodeID)
	if err != nil {
		resp.Diagnostics.Append(attrError(path.Root("instance_ids"), "Node Not Reachable", err.Error()))
		return
	}
	paths, err := r.stageDataset(ctx, c, plan)
	if err != nil {
		resp.Diagnostics.Append(attrError(path.Root("dataset"), "Dataset Not Staged",
			"Hadron could not put the dataset on node "+nodeID+": "+err.Error()))
		return
	}
	spec, d := plan.jobSpec(ctx, paths)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	key := jobKey(plan.Name.ValueString(), spec)
	job, err := c.SubmitJob(ctx, spec, key)
	if err != nil {
		resp.Diagnostics.Append(errorDiag("Training Job Refused", "Node "+nodeID+" did not accept the training job.", err))
		return
	}
	plan.ID = types.StringValue(key)
	plan.NodeJobIDs = types.ListValueMust(types.StringType, []attr.Value{types.StringValue(job.ID)})
	tflog.Info(ctx, "training job submitted", map[string]any{"node": nodeID, "job": job.ID})
	if plan.WaitForCompletion.ValueBool() {
		job, err = r.waitJob(ctx, c, job.ID)
		if err != nil {
			// The job may still run: keep it in state (tainted) so it is cancelled, not orphaned.
			r.fillEngine(ctx, c, plan, job)
			resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
			resp.Diagnostics.Append(errorDiag("Training Job Failed", "The training job did not succeed on node "+nodeID+".", err))
			return
		}
	}
	r.fillEngine(ctx, c, plan, job)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

// stageDataset uploads or fetches dataset files to the node as the location
// says, returning configured path -> node path.
func (r *trainingJobResource) stageDataset(ctx context.Context, c *agentclient.Client, m *trainingJobModel) (map[string]string, error) {
	loc := m.Dataset.Location.ValueString()
	if loc == "" || loc == "node" {
		return nil, nil
	}
	digests, d := userTags(ctx, m.Dataset.SHA256)
	if d.HasError() {
		return nil, fmt.Errorf("reading dataset.sha256")
	}
	out := map[string]string{}
	for attr, p := range m.Dataset.files() {
		dst := "datasets/" + m.Name.ValueString() + "/" + attr + "/" + filepath.Base(p)
		var fi *agentclient.FileInfo
		var err error
		if loc == "url" {
			fi, err = c.Fetch(ctx, p, digests[attr], dst)
		} else {
			fi, err = uploadFile(ctx, c, p, dst, digests[attr])
		}
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", attr, p, err)
		}
		out[p] = fi.Path
	}
	return out, nil
}

// uploadFile sends a local file, skipping it when the node already has the
// same content.
func uploadFile(ctx context.Context, c *agentclient.Client, local, dst, want string) (*agentclient.FileInfo, error) {
	digest, err := fileSHA256(local)
	if err != nil {
		return nil, err
	}
	if want != "" && want != digest {
		return nil, fmt.Errorf("sha256 of %s is %s, want %s", local, digest, want)
	}
	if fi, ok, err := c.StatFile(ctx, dst); err == nil && ok && fi.SHA256 == digest {
		return fi, nil
	}
	f, err := os.Open(local)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return c.PutFile(ctx, dst, f, digest, "")
}

// waitJob polls a job until it ends, logging progress for TF_LOG=info.
func (r *trainingJobResource) waitJob(ctx context.Context, c *agentclient.Client, id string) (*agentclient.Job, error) {
	t := time.NewTicker(jobPollInterval)
	defer t.Stop()
	var last string
	for {
		job, ok, err := c.Job(ctx, id)
		switch {
		case err != nil:
			tflog.Warn(ctx, "training job status not available", map[string]any{"job": id, "error": err.Error()})
		case !ok:
			return nil, fmt.Errorf("job %s disappeared from the node", id)
		default:
			line := fmt.Sprintf("epoch %d/%d step %d/%d loss %.4f accuracy %.4f %.0f samples/s ETA %s",
				job.Epoch, job.Epochs, job.Step, job.StepsPerEpoch, job.Loss, job.Accuracy, job.SamplesPerSec,
				(time.Duration(job.ETASeconds) * time.Second).String())
			if line != last {
				tflog.Info(ctx, "training: "+line, map[string]any{"job": id, "status": job.Status})
				last = line
			}
			switch job.Status {
			case agentclient.JobSucceeded:
				return job, nil
			case agentclient.JobFailed, agentclient.JobCancelled:
				tail, _ := c.JobLogTail(ctx, id, 20)
				return job, fmt.Errorf("job %s %s: %s\nlast log lines:\n%s", id, job.Status, job.Error, tail)
			}
		}
		select {
		case <-ctx.Done():
			return job, fmt.Errorf("waiting for job %s: %w (it keeps running on the node; raise timeouts.create)", id, ctx.Err())
		case <-t.C:
		}
	}
}

// fillEngine copies a job's status and artifacts into the model.
func (r *trainingJobResource) fillEngine(ctx context.Context, c *agentclient.Client, m *trainingJobModel, job *agentclient.Job) {
	m.Status = types.StringValue(agentclient.JobQueued)
	m.ModelURI, m.ModelSHA256, m.ChartPath, m.MetricsPath = types.StringValue(""), types.StringValue(""), types.StringValue(""), types.StringValue("")
	m.TestAccuracy, m.TestLoss = types.Float64Null(), types.Float64Null()
	m.History = historyValue(nil)
	if job == nil {
		return
	}
	m.Status = types.StringValue(job.Status)
	for _, a := range job.Artifacts {
		switch a.Name {
		case "model.onnx":
			m.ModelURI = types.StringValue("file://" + a.Path)
			m.ModelSHA256 = types.StringValue(a.SHA256)
		case "chart.png":
			m.ChartPath = types.StringValue(a.Path)
		case "metrics.json":
			m.MetricsPath = types.StringValue(a.Path)
		}
	}
	if job.ModelSHA256 != "" {
		m.ModelSHA256 = types.StringValue(job.ModelSHA256)
	}
	if job.Status == agentclient.JobSucceeded || job.Status == agentclient.JobFailed {
		if met, err := c.JobMetrics(ctx, job.ID); err == nil {
			m.History = historyValue(met.Epochs)
			m.TestAccuracy = types.Float64PointerValue(met.TestAccuracy)
			m.TestLoss = types.Float64PointerValue(met.TestLoss)
		}
	}
}

func (r *trainingJobResource) createCommandJob(ctx context.Context, plan *trainingJobModel, ids []string, resp *resource.CreateResponse) {
	cm := plan.Command
	argv, d := stringList(ctx, cm.Argv)
	resp.Diagnostics.Append(d...)
	env, d := userTags(ctx, cm.Env)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	port := int(cm.MasterPort.ValueInt64())
	if port == 0 {
		port = defaultMasterPort
	}
	clients := make([]*agentclient.Client, len(ids))
	ips := make([]string, len(ids))
	for i, id := range ids {
		c, inst, err := r.data.node(ctx, id)
		if err != nil {
			resp.Diagnostics.Append(attrError(path.Root("instance_ids"), "Node Not Reachable", err.Error()))
			return
		}
		clients[i], ips[i] = c, firstNonEmpty(inst.PrivateIP, inst.PublicIP)
	}
	key := jobKey(plan.Name.ValueString(), map[string]any{"argv": argv, "env": env, "dir": cm.WorkingDir.ValueString(),
		"upload": cm.UploadDir.ValueString(), "nodes": ids, "port": port})
	plan.ID = types.StringValue(key)
	jobIDs := make([]attr.Value, len(ids))
	for rank, c := range clients {
		dir := cm.WorkingDir.ValueString()
		if up := cm.UploadDir.ValueString(); up != "" {
			fi, err := uploadDir(ctx, c, up, "jobs/"+key+"/src")
			if err != nil {
				resp.Diagnostics.Append(attrError(path.Root("command").AtName("upload_dir"), "Upload Failed",
					fmt.Sprintf("Uploading %s to node %s: %v", up, ids[rank], err)))
				return
			}
			if dir == "" || !filepath.IsAbs(dir) {
				dir = filepath.Join(fi.Path, dir)
			}
		}
		out, err := makeDir(ctx, c, "jobs/"+key+"/output")
		if err != nil {
			resp.Diagnostics.Append(errorDiag("Command Not Started", fmt.Sprintf("Node %s: creating the output directory.", ids[rank]), err))
			return
		}
		e := torchrunEnv(ips, rank, port)
		for k, v := range env {
			e[k] = v
		}
		e["HADRON_OUTPUT_DIR"] = out.Path
		cmdID := fmt.Sprintf("%s-rank%d", key, rank)
		if _, err := c.StartCommand(ctx, cmdID, agentclient.CommandSpec{Argv: argv, Env: e, Dir: dir}); err != nil {
			resp.Diagnostics.Append(errorDiag("Command Not Started", fmt.Sprintf("Node %s did not start rank %d.", ids[rank], rank), err))
			r.deleteCommands(ctx, clients[:rank], key)
			return
		}
		jobIDs[rank] = types.StringValue(cmdID)
	}
	plan.NodeJobIDs = types.ListValueMust(types.StringType, jobIDs)
	plan.Status = types.StringValue(agentclient.JobRunning)
	r.clearOutputs(plan)
	if plan.WaitForCompletion.ValueBool() {
		if err := r.waitCommands(ctx, clients, ids, key); err != nil {
			plan.Status = types.StringValue(agentclient.JobFailed)
			resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
			resp.Diagnostics.Append(errorDiag("Training Job Failed", "The command job did not succeed.", err))
			return
		}
		plan.Status = types.StringValue(agentclient.JobSucceeded)
		if fi, ok, err := clients[0].StatFile(ctx, "jobs/"+key+"/output/model.onnx"); err == nil && ok {
			plan.ModelURI = types.StringValue("file://" + fi.Path)
			plan.ModelSHA256 = types.StringValue(fi.SHA256)
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *trainingJobResource) clearOutputs(m *trainingJobModel) {
	m.ModelURI, m.ModelSHA256, m.ChartPath, m.MetricsPath = types.StringValue(""), types.StringValue(""), types.StringValue(""), types.StringValue("")
	m.TestAccuracy, m.TestLoss = types.Float64Null(), types.Float64Null()
	m.History = historyValue(nil)
}

// waitCommands waits until every rank has ended; the first failure fails the
// job and cancels the other ranks.
func (r *trainingJobResource) waitCommands(ctx context.Context, clients []*agentclient.Client, ids []string, key string) error {
	t := time.NewTicker(jobPollInterval)
	defer t.Stop()
	for {
		running := 0
		for rank, c := range clients {
			id := fmt.Sprintf("%s-rank%d", key, rank)
			cmd, ok, err := c.Command(ctx, id)
			if err != nil {
				tflog.Warn(ctx, "command status not available", map[string]any{"node": ids[rank], "error": err.Error()})
				running++
				continue
			}
			if !ok {
				return fmt.Errorf("rank %d on node %s disappeared", rank, ids[rank])
			}
			switch cmd.State {
			case "running":
				running++
			case "succeeded":
			default:
				tail, _ := c.CommandLogTail(ctx, id, 20)
				return fmt.Errorf("rank %d on node %s %s (%s); last output lines:\n%s", rank, ids[rank], cmd.State, cmd.Error, tail)
			}
		}
		if running == 0 {
			return nil
		}
		tflog.Info(ctx, "command job running", map[string]any{"ranks_running": running, "ranks": len(clients)})
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the command job: %w (it keeps running on the nodes; raise timeouts.create)", ctx.Err())
		case <-t.C:
		}
	}
}

func (r *trainingJobResource) deleteCommands(ctx context.Context, clients []*agentclient.Client, key string) {
	for rank, c := range clients {
		if err := c.DeleteCommand(ctx, fmt.Sprintf("%s-rank%d", key, rank)); err != nil {
			tflog.Warn(ctx, "could not remove command", map[string]any{"rank": rank, "error": err.Error()})
		}
	}
}

// makeDir creates an empty directory on the node (an empty archive), or
// returns the one already there.
func makeDir(ctx context.Context, c *agentclient.Client, dst string) (*agentclient.FileInfo, error) {
	if fi, ok, err := c.StatFile(ctx, dst); err == nil && ok {
		return fi, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := tar.NewWriter(zw).Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return c.PutFile(ctx, dst, &buf, "", "tar.gz")
}

// uploadDir sends a local directory to the node as a gzipped tar.
func uploadDir(ctx context.Context, c *agentclient.Client, local, dst string) (*agentclient.FileInfo, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(local, p)
		if rel == "." || !(d.IsDir() || d.Type().IsRegular()) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return c.PutFile(ctx, dst, &buf, "", "tar.gz")
}

func (r *trainingJobResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state trainingJobModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Read(ctx, defaultJobReadTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ids, d := stringList(ctx, state.InstanceIDs)
	resp.Diagnostics.Append(d...)
	jobIDs, d := stringList(ctx, state.NodeJobIDs)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() || len(jobIDs) == 0 {
		return
	}
	c, err := r.data.agentFor(ctx, ids[0])
	if err != nil {
		// The node is gone, and the job's artifacts with it: train again.
		tflog.Warn(ctx, "training job's node is gone; removing the job from state", map[string]any{"error": err.Error()})
		resp.State.RemoveResource(ctx)
		return
	}
	if state.Engine != nil {
		job, ok, err := c.Job(ctx, jobIDs[0])
		if err != nil {
			resp.Diagnostics.Append(errorDiag("Error Reading Training Job", "Node "+ids[0]+" did not answer.", err))
			return
		}
		if !ok {
			resp.State.RemoveResource(ctx)
			return
		}
		r.fillEngine(ctx, c, &state, job)
	} else {
		cmd, ok, err := c.Command(ctx, jobIDs[0])
		if err != nil {
			resp.Diagnostics.Append(errorDiag("Error Reading Training Job", "Node "+ids[0]+" did not answer.", err))
			return
		}
		if !ok {
			resp.State.RemoveResource(ctx)
			return
		}
		if cmd.State != "running" && state.Status.ValueString() == agentclient.JobRunning {
			state.Status = types.StringValue(cmd.State)
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update only changes wait_for_completion or keep_artifacts: everything else
// replaces the job.
func (r *trainingJobResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state trainingJobModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	state.WaitForCompletion, state.KeepArtifacts, state.Timeouts = plan.WaitForCompletion, plan.KeepArtifacts, plan.Timeouts
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Delete cancels the job if it runs and removes its artifacts unless
// keep_artifacts is set.
func (r *trainingJobResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state trainingJobModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultJobDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ids, _ := stringList(ctx, state.InstanceIDs)
	jobIDs, _ := stringList(ctx, state.NodeJobIDs)
	keep := state.KeepArtifacts.ValueBool()
	for i, jobID := range jobIDs {
		nodeID := ids[min(i, len(ids)-1)]
		c, err := r.data.agentFor(ctx, nodeID)
		if err != nil {
			continue // the node is gone, and the job with it
		}
		if state.Engine != nil {
			err = c.CancelJob(ctx, jobID)
			if err == nil && !keep {
				err = c.DeleteJob(ctx, jobID)
			}
		} else if !keep {
			err = c.DeleteCommand(ctx, jobID)
		}
		if err != nil {
			resp.Diagnostics.Append(errorDiag("Error Deleting Training Job", "Node "+nodeID+" did not remove job "+jobID+".", err))
		}
	}
}

// ImportState is not meaningful for a job's inputs, which live only in
// configuration; it imports the node and job ids so the job is adopted.
func (r *trainingJobResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(errorDiag("Import Not Supported",
		"A training job's spec lives only in configuration; declare it and apply, and Hadron finds the running job by its key instead of starting another.", nil))
}
