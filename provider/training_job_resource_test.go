package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
)

const fashionMNIST = "/usr/share/datasets/fashion-mnist"

// quickstartConfig is the quickstart's chain on a small subset: one node, the
// CNN trained for one epoch on 2000 images, an endpoint serving its model.
func quickstartConfig(dataDir string, seed int) string {
	return localProviderConfig(dataDir) + fmt.Sprintf(`
resource "hadron_gpu_instance" "node" {
  name = "qs"
}

resource "hadron_training_job" "cnn" {
  name         = "qs-cnn"
  instance_ids = [hadron_gpu_instance.node.id]
  engine = {
    input_shape = [28, 28, 1]
    layers = [
      { type = "conv2d", filters = 32, kernel_size = [3, 3], activation = "relu" },
      { type = "max_pooling2d", pool_size = [2, 2] },
      { type = "conv2d", filters = 64, kernel_size = [3, 3], activation = "relu" },
      { type = "max_pooling2d", pool_size = [2, 2] },
      { type = "conv2d", filters = 128, kernel_size = [3, 3], activation = "relu" },
      { type = "max_pooling2d", pool_size = [2, 2] },
      { type = "flatten" },
      { type = "dense", units = 512, activation = "relu" },
      { type = "dense", units = 10 },
    ]
    loss             = "sparse_categorical_crossentropy"
    optimizer        = { type = "adam", learning_rate = 0.001 }
    epochs           = 1
    batch_size       = 64
    validation_split = 0.1
    seed             = %d
    threads          = 2
  }
  dataset = {
    format       = "idx"
    train_images = "%[2]s/train-images-idx3-ubyte.gz"
    train_labels = "%[2]s/train-labels-idx1-ubyte.gz"
    test_images  = "%[2]s/t10k-images-idx3-ubyte.gz"
    test_labels  = "%[2]s/t10k-labels-idx1-ubyte.gz"
    rescale      = 1 / 255
    limit        = 2000
    test_limit   = 500
  }
}

resource "hadron_model_endpoint" "clf" {
  name           = "fashion"
  instance_ids   = [hadron_gpu_instance.node.id]
  source         = hadron_training_job.cnn.model_uri
  sha256         = hadron_training_job.cnn.model_sha256
  max_batch_size = 8
}
`, seed, fashionMNIST)
}

func TestAccQuickstart_trainServeRetrain(t *testing.T) {
	dataDir := t.TempDir()
	var firstDigest string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkLocalNodesGone(dataDir),
		Steps: []resource.TestStep{
			{
				Config: quickstartConfig(dataDir, 1),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("hadron_training_job.cnn", "status", "succeeded"),
					resource.TestCheckResourceAttr("hadron_training_job.cnn", "history.#", "1"),
					resource.TestMatchResourceAttr("hadron_training_job.cnn", "model_uri", regexp.MustCompile(`^file:///.*/model\.onnx$`)),
					checkAttrAbove("hadron_training_job.cnn", "test_accuracy", 0.6),
					resource.TestCheckResourceAttrPair("hadron_model_endpoint.clf", "sha256", "hadron_training_job.cnn", "model_sha256"),
					resource.TestCheckResourceAttr("hadron_model_endpoint.clf", "execution_provider_in_use", "cpu"),
					resource.TestCheckResourceAttr("hadron_model_endpoint.clf", "inputs.0.name", "input"),
					resource.TestCheckResourceAttr("hadron_model_endpoint.clf", "inputs.0.shape.0", "-1"),
					checkInfers("hadron_model_endpoint.clf", "hadron_gpu_instance.node", 3),
					func(s *terraform.State) error {
						firstDigest = s.RootModule().Resources["hadron_model_endpoint.clf"].Primary.Attributes["sha256"]
						return nil
					},
				),
			},
			{
				// Another seed is another job; the endpoint follows in place.
				Config: quickstartConfig(dataDir, 2),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("hadron_training_job.cnn", plancheck.ResourceActionReplace),
					plancheck.ExpectResourceAction("hadron_model_endpoint.clf", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("hadron_gpu_instance.node", plancheck.ResourceActionNoop),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrPair("hadron_model_endpoint.clf", "sha256", "hadron_training_job.cnn", "model_sha256"),
					func(s *terraform.State) error {
						if d := s.RootModule().Resources["hadron_model_endpoint.clf"].Primary.Attributes["sha256"]; d == firstDigest {
							return fmt.Errorf("endpoint still at digest %s after retraining", d)
						}
						return nil
					},
					checkServes("hadron_model_endpoint.clf", "hadron_gpu_instance.node"),
					checkInfers("hadron_model_endpoint.clf", "hadron_gpu_instance.node", 2),
				),
			},
			{
				// Someone swaps the model out of band: the plan puts it back.
				PreConfig: func() { swapModelOutOfBand(t, dataDir, "fashion") },
				Config:    quickstartConfig(dataDir, 2),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("hadron_model_endpoint.clf", plancheck.ResourceActionUpdate),
				}},
				Check: checkServes("hadron_model_endpoint.clf", "hadron_gpu_instance.node"),
			},
		},
	})
}

