package provider

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
)

// modelEndpointModel is the Terraform state of hadron_model_endpoint.
type modelEndpointModel struct {
	ID                types.String   `tfsdk:"id"`
	Name              types.String   `tfsdk:"name"`
	InstanceIDs       types.List     `tfsdk:"instance_ids"`
	Source            types.String   `tfsdk:"source"`
	SHA256            types.String   `tfsdk:"sha256"`
	MaxBatchSize      types.Int64    `tfsdk:"max_batch_size"`
	MaxQueueDelay     types.String   `tfsdk:"max_queue_delay"`
	InstancesPerNode  types.Int64    `tfsdk:"instances_per_node"`
	ExecutionProvider types.String   `tfsdk:"execution_provider"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`

	Version        types.String `tfsdk:"version"`
	URLs           types.Map    `tfsdk:"urls"`
	InferURL       types.String `tfsdk:"infer_url"`
	Inputs         types.List   `tfsdk:"inputs"`
	Outputs        types.List   `tfsdk:"outputs"`
	ProviderInUse  types.String `tfsdk:"execution_provider_in_use"`
	ServingSHA256s types.Map    `tfsdk:"serving_sha256"`
}

var (
	modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	sha256RE    = regexp.MustCompile(`^[0-9a-f]{64}$`)

	executionProviders = []string{"auto", "cpu", "cuda"}

	tensorSpecType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"name":     types.StringType,
		"datatype": types.StringType,
		"shape":    types.ListType{ElemType: types.Int64Type},
	}}
)

// modelVersion names a model version after its digest.
func modelVersion(digest string) string {
	if len(digest) < 12 {
		return digest
	}
	return digest[:12]
}

// sourceKind tells how a model source is reached: a file on the machine
// running Terraform (also the node's, for the local cloud) or a URL the node
// fetches itself.
func sourceKind(src string) (kind, location string, err error) {
	u, perr := url.Parse(src)
	switch {
	case perr == nil && (u.Scheme == "http" || u.Scheme == "https"):
		return "url", src, nil
	case perr == nil && u.Scheme == "file":
		return "file", u.Path, nil
	case perr == nil && u.Scheme != "" && len(u.Scheme) > 1:
		return "", "", fmt.Errorf("source %q: scheme %q is not supported; use a file path, file://, http:// or https://", src, u.Scheme)
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", "", fmt.Errorf("source %q: %w", src, err)
	}
	return "file", abs, nil
}

// fileSHA256 hashes a local file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// loadRequest is what every node of the endpoint is asked to load.
func (m *modelEndpointModel) loadRequest() (agentclient.LoadRequest, error) {
	kind, loc, err := sourceKind(m.Source.ValueString())
	if err != nil {
		return agentclient.LoadRequest{}, err
	}
	if kind == "file" {
		loc = "file://" + loc
	}
	digest := strings.ToLower(m.SHA256.ValueString())
	return agentclient.LoadRequest{
		Version: modelVersion(digest),
		Source:  loc,
		SHA256:  digest,
		Config: agentclient.ModelConfig{
			MaxBatchSize:      m.MaxBatchSize.ValueInt64(),
			MaxQueueDelay:     m.MaxQueueDelay.ValueString(),
			Instances:         int(m.InstancesPerNode.ValueInt64()),
			ExecutionProvider: m.ExecutionProvider.ValueString(),
		},
	}, nil
}

// tensorSpecsValue maps a signature half to its Terraform list.
func tensorSpecsValue(specs []agentclient.TensorSpec) types.List {
	elems := make([]attr.Value, len(specs))
	for i, s := range specs {
		shape := make([]attr.Value, len(s.Shape))
		for j, d := range s.Shape {
			shape[j] = types.Int64Value(d)
		}
		elems[i] = types.ObjectValueMust(tensorSpecType.AttrTypes, map[string]attr.Value{
			"name":     types.StringValue(s.Name),
			"datatype": types.StringValue(s.Datatype),
			"shape":    types.ListValueMust(types.Int64Type, shape),
		})
	}
	return types.ListValueMust(tensorSpecType, elems)
}

// inferURL is the OIP v2 inference URL of a model on an agent.
func inferURL(endpoint, model string) string {
	return strings.TrimRight(endpoint, "/") + "/v2/models/" + url.PathEscape(model) + "/infer"
}

func stringMapValue(m map[string]string) types.Map {
	elems := make(map[string]attr.Value, len(m))
	for k, v := range m {
		elems[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, elems)
}
