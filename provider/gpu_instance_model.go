package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"golang.org/x/crypto/ssh"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// gpuInstanceModel is the Terraform state of hadron_gpu_instance.
type gpuInstanceModel struct {
	ID                types.String       `tfsdk:"id"`
	Name              types.String       `tfsdk:"name"`
	Cloud             types.String       `tfsdk:"cloud"`
	Region            types.String       `tfsdk:"region"`
	Zone              types.String       `tfsdk:"zone"`
	Zones             types.List         `tfsdk:"zones"`
	InstanceType      types.String       `tfsdk:"instance_type"`
	GPU               *gpuBlockModel     `tfsdk:"gpu"`
	Spot              types.Bool         `tfsdk:"spot"`
	SpotMaxPrice      types.Float64      `tfsdk:"spot_max_price"`
	ImageID           types.String       `tfsdk:"image_id"`
	RootVolumeSize    types.Int64        `tfsdk:"root_volume_size"`
	RootVolumeType    types.String       `tfsdk:"root_volume_type"`
	SubnetID          types.String       `tfsdk:"subnet_id"`
	SecurityGroupIDs  types.List         `tfsdk:"security_group_ids"`
	AllowedCIDRs      types.List         `tfsdk:"allowed_cidrs"`
	SSHPublicKey      types.String       `tfsdk:"ssh_public_key"`
	KeyName           types.String       `tfsdk:"key_name"`
	AssociatePublicIP types.Bool         `tfsdk:"associate_public_ip"`
	Clouds            types.List         `tfsdk:"clouds"`
	Regions           types.List         `tfsdk:"regions"`
	Placements        types.List         `tfsdk:"placements"`
	MaxHourlyPrice    types.Float64      `tfsdk:"max_hourly_price"`
	InstallRuntime    types.Bool         `tfsdk:"install_runtime"`
	SSH               *sshBlockModel     `tfsdk:"ssh"`
	Runtime           *runtimeBlockModel `tfsdk:"runtime"`
	Tags              types.Map          `tfsdk:"tags"`
	Timeouts          timeouts.Value     `tfsdk:"timeouts"`

	Candidates         types.List    `tfsdk:"candidates"`
	HostKeyFingerprint types.String  `tfsdk:"host_key_fingerprint"`
	HourlyPrice        types.Float64 `tfsdk:"hourly_price"`
	Status             types.String  `tfsdk:"status"`
	Endpoint           types.String  `tfsdk:"endpoint"`
	Token              types.String  `tfsdk:"token"`
	PublicIP           types.String  `tfsdk:"public_ip"`
	PrivateIP          types.String  `tfsdk:"private_ip"`
	Hostname           types.String  `tfsdk:"hostname"`
	VCPUs              types.Int64   `tfsdk:"vcpus"`
	MemoryMB           types.Int64   `tfsdk:"memory_mb"`
	DetectedGPUCount   types.Int64   `tfsdk:"detected_gpu_count"`
	DetectedGPUModel   types.String  `tfsdk:"detected_gpu_model"`
	RuntimeVersion     types.String  `tfsdk:"runtime_version"`
	ORTVersion         types.String  `tfsdk:"ort_version"`
}

type gpuBlockModel struct {
	Model       types.String `tfsdk:"model"`
	Count       types.Int64  `tfsdk:"count"`
	MinMemoryGB types.Int64  `tfsdk:"min_memory_gb"`
}

// clouds are the values of the cloud attribute; the first is the default.
var clouds = []string{"local", "aws", "aliyun"}

// idempotencyKey identifies an instance resource from configuration alone, so
// a re-apply after a crash between create and state save finds the instance.
// Each candidate then gets its own client token (cloud.ClientToken).
func idempotencyKey(name string) string {
	h := sha256.Sum256([]byte("hadron-instance\x00" + name))
	return hex.EncodeToString(h[:16])
}

// userTags returns the configured tags as a Go map.
func userTags(ctx context.Context, m types.Map) (map[string]string, diag.Diagnostics) {
	out := map[string]string{}
	if m.IsNull() || m.IsUnknown() {
		return out, nil
	}
	diags := m.ElementsAs(ctx, &out, false)
	return out, diags
}

// stringList returns a list attribute as a Go slice.
func stringList(ctx context.Context, l types.List) ([]string, diag.Diagnostics) {
	var out []string
	if l.IsNull() || l.IsUnknown() {
		return nil, nil
	}
	diags := l.ElementsAs(ctx, &out, false)
	return out, diags
}

// specFromModel maps the planned resource to a backend Spec.
func specFromModel(ctx context.Context, m *gpuInstanceModel, candidates []cloud.Candidate) (cloud.Spec, diag.Diagnostics) {
	var diags diag.Diagnostics
	tags, d := userTags(ctx, m.Tags)
	diags.Append(d...)
	sgs, d := stringList(ctx, m.SecurityGroupIDs)
	diags.Append(d...)
	cidrs, d := stringList(ctx, m.AllowedCIDRs)
	diags.Append(d...)
	return cloud.Spec{
		Name:             m.Name.ValueString(),
		IdempotencyKey:   idempotencyKey(m.Name.ValueString()),
		Candidates:       candidates,
		SpotMaxPrice:     m.SpotMaxPrice.ValueFloat64(),
		ImageID:          m.ImageID.ValueString(),
		RootVolumeSizeGB: int(m.RootVolumeSize.ValueInt64()),
		RootVolumeType:   m.RootVolumeType.ValueString(),
		SubnetID:         m.SubnetID.ValueString(),
		SecurityGroupIDs: sgs,
		AllowedCIDRs:     cidrs,
		SSHPublicKey:     sshPublicKey(m),
		KeyName:          m.KeyName.ValueString(),
		PublicIP:         m.AssociatePublicIP.ValueBool(),
		Tags:             tags,
	}, diags
}