// checkAttrAbove checks that a numeric attribute is above min.
func checkAttrAbove(name, attr string, min float64) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		v, err := strconv.ParseFloat(s.RootModule().Resources[name].Primary.Attributes[attr], 64)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", name, attr, err)
		}
		if v <= min {
			return fmt.Errorf("%s.%s = %g, want above %g", name, attr, v, min)
		}
		return nil
	}
}

// checkInfers sends n Fashion-MNIST test images to the endpoint over HTTP
// and checks the shape of the answer.
func checkInfers(endpoint, node string, n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ep := s.RootModule().Resources[endpoint].Primary.Attributes
		token := s.RootModule().Resources[node].Primary.Attributes["token"]
		data := make([]float32, n*784)
		for i := range data {
			data[i] = float32(i%255) / 255
		}
		body, _ := json.Marshal(map[string]any{"id": "acc", "inputs": []map[string]any{{
			"name": "input", "datatype": "FP32", "shape": []int{n, 28, 28, 1}, "data": data}}})
		req, _ := http.NewRequest("POST", ep["infer_url"], bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("infer: %s: %s", resp.Status, raw)
		}
		var out struct {
			ID           string `json:"id"`
			ModelVersion string `json:"model_version"`
			Outputs      []struct {
				Shape []int     `json:"shape"`
				Data  []float64 `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		if out.ID != "acc" || len(out.Outputs) != 1 || fmt.Sprint(out.Outputs[0].Shape) != fmt.Sprint([]int{n, 10}) || len(out.Outputs[0].Data) != n*10 {
			return fmt.Errorf("infer answer: got %s, want id acc and one [%d 10] output", raw, n)
		}
		if out.ModelVersion != ep["version"] {
			return fmt.Errorf("answer from model version %s, want %s", out.ModelVersion, ep["version"])
		}
		return nil
	}
}

// checkServes asks the node's agent which digest it serves.
func checkServes(endpoint, node string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ep := s.RootModule().Resources[endpoint].Primary.Attributes
		n := s.RootModule().Resources[node].Primary.Attributes
		st, ok, err := agentclient.New(n["endpoint"], n["token"]).Model(context.Background(), ep["name"])
		if err != nil || !ok {
			return fmt.Errorf("model %s on the node: ok=%v err=%v", ep["name"], ok, err)
		}
		if st.SHA256 != ep["sha256"] || st.State != agentclient.ModelReady {
			return fmt.Errorf("node serves %s (%s), state says %s", st.SHA256, st.State, ep["sha256"])
		}
		return nil
	}
}

// swapModelOutOfBand loads another model under the same name through the
// agent API of the only local node in dataDir.
func swapModelOutOfBand(t *testing.T, dataDir, name string) {
	t.Helper()
	c := onlyLocalNode(t, dataDir)
	model, _ := filepath.Abs("../runtime/inference/testdata/cnn.onnx")
	digest, err := fileSHA256(model)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoadModel(context.Background(), name, agentclient.LoadRequest{Version: "rogue", Source: "file://" + model, SHA256: digest}); err != nil {
		t.Fatalf("out-of-band load: %v", err)
	}
}

func onlyLocalNode(t *testing.T, dataDir string) *agentclient.Client {
	t.Helper()
	nodes, _ := filepath.Glob(filepath.Join(dataDir, "nodes", "local-*"))
	if len(nodes) != 1 {
		t.Fatalf("want one local node in %s, got %v", dataDir, nodes)
	}
	addr, err1 := os.ReadFile(filepath.Join(nodes[0], "agent.addr"))
	token, err2 := os.ReadFile(filepath.Join(nodes[0], "token"))
	if err1 != nil || err2 != nil {
		t.Fatalf("reading node: %v %v", err1, err2)
	}
	return agentclient.New(strings.TrimSpace(string(addr)), strings.TrimSpace(string(token)))
}

func TestAccTrainingJob_commandTorchrunEnv(t *testing.T) {
	dataDir := t.TempDir()
	config := localProviderConfig(dataDir) + `
resource "hadron_gpu_instance" "a" {
  name = "ddp-a"
}

resource "hadron_gpu_instance" "b" {
  name = "ddp-b"
}

resource "hadron_training_job" "ddp" {
  name         = "ddp"
  instance_ids = [hadron_gpu_instance.a.id, hadron_gpu_instance.b.id]
  command = {
    argv = ["sh", "-c", "env | grep -E '^(MASTER_ADDR|MASTER_PORT|NODE_RANK|NNODES|WORLD_SIZE|HADRON_NODE_IPS|GREETING)=' | sort > $HADRON_OUTPUT_DIR/env.txt"]
    env  = { GREETING = "hello" }
    master_port = 29555
  }
}
`
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkLocalNodesGone(dataDir),
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("hadron_training_job.ddp", "status", "succeeded"),
				resource.TestCheckResourceAttr("hadron_training_job.ddp", "node_job_ids.#", "2"),
				func(*terraform.State) error {
					files, _ := filepath.Glob(filepath.Join(dataDir, "nodes", "*", "data", "files", "jobs", "*", "output", "env.txt"))
					if len(files) != 2 {
						return fmt.Errorf("want env.txt from 2 nodes, got %v", files)
					}
					ranks := map[string]bool{}
					for _, f := range files {
						b, _ := os.ReadFile(f)
						env := string(b)
						for _, want := range []string{"MASTER_ADDR=127.0.0.1\n", "MASTER_PORT=29555\n", "NNODES=2\n", "WORLD_SIZE=2\n",
							"HADRON_NODE_IPS=127.0.0.1,127.0.0.1\n", "GREETING=hello\n"} {
							if !strings.Contains(env, want) {
								return fmt.Errorf("%s: missing %q in\n%s", f, want, env)
							}
						}
						m := regexp.MustCompile(`NODE_RANK=(\d)`).FindStringSubmatch(env)
						if m == nil {
							return fmt.Errorf("%s: no NODE_RANK in\n%s", f, env)
						}
						ranks[m[1]] = true
					}
					if !ranks["0"] || !ranks["1"] {
						return fmt.Errorf("ranks seen: %v, want 0 and 1", ranks)
					}
					return nil
				},
			),
		}},
	})
}

func TestAccTrainingJob_badInput(t *testing.T) {
	dataDir := t.TempDir()
	tests := []struct{ name, config, want string }{
		{"layer does not fit", `
resource "hadron_training_job" "x" {
  name         = "x"
  instance_ids = ["local-000000000000"]
  engine = {
    input_shape = [4, 4, 1]
    layers = [
      { type = "conv2d", filters = 8, kernel_size = [5, 5] },
      { type = "dense", units = 2 },
    ]
    loss   = "mse"
    epochs = 1
  }
  dataset = { format = "csv", train = "/tmp/x.csv" }
}`, `(?s)Invalid Training Job.*layer`},
		{"engine and command", `
resource "hadron_training_job" "x" {
  name         = "x"
  instance_ids = ["local-000000000000"]
  command      = { argv = ["true"] }
  engine = {
    layers = [{ type = "dense", units = 1 }]
    loss   = "mse"
    epochs = 1
  }
  dataset = { format = "csv", train = "/tmp/x.csv" }
}`, `(?s)2 attributes specified when one \(and only one\) of \[engine,command\] is\s+required`},
		{"engine on two nodes", `
resource "hadron_training_job" "x" {
  name         = "x"
  instance_ids = ["local-000000000000", "local-000000000001"]
  engine = {
    input_shape = [2]
    layers = [{ type = "dense", units = 1 }]
    loss   = "mse"
    epochs = 1
  }
  dataset = { format = "csv", train = "/tmp/x.csv" }
}`, `(?s)Too Many Nodes For The Engine`},
		{"upload of a missing file", `
resource "hadron_training_job" "x" {
  name         = "x"
  instance_ids = ["local-000000000000"]
  engine = {
    input_shape = [2]
    layers = [{ type = "dense", units = 1 }]
    loss   = "mse"
    epochs = 1
  }
  dataset = { format = "csv", location = "upload", train = "/no/such/train.csv" }
}`, `(?s)Dataset File Not Found.*/no/such/train.csv`},
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
