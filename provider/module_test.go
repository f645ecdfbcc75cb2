package provider

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccModule_inferenceFleet applies examples/modules/inference-fleet as a
// user would: the real CLI, `terraform get` installing the module, apply, a
// plan with no changes, destroy.
func TestAccModule_inferenceFleet(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	module, _ := filepath.Abs("../examples/modules/inference-fleet")
	model, _ := filepath.Abs("../runtime/inference/testdata/cnn.onnx")
	run := newCLIRun(t, fmt.Sprintf(`
terraform {
  required_providers {
    hadron = { source = "hadron-ai/hadron" }
  }
}

provider "hadron" {
  local {
    data_dir     = %q
    runtime_path = %q
  }
}

module "fleet" {
  source       = %q
  name         = "fleet"
  node_count   = 2
  model_source = %q
}

output "infer_urls" {
  value = module.fleet.infer_urls
}

output "hourly_price" {
  value = module.fleet.hourly_price
}
`, dataDir, testHadrond, module, model))
	ctx := testContext(t)
	run.run(t, ctx, "get") // modules only: providers come from dev_overrides, never a registry
	// Registered before apply, so that a failed apply is cleaned up too.
	t.Cleanup(func() {
		run.run(t, testContext(t), "destroy", "-auto-approve", "-input=false")
		killProcessesUnder(dataDir)
	})
	run.run(t, ctx, "apply", "-auto-approve", "-input=false")

	var out struct {
		InferURLs struct {
			Value map[string]string `json:"value"`
		} `json:"infer_urls"`
		HourlyPrice struct {
			Value float64 `json:"value"`
		} `json:"hourly_price"`
	}
	if err := json.Unmarshal([]byte(run.run(t, ctx, "output", "-json")), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.InferURLs.Value) != 2 {
		t.Fatalf("infer_urls: got %v, want one per node (2)", out.InferURLs.Value)
	}
	for id, u := range out.InferURLs.Value {
		if !strings.HasPrefix(id, "local-") || !strings.HasSuffix(u, "/v2/models/fleet/infer") {
			t.Errorf("infer url of %s: got %s", id, u)
		}
	}
	if out.HourlyPrice.Value != 0 {
		t.Errorf("hourly_price of a local fleet: got %v, want 0", out.HourlyPrice.Value)
	}
	plan := run.command(ctx, "plan", "-detailed-exitcode", "-input=false")
	if b, err := plan.CombinedOutput(); err != nil {
		t.Fatalf("plan after apply is not empty (%v):\n%s", err, b)
	}
}
