package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/train"
)

// trainingJobModel is the Terraform state of hadron_training_job.
type trainingJobModel struct {
	ID                types.String   `tfsdk:"id"`
	Name              types.String   `tfsdk:"name"`
	InstanceIDs       types.List     `tfsdk:"instance_ids"`
	Engine            *engineModel   `tfsdk:"engine"`
	Dataset           *datasetModel  `tfsdk:"dataset"`
	Command           *commandModel  `tfsdk:"command"`
	WaitForCompletion types.Bool     `tfsdk:"wait_for_completion"`
	KeepArtifacts     types.Bool     `tfsdk:"keep_artifacts"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`

	Status       types.String  `tfsdk:"status"`
	NodeJobIDs   types.List    `tfsdk:"node_job_ids"`
	ModelURI     types.String  `tfsdk:"model_uri"`
	ModelSHA256  types.String  `tfsdk:"model_sha256"`
	ChartPath    types.String  `tfsdk:"chart_path"`
	MetricsPath  types.String  `tfsdk:"metrics_path"`
	TestAccuracy types.Float64 `tfsdk:"test_accuracy"`
	TestLoss     types.Float64 `tfsdk:"test_loss"`
	History      types.List    `tfsdk:"history"`
}

type engineModel struct {
	InputShape           types.List      `tfsdk:"input_shape"`
	Layers               []layerModel    `tfsdk:"layers"`
	Loss                 types.String    `tfsdk:"loss"`
	Optimizer            *optimizerModel `tfsdk:"optimizer"`
	Epochs               types.Int64     `tfsdk:"epochs"`
	BatchSize            types.Int64     `tfsdk:"batch_size"`
	ValidationSplit      types.Float64   `tfsdk:"validation_split"`
	Seed                 types.Int64     `tfsdk:"seed"`
	Threads              types.Int64     `tfsdk:"threads"`
	CheckpointEverySteps types.Int64     `tfsdk:"checkpoint_every_steps"`
}

type layerModel struct {
	Type        types.String  `tfsdk:"type"`
	Filters     types.Int64   `tfsdk:"filters"`
	KernelSize  types.List    `tfsdk:"kernel_size"`
	Strides     types.List    `tfsdk:"strides"`
	Padding     types.String  `tfsdk:"padding"`
	Units       types.Int64   `tfsdk:"units"`
	Activation  types.String  `tfsdk:"activation"`
	Initializer types.String  `tfsdk:"initializer"`
	PoolSize    types.List    `tfsdk:"pool_size"`
	Rate        types.Float64 `tfsdk:"rate"`
	InputShape  types.List    `tfsdk:"input_shape"`
}

type optimizerModel struct {
	Type         types.String  `tfsdk:"type"`
	LearningRate types.Float64 `tfsdk:"learning_rate"`
	Momentum     types.Float64 `tfsdk:"momentum"`
	Beta1        types.Float64 `tfsdk:"beta1"`
	Beta2        types.Float64 `tfsdk:"beta2"`
	Epsilon      types.Float64 `tfsdk:"epsilon"`
}

type datasetModel struct {
	Format      types.String  `tfsdk:"format"`
	Location    types.String  `tfsdk:"location"`
	TrainImages types.String  `tfsdk:"train_images"`
	TrainLabels types.String  `tfsdk:"train_labels"`
	TestImages  types.String  `tfsdk:"test_images"`
	TestLabels  types.String  `tfsdk:"test_labels"`
	Train       types.String  `tfsdk:"train"`
	Test        types.String  `tfsdk:"test"`
	LabelColumn types.Int64   `tfsdk:"label_column"`
	Rescale     types.Float64 `tfsdk:"rescale"`
	Limit       types.Int64   `tfsdk:"limit"`
	TestLimit   types.Int64   `tfsdk:"test_limit"`
	SHA256      types.Map     `tfsdk:"sha256"`
}

type commandModel struct {
	Argv       types.List   `tfsdk:"argv"`
	Env        types.Map    `tfsdk:"env"`
	WorkingDir types.String `tfsdk:"working_dir"`
	UploadDir  types.String `tfsdk:"upload_dir"`
	MasterPort types.Int64  `tfsdk:"master_port"`
}

// Dataset locations.
var datasetLocations = []string{"node", "upload", "url"}

var epochHistoryType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"epoch":           types.Int64Type,
	"train_loss":      types.Float64Type,
	"train_accuracy":  types.Float64Type,
	"val_loss":        types.Float64Type,
	"val_accuracy":    types.Float64Type,
	"samples_per_sec": types.Float64Type,
	"epoch_seconds":   types.Float64Type,
}}

func intList(ctx context.Context, l types.List) ([]int, diag.Diagnostics) {
	if l.IsNull() || l.IsUnknown() {
		return nil, nil
	}
	var v []int64
	diags := l.ElementsAs(ctx, &v, false)
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out, diags
}

