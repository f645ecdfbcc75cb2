package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/hadron-ai/terraform-provider-hadron/internal/agentclient"
)

func TestAccGPUInstance_localLifecycle(t *testing.T) {
	dataDir := t.TempDir()
	config := localProviderConfig(dataDir) + `
resource "hadron_gpu_instance" "test" {
  name = "acc-node"
  tags = { team = "ml" }
}
`
	var firstID string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkLocalNodesGone(dataDir),
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("hadron_gpu_instance.test", "cloud", "local"),
					resource.TestCheckResourceAttr("hadron_gpu_instance.test", "status", "ready"),
					resource.TestCheckResourceAttr("hadron_gpu_instance.test", "detected_gpu_count", "0"),
					resource.TestCheckResourceAttr("hadron_gpu_instance.test", "detected_gpu_model", "none"),
					resource.TestCheckResourceAttr("hadron_gpu_instance.test", "runtime_version", "0.1.0-dev"),
					resource.TestMatchResourceAttr("hadron_gpu_instance.test", "id", regexp.MustCompile(`^local-[0-9a-f]{12}$`)),
					resource.TestMatchResourceAttr("hadron_gpu_instance.test", "endpoint", regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`)),
					resource.TestMatchResourceAttr("hadron_gpu_instance.test", "vcpus", regexp.MustCompile(`^[1-9]\d*$`)),
					resource.TestMatchResourceAttr("hadron_gpu_instance.test", "token", regexp.MustCompile(`^[0-9a-f]{64}$`)),
					checkAgentAnswers("hadron_gpu_instance.test"),
					func(s *terraform.State) error {
						firstID = s.RootModule().Resources["hadron_gpu_instance.test"].Primary.ID
						return nil
					},
				),
			},
			{
				ResourceName:            "hadron_gpu_instance.test",
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// Tags change in place: same node.
				Config: strings.Replace(config, `team = "ml"`, `team = "research"`, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("hadron_gpu_instance.test", plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("hadron_gpu_instance.test", "tags.team", "research"),
					func(s *terraform.State) error {
						if id := s.RootModule().Resources["hadron_gpu_instance.test"].Primary.ID; id != firstID {
							return fmt.Errorf("tag change replaced the node: id %s, want %s", id, firstID)
						}
						return nil
					},
				),
			},
			{
				// A new runtime next to the provider: the node restarts on it in
				// place, keeping its id and endpoint.
				Config: strings.Replace(strings.Replace(config, `team = "ml"`, `team = "research"`, 1), testHadrond, testHadrondNext, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("hadron_gpu_instance.test", plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("hadron_gpu_instance.test", "runtime_version", nextRuntimeVersion),
					resource.TestCheckResourceAttr("hadron_gpu_instance.test", "status", "ready"),
					checkAgentAnswers("hadron_gpu_instance.test"),
					func(s *terraform.State) error {
						if id := s.RootModule().Resources["hadron_gpu_instance.test"].Primary.ID; id != firstID {
							return fmt.Errorf("runtime upgrade replaced the node: id %s, want %s", id, firstID)
						}
						return nil
					},
				),
			},
			{
				// The agent dies out of band: the next plan replaces the node.
				PreConfig: func() { killLocalAgent(t, dataDir, firstID) },
				Config:    strings.Replace(strings.Replace(config, `team = "ml"`, `team = "research"`, 1), testHadrond, testHadrondNext, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("hadron_gpu_instance.test", plancheck.ResourceActionReplace),
				}},
				Check: func(s *terraform.State) error {
					if id := s.RootModule().Resources["hadron_gpu_instance.test"].Primary.ID; id == firstID {
						return fmt.Errorf("node %s was not recreated", id)
					}
					return nil
				},
			},
		},
	})
}

func TestAccGPUInstance_badInput(t *testing.T) {
	dataDir := t.TempDir()
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"unknown cloud", `resource "hadron_gpu_instance" "x" {
  name  = "x"
  cloud = "gcp"
}`, `(?s)Attribute cloud value must be one of`},
		{"negative gpu count", `resource "hadron_gpu_instance" "x" {
  name  = "x"
  cloud = "aws"
  gpu {
    count = -1
  }
}`, `(?s)Attribute gpu.count value must be at least 1, got: -1`},
		{"region on local", `resource "hadron_gpu_instance" "x" {
  name   = "x"
  region = "us-east-1"
}`, `(?s)Attribute not supported for this cloud.*region is not supported with cloud = "local"`},
		{"gpu on local", `resource "hadron_gpu_instance" "x" {
  name  = "x"
  cloud = "local"
  gpu {
    model = "A10G"
  }
}`, `(?s)gpu is not supported with cloud = "local"`},
		{"bad name", `resource "hadron_gpu_instance" "x" {
  name = "My_Node"
}`, `(?s)Attribute name must be 1 to 63 lower-case letters`},
		{"zone and zones", `resource "hadron_gpu_instance" "x" {
  name  = "x"
  cloud = "aws"
  zone  = "us-east-1a"
  zones = ["us-east-1b"]
}`, `(?s)Attribute "zone" cannot be specified when "zones" is specified`},
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

// checkAgentAnswers calls the node's agent with the token from state.
func checkAgentAnswers(name string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[name]
		n, err := agentclient.New(rs.Primary.Attributes["endpoint"], rs.Primary.Attributes["token"]).Node(context.Background())
		if err != nil {
			return fmt.Errorf("asking the node's agent: %w", err)
		}
		if n.RuntimeVersion == "" {
			return fmt.Errorf("agent reported no runtime version")
		}
		return nil
	}
}

func killLocalAgent(t *testing.T, dataDir, id string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "nodes", id, "agent.pid"))
	if err != nil {
		t.Fatalf("reading agent pid: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing agent %d: %v", pid, err)
	}
}

// checkLocalNodesGone verifies that destroy left no node directory and no
// agent process behind.
func checkLocalNodesGone(dataDir string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		entries, _ := os.ReadDir(filepath.Join(dataDir, "nodes"))
		if len(entries) > 0 {
			return fmt.Errorf("destroy left %d node directories in %s", len(entries), dataDir)
		}
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			cmd, err := os.ReadFile(p)
			if err == nil && strings.Contains(string(cmd), dataDir) {
				return fmt.Errorf("destroy left an agent running: %s (%s)", p, strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
		return nil
	}
}