// applyInstance copies what the cloud reports into the model.
func applyInstance(m *gpuInstanceModel, inst *cloud.Instance) {
	m.ID = types.StringValue(inst.ID)
	m.Cloud = types.StringValue(inst.Cloud)
	if inst.Name != "" {
		m.Name = types.StringValue(inst.Name)
	}
	m.Region = types.StringValue(inst.Region)
	m.Zone = types.StringValue(inst.Zone)
	m.InstanceType = types.StringValue(inst.InstanceType)
	if inst.ImageID != "" {
		m.ImageID = types.StringValue(inst.ImageID)
	}
	m.Spot = types.BoolValue(inst.Spot)
	m.PublicIP = types.StringValue(inst.PublicIP)
	m.PrivateIP = types.StringValue(inst.PrivateIP)
	if inst.Endpoint != "" {
		m.Endpoint = types.StringValue(inst.Endpoint)
	}
	if inst.Token != "" {
		m.Token = types.StringValue(inst.Token)
	}
	if inst.Tags != nil {
		m.Tags = tagsValue(userTagsOf(inst.Tags), m.Tags)
	}
}

// userTagsOf drops the tags Hadron adds itself.
func userTagsOf(all map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range all {
		if k == "Name" || strings.HasPrefix(k, "hadron:") {
			continue
		}
		out[k] = v
	}
	return out
}

// tagsValue keeps a null tags attribute null when the instance has no user
// tags, so that an unset attribute never shows a diff.
func tagsValue(tags map[string]string, prior types.Map) types.Map {
	if len(tags) == 0 && (prior.IsNull() || prior.IsUnknown()) {
		return types.MapNull(types.StringType)
	}
	elems := make(map[string]attr.Value, len(tags))
	for k, v := range tags {
		elems[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, elems)
}

// applyNode copies what the node's agent reports into the model.
func applyNode(m *gpuInstanceModel, n *agentclient.Node) {
	m.Status = types.StringValue("ready")
	m.Hostname = types.StringValue(n.Hostname)
	m.VCPUs = types.Int64Value(int64(n.VCPUs))
	m.MemoryMB = types.Int64Value(int64(n.MemoryBytes / (1 << 20)))
	m.DetectedGPUCount = types.Int64Value(int64(len(n.GPUs)))
	m.DetectedGPUModel = types.StringValue(gpuModelSummary(n.GPUs))
	m.RuntimeVersion = types.StringValue(n.RuntimeVersion)
	m.ORTVersion = types.StringValue(n.ORTVersion)
}

// gpuModelSummary names the node's GPU models ("none", "NVIDIA A10G", or a
// sorted, comma-separated list for mixed nodes).
func gpuModelSummary(gpus []agentclient.GPU) string {
	if len(gpus) == 0 {
		return "none"
	}
	seen := map[string]bool{}
	var names []string
	for _, g := range gpus {
		if !seen[g.Name] {
			seen[g.Name] = true
			names = append(names, g.Name)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// parseImportID splits "cloud:id" or a bare id into its cloud and id.
func parseImportID(raw string, configured func(string) bool) (cloudName, id string, err error) {
	if c, rest, ok := strings.Cut(raw, ":"); ok {
		for _, known := range clouds {
			if c == known && rest != "" {
				return c, rest, nil
			}
		}
		return "", "", fmt.Errorf("import id %q: %q is not a cloud (want one of %s)", raw, c, strings.Join(clouds, ", "))
	}
	if strings.HasPrefix(raw, "local-") {
		return "local", raw, nil
	}
	var matches []string
	for _, c := range clouds[1:] {
		if configured(c) {
			matches = append(matches, c)
		}
	}
	if len(matches) == 1 {
		return matches[0], raw, nil
	}
	return "", "", fmt.Errorf("import id %q: say which cloud it is in, as aws:%s or aliyun:%s", raw, raw, raw)
}

// attr returns a placement attribute by its schema name (for validation).
func (m *gpuInstanceModel) attr(name string) attr.Value {
	switch name {
	case "region":
		return m.Region
	case "zone":
		return m.Zone
	case "zones":
		return m.Zones
	case "instance_type":
		return m.InstanceType
	case "spot_max_price":
		return m.SpotMaxPrice
	case "image_id":
		return m.ImageID
	case "root_volume_size":
		return m.RootVolumeSize
	case "root_volume_type":
		return m.RootVolumeType
	case "subnet_id":
		return m.SubnetID
	case "security_group_ids":
		return m.SecurityGroupIDs
	case "allowed_cidrs":
		return m.AllowedCIDRs
	case "ssh_public_key":
		return m.SSHPublicKey
	case "key_name":
		return m.KeyName
	case "associate_public_ip":
		return m.AssociatePublicIP
	case "clouds":
		return m.Clouds
	case "regions":
		return m.Regions
	case "placements":
		return m.Placements
	case "max_hourly_price":
		return m.MaxHourlyPrice
	}
	panic("gpuInstanceModel.attr: unknown attribute " + name)
}

// sshPublicKey is the key pair to import: ssh_public_key, else the public half
// of ssh.private_key, so one key in the configuration is enough.
func sshPublicKey(m *gpuInstanceModel) string {
	if k := m.SSHPublicKey.ValueString(); k != "" || !m.KeyName.IsNull() {
		return k
	}
	if m.SSH == nil || m.SSH.PrivateKey.ValueString() == "" {
		return ""
	}
	signer, err := ssh.ParsePrivateKey([]byte(m.SSH.PrivateKey.ValueString()))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}
