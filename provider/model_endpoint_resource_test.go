package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
)

// otherModel is a second valid ONNX model, from Debian's libonnx-testdata.
const otherModel = "/usr/share/libonnx-testdata/data/node/test_abs/model.onnx"

func endpointConfig(dataDir, source, digest string) string {
	sha := ""
	if digest != "" {
		sha = fmt.Sprintf("sha256 = %q", digest)
	}
	return localProviderConfig(dataDir) + fmt.Sprintf(`
resource "hadron_gpu_instance" "a" {
  name = "ep-a"
}

resource "hadron_gpu_instance" "b" {
  name = "ep-b"
}

resource "hadron_model_endpoint" "m" {
  name         = "m"
  instance_ids = [hadron_gpu_instance.a.id, hadron_gpu_instance.b.id]
  source       = %q
  %s
}
`, source, sha)
}

// TestAccModelEndpoint_rollingUpdateRollsBack rolls a new model out to two
// nodes where only the first can fetch it: the first node is rolled back, the
// apply fails with the reason, and both nodes serve the old digest.
func TestAccModelEndpoint_rollingUpdateRollsBack(t *testing.T) {
	dataDir := t.TempDir()
	orig, _ := filepath.Abs("../runtime/inference/testdata/cnn.onnx")
	origDigest, err := fileSHA256(orig)
	if err != nil {
		t.Fatal(err)
	}
	newDigest, err := fileSHA256(otherModel)
	if err != nil {
		t.Fatalf("%v (install Debian's libonnx-testdata: make test does)", err)
	}
	// Serves the new model once: the second node's fetch gets a 404.
	var served atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) > 1 {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		http.ServeFile(w, r, otherModel)
	}))
	defer origin.Close()

	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkLocalNodesGone(dataDir),
		Steps: []resource.TestStep{
			{
				Config: endpointConfig(dataDir, orig, ""),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("hadron_model_endpoint.m", "sha256", origDigest),
					resource.TestCheckResourceAttr("hadron_model_endpoint.m", "version", origDigest[:12]),
					resource.TestCheckResourceAttr("hadron_model_endpoint.m", "urls.%", "2"),
					checkNodesServe("hadron_model_endpoint.m", origDigest, "hadron_gpu_instance.a", "hadron_gpu_instance.b"),
				),
			},
			{
				ResourceName:            "hadron_model_endpoint.m",
				ImportState:             true,
				ImportStateIdFunc:       endpointImportID("hadron_model_endpoint.m"),
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts", "source"},
			},
			{
				Config: endpointConfig(dataDir, origin.URL+"/new.onnx", newDigest),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("hadron_model_endpoint.m", plancheck.ResourceActionUpdate),
				}},
				ExpectError: regexp.MustCompile(`(?s)Rolling Update Failed.*could not serve version ` + newDigest[:12] +
					`.*The 1 node\(s\) already switched were rolled back to version ` + origDigest[:12]),
			},
			{
				// Refresh only: every node still serves the old model, and the
				// configuration still asks for the new one.
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("hadron_model_endpoint.m", "sha256", origDigest),
					checkNodesServe("hadron_model_endpoint.m", origDigest, "hadron_gpu_instance.a", "hadron_gpu_instance.b"),
				),
			},
		},
	})
}

func TestAccModelEndpoint_badInput(t *testing.T) {
	dataDir := t.TempDir()
	tests := []struct{ name, config, want string }{
		{"url without digest", `
resource "hadron_model_endpoint" "x" {
  name         = "x"
  instance_ids = ["local-000000000000"]
  source       = "https://models.example/m.onnx"
}`, `(?s)Missing Model Digest.*sha256 is required when source is a URL`},
		{"missing file", `
resource "hadron_model_endpoint" "x" {
  name         = "x"
  instance_ids = ["local-000000000000"]
  source       = "/no/such/model.onnx"
}`, `(?s)Model File Not Readable.*/no/such/model.onnx`},
		{"bad provider", `
resource "hadron_model_endpoint" "x" {
  name               = "x"
  instance_ids       = ["local-000000000000"]
  source             = "/no/such/model.onnx"
  sha256             = "` + fmt.Sprintf("%064d", 0) + `"
  execution_provider = "tpu"
}`, `(?s)Attribute execution_provider value must be one of`},
		{"bad queue delay", `
resource "hadron_model_endpoint" "x" {
  name            = "x"
  instance_ids    = ["local-000000000000"]
  source          = "/no/such/model.onnx"
  sha256          = "` + fmt.Sprintf("%064d", 0) + `"
  max_queue_delay = "soon"
}`, `(?s)Attribute max_queue_delay must be a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      localProviderConfig(dataDir) + tt.config,
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(tt.want),
				}},
			})
		})
	}
}

func endpointImportID(name string) resource.ImportStateIdFunc {
	return func(s *terraform.State) (string, error) {
		a := s.RootModule().Resources[name].Primary.Attributes
		return a["name"] + "@" + a["instance_ids.0"] + "," + a["instance_ids.1"], nil
	}
}

// checkNodesServe asks each node's agent which digest it serves.
func checkNodesServe(endpoint, digest string, nodes ...string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		name := s.RootModule().Resources[endpoint].Primary.Attributes["name"]
		for _, n := range nodes {
			a := s.RootModule().Resources[n].Primary.Attributes
			st, ok, err := agentclient.New(a["endpoint"], a["token"]).Model(context.Background(), name)
			if err != nil || !ok {
				return fmt.Errorf("%s: model %s: ok=%v err=%v", n, name, ok, err)
			}
			if st.SHA256 != digest {
				return fmt.Errorf("%s serves %s, want %s", n, st.SHA256, digest)
			}
		}
		return nil
	}
}
