package provider

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap"
	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/local"
)

// providerData is handed to every resource and data source through
// ProviderData. Backends are built on first use, so a configuration that
// never uses AWS needs no AWS credentials.
type providerData struct {
	version string
	local   local.Config
	aws     *awsBlockModel
	aliyun  *aliyunBlockModel
	catalog *catalog.Catalog
	// refiner merges live zones and spot prices over catalog for the clouds
	// with credentials; built on first use by offerCatalog, nil when no
	// cloud has credentials.
	refinerOnce sync.Once
	refiner     *catalog.Refiner
	// zoneRefiner is the same with live zones only, for instance plans.
	zoneRefinerOnce sync.Once
	zoneRefiner     *catalog.Refiner
	budget          *budgetTracker
	getenv          func(string) string

	mu       sync.Mutex
	backends map[string]cloud.Backend

	nodes *nodeRegistry

	bundleDir  string
	ortURLs    map[string]string
	ortSHA256s map[string]string
	bundleOnce sync.Once
	bundleVal  *bootstrap.Bundle
	bundleErr  error
}

func newProviderData(cfg providerModel, version string, getenv func(string) string) (*providerData, diag.Diagnostics) {
	var diags diag.Diagnostics
	d := &providerData{version: version, aws: cfg.AWS, aliyun: cfg.Aliyun, getenv: getenv, backends: map[string]cloud.Backend{},
		nodes: &nodeRegistry{nodes: map[string]*nodeConn{}}}
	var bb bundleBlockModel
	if cfg.Bundle != nil {
		bb = *cfg.Bundle
	}
	d.bundleDir = firstNonEmpty(bb.Dir.ValueString(), getenv("HADRON_BUNDLE_DIR"), besideExecutable("bundle"))
	d.ortURLs, d.ortSHA256s = map[string]string{}, map[string]string{}
	if !bb.ORTLibraryURL.IsNull() && !bb.ORTLibraryURL.IsUnknown() {
		diags.Append(bb.ORTLibraryURL.ElementsAs(context.Background(), &d.ortURLs, false)...)
	}
	if !bb.ORTLibrarySHA256.IsNull() && !bb.ORTLibrarySHA256.IsUnknown() {
		diags.Append(bb.ORTLibrarySHA256.ElementsAs(context.Background(), &d.ortSHA256s, false)...)
	}
	for arch := range d.ortURLs {
		if d.ortSHA256s[arch] == "" {
			diags.Append(attrError(rootPath("bundle", "ort_library_sha256"), "Missing ONNX Runtime Digest",
				fmt.Sprintf("bundle.ort_library_url names a library for %s; give its sha256 in ort_library_sha256 too.", arch)))
		}
	}
	var lb localBlockModel
	if cfg.Local != nil {
		lb = *cfg.Local
	}
	d.local.DataDir = firstNonEmpty(lb.DataDir.ValueString(), getenv("HADRON_LOCAL_DATA_DIR"), defaultStateDir(getenv))
	d.local.RuntimePath = firstNonEmpty(lb.RuntimePath.ValueString(), getenv("HADRON_RUNTIME_PATH"), besideExecutable("hadrond"), lookPath("hadrond"))
	d.local.ORTLibrary = firstNonEmpty(lb.ORTLibrary.ValueString(), getenv("HADRON_ORT_LIBRARY"), besideExecutable("libonnxruntime.so.1"))
	var budget float64
	if cfg.Budget != nil && !cfg.Budget.MaxHourlyPrice.IsNull() {
		budget = cfg.Budget.MaxHourlyPrice.ValueFloat64()
		if budget <= 0 {
			diags.Append(attrError(rootPath("budget", "max_hourly_price"), "Invalid budget",
				fmt.Sprintf("max_hourly_price must be more than 0 (USD per hour), got %g.", budget)))
		}
	}
	d.budget = newBudgetTracker(budget)
	cat, err := catalog.Embedded()
	if err != nil {
		diags.Append(errorDiag("Catalog Not Readable", "The provider's embedded GPU catalog could not be read; this is a bug.", err))
	}
	d.catalog = cat
	if a := cfg.AWS; a != nil && !a.SecretKey.IsNull() && a.AccessKey.IsNull() {
		diags.Append(attrError(rootPath("aws", "access_key"), "Missing AWS access key",
			"aws.secret_key is set but aws.access_key is not. Set both, or neither and let the AWS SDK find credentials."))
	}
	if a := cfg.Aliyun; a != nil && !a.SecretKey.IsNull() && a.AccessKey.IsNull() {
		diags.Append(attrError(rootPath("aliyun", "access_key"), "Missing Alibaba Cloud access key",
			"aliyun.secret_key is set but aliyun.access_key is not. Set both, or neither and use ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET."))
	}
	return d, diags
}

// backend returns the backend of a cloud, building it on first use.
func (d *providerData) backend(ctx context.Context, name string) (cloud.Backend, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.backends[name]; ok {
		return b, nil
	}
	var (
		b   cloud.Backend
		err error
	)
	switch name {
	case "local":
		if d.local.RuntimePath == "" {
			return nil, fmt.Errorf("no hadrond runtime found: set local.runtime_path in the provider block or HADRON_RUNTIME_PATH, " +
				"or install the provider with `make install`, which puts hadrond next to it")
		}
		b, err = local.New(d.local)
	default:
		b, err = d.cloudBackend(ctx, name)
	}
	if err != nil {
		return nil, err
	}
	d.backends[name] = b
	return b, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// besideExecutable returns the path of name next to the running provider
// binary, or "" when there is no such file.
func besideExecutable(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func lookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// cloudConfigured reports whether the provider block configures a cloud.
func (d *providerData) cloudConfigured(name string) bool {
	switch name {
	case "aws":
		return d.aws != nil
	case "aliyun":
		return d.aliyun != nil
	}
	return name == "local"
}

// agentFor returns a client for the agent of a node created by
// hadron_gpu_instance, found by instance id.
func (d *providerData) agentFor(ctx context.Context, instanceID string) (*agentclient.Client, error) {
	c, _, err := d.node(ctx, instanceID)
	return c, err
}

// node returns a client for a node's agent and what the cloud knows of it.
// Cloud nodes are reached through the SSH connection their
// hadron_gpu_instance opened in this run (create or refresh).
func (d *providerData) node(ctx context.Context, instanceID string) (*agentclient.Client, *cloud.Instance, error) {
	if !strings.HasPrefix(instanceID, "local-") {
		if c, ok := d.nodes.get(instanceID); ok {
			return c.client, c.instance, nil
		}
		return nil, nil, fmt.Errorf("instance %s: its hadron_gpu_instance was not refreshed in this run, so Hadron has no "+
			"connection to its agent; run without -refresh=false, and include the instance in -target", instanceID)
	}
	b, err := d.backend(ctx, "local")
	if err != nil {
		return nil, nil, err
	}
	inst, err := b.Get(ctx, instanceID)
	if err != nil {
		return nil, nil, fmt.Errorf("instance %s: %w", instanceID, err)
	}
	return agentclient.New(inst.Endpoint, inst.Token), inst, nil
}

// providerDataFrom is what every resource's Configure does with the
// provider's data: nil before the provider is configured, a diagnostic if it
// is not ours.
func providerDataFrom(pd any, diags *diag.Diagnostics) *providerData {
	if pd == nil {
		return nil
	}
	d, ok := pd.(*providerData)
	if !ok {
		diags.Append(unexpectedDataDiag(pd))
		return nil
	}
	return d
}