// jobSpec maps the engine and dataset blocks to the runtime's job spec, with
// dataset paths as they will be on the node (paths maps configured paths to
// node paths for uploaded or fetched files).
func (m *trainingJobModel) jobSpec(ctx context.Context, paths map[string]string) (train.JobSpec, diag.Diagnostics) {
	var diags diag.Diagnostics
	e, d := m.Engine, m.Dataset
	spec := train.JobSpec{
		Name:                 m.Name.ValueString(),
		Seed:                 e.Seed.ValueInt64(),
		Threads:              int(e.Threads.ValueInt64()),
		Epochs:               int(e.Epochs.ValueInt64()),
		BatchSize:            int(e.BatchSize.ValueInt64()),
		ValidationSplit:      e.ValidationSplit.ValueFloat64(),
		Loss:                 e.Loss.ValueString(),
		CheckpointEverySteps: int(e.CheckpointEverySteps.ValueInt64()),
	}
	if o := e.Optimizer; o != nil {
		spec.Optimizer = &train.OptimizerSpec{Type: o.Type.ValueString(), LearningRate: o.LearningRate.ValueFloat64(),
			Momentum: o.Momentum.ValueFloat64(), Beta1: o.Beta1.ValueFloat64(), Beta2: o.Beta2.ValueFloat64(), Epsilon: o.Epsilon.ValueFloat64()}
	}
	in, dd := intList(ctx, e.InputShape)
	diags.Append(dd...)
	spec.Model.InputShape = in
	for _, l := range e.Layers {
		ks, d1 := intList(ctx, l.KernelSize)
		st, d2 := intList(ctx, l.Strides)
		ps, d3 := intList(ctx, l.PoolSize)
		is, d4 := intList(ctx, l.InputShape)
		diags.Append(d1...)
		diags.Append(d2...)
		diags.Append(d3...)
		diags.Append(d4...)
		spec.Model.Layers = append(spec.Model.Layers, train.LayerSpec{
			Type: l.Type.ValueString(), Filters: int(l.Filters.ValueInt64()), KernelSize: ks, Strides: st,
			Padding: l.Padding.ValueString(), Units: int(l.Units.ValueInt64()), Activation: l.Activation.ValueString(),
			Initializer: l.Initializer.ValueString(), PoolSize: ps, Rate: l.Rate.ValueFloat64(), InputShape: is,
		})
	}
	if d != nil {
		node := func(v types.String) string {
			p := v.ValueString()
			if np, ok := paths[p]; ok {
				return np
			}
			return p
		}
		spec.Dataset = train.DatasetSpec{
			Format: d.Format.ValueString(), TrainImages: node(d.TrainImages), TrainLabels: node(d.TrainLabels),
			TestImages: node(d.TestImages), TestLabels: node(d.TestLabels), Train: node(d.Train), Test: node(d.Test),
			LabelColumn: int(d.LabelColumn.ValueInt64()), Rescale: d.Rescale.ValueFloat64(),
			Limit: int(d.Limit.ValueInt64()), TestLimit: int(d.TestLimit.ValueInt64()),
		}
	}
	return spec, diags
}

// datasetFiles lists the dataset's configured file attributes that are set.
func (d *datasetModel) files() map[string]string {
	out := map[string]string{}
	for name, v := range map[string]types.String{"train_images": d.TrainImages, "train_labels": d.TrainLabels,
		"test_images": d.TestImages, "test_labels": d.TestLabels, "train": d.Train, "test": d.Test} {
		if !v.IsNull() && v.ValueString() != "" {
			out[name] = v.ValueString()
		}
	}
	return out
}

// jobKey identifies one run of a job spec on the nodes: the same resource
// and spec always give the same key, so a retried apply finds the job.
func jobKey(name string, spec any) string {
	b, _ := json.Marshal(spec)
	h := sha256.Sum256(append([]byte("hadron-job\x00"+name+"\x00"), b...))
	return name + "-" + hex.EncodeToString(h[:6])
}

// historyValue maps metrics.json epochs to the history attribute.
func historyValue(epochs []agentclient.EpochMetrics) types.List {
	elems := make([]attr.Value, len(epochs))
	for i, e := range epochs {
		elems[i] = types.ObjectValueMust(epochHistoryType.AttrTypes, map[string]attr.Value{
			"epoch":           types.Int64Value(int64(e.Epoch)),
			"train_loss":      types.Float64Value(e.TrainLoss),
			"train_accuracy":  types.Float64Value(e.TrainAccuracy),
			"val_loss":        types.Float64PointerValue(e.ValLoss),
			"val_accuracy":    types.Float64PointerValue(e.ValAccuracy),
			"samples_per_sec": types.Float64Value(e.SamplesPerSec),
			"epoch_seconds":   types.Float64Value(e.EpochSeconds),
		})
	}
	return types.ListValueMust(epochHistoryType, elems)
}

// torchrunEnv is the environment of rank `rank` in a multi-node command job,
// following torchrun's contract.
func torchrunEnv(ips []string, rank, port int) map[string]string {
	return map[string]string{
		"MASTER_ADDR":     ips[0],
		"MASTER_PORT":     fmt.Sprint(port),
		"NODE_RANK":       fmt.Sprint(rank),
		"NNODES":          fmt.Sprint(len(ips)),
		"WORLD_SIZE":      fmt.Sprint(len(ips)),
		"HADRON_NODE_IPS": strings.Join(ips, ","),
	}
}
