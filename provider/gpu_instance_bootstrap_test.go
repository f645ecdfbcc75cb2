package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap"
	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap/sshdtest"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

var (
	bundleMu   sync.Mutex
	bundleDirs = map[string]string{}
)

// testBundle builds the linux/amd64 runtime bundle of a version once per
// test binary.
func testBundle(t *testing.T, version string) string {
	t.Helper()
	bundleMu.Lock()
	defer bundleMu.Unlock()
	if dir, ok := bundleDirs[version]; ok {
		return dir
	}
	dir, err := os.MkdirTemp("", "hadron-bundle")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err = bootstrap.BuildBundle(ctx, bootstrap.BuildOptions{
		Version: version, OutDir: dir, ModuleDir: "..", Arches: []string{"amd64"},
		ORTLibraries: map[string]string{"amd64": os.Getenv("HADRON_ORT_LIBRARY")}, NoGzip: true,
	})
	if err != nil {
		t.Fatalf("building the runtime bundle %s: %v", version, err)
	}
	bundleDirs[version] = dir
	return dir
}

// TestAccGPUInstance_bootstrapOverSSH creates an AWS and an Alibaba Cloud
// instance against the wire-level fakes, whose public IPs are real OpenSSH
// servers on loopback addresses, and checks that apply returns only when the
// agents installed over SSH answer through the tunnel.
func TestAccGPUInstance_bootstrapOverSSH(t *testing.T) {
	if err := sshdtest.Available(); err != nil {
		t.Fatalf("sshd nodes cannot run here: %v (make test installs openssh-server)", err)
	}
	bundle := testBundle(t, "0.1.0-acc")
	nextBundle := testBundle(t, "0.1.1-acc")
	dir := t.TempDir()
	t.Cleanup(func() { killProcessesUnder(dir) })
	// The runtime runs as the unprivileged hadron user: let it reach its prefix.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"sshd-a", "sshd-b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	nodeA, err := sshdtest.Start(filepath.Join(dir, "sshd-a"), "127.0.0.2", sshdtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodeA.Stop)
	nodeB, err := sshdtest.Start(filepath.Join(dir, "sshd-b"), "127.0.0.3", sshdtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodeB.Stop)
	keyA, keyB := filepath.Join(dir, "key-a"), filepath.Join(dir, "key-b")
	os.WriteFile(keyA, nodeA.UserKeyPEM, 0o600)
	os.WriteFile(keyB, nodeB.UserKeyPEM, 0o600)

	ec2, err := fakeec2.Start(fakeec2.Config{AccessKeyID: "AKIDBOOTSTRAP", SecretAccessKey: "bootstrap-secret"}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ec2.Close() })
	ec2.SetDefaultPublicIP("127.0.0.2")
	ecs := fakeecs.Start(fakeecs.Options{Instant: true})
	t.Cleanup(ecs.Close)
	ecs.SetNextPublicIPs("127.0.0.3")

	config := fmt.Sprintf(`
provider "hadron" {
  local {
    data_dir     = %[1]q
    runtime_path = %[2]q
  }
  bundle {
    dir = %[3]q
  }
  aws {
    region     = "us-east-1"
    access_key = "AKIDBOOTSTRAP"
    secret_key = "bootstrap-secret"
    endpoints {
      ec2 = %[4]q
    }
  }
  aliyun {
    region     = "cn-hangzhou"
    access_key = %[5]q
    secret_key = %[6]q
    endpoint   = %[7]q
  }
}

resource "hadron_gpu_instance" "aws" {
  name          = "boot-aws"
  cloud         = "aws"
  instance_type       = "g5.xlarge"
  zone                = "us-east-1a"
  associate_public_ip = true
  timeouts = {
    create = "3m"
  }
  ssh {
    user        = "root"
    private_key = file(%[8]q)
    port        = %[9]d
  }
  runtime {
    prefix           = "%[1]s/aws/prefix"
    data_dir         = "%[1]s/aws/data"
    port             = 0
    service          = "supervised"
    check_gpu_driver = false
  }
}

resource "hadron_gpu_instance" "aliyun" {
  name                = "boot-aliyun"
  cloud               = "aliyun"
  instance_type       = "ecs.gn7i-c8g1.2xlarge"
  associate_public_ip = true
  timeouts = {
    create = "3m"
  }
  ssh {
    user        = "root"
    private_key = file(%[10]q)
    port        = %[11]d
  }
  runtime {
    prefix           = "%[1]s/aliyun/prefix"
    data_dir         = "%[1]s/aliyun/data"
    port             = 0
    service          = "supervised"
    check_gpu_driver = false
  }
}

output "aws_node" {
  value = "${hadron_gpu_instance.aws.status} ${hadron_gpu_instance.aws.runtime_version} vcpus=${hadron_gpu_instance.aws.vcpus}"
}
`, dir, testHadrond, bundle, ec2.URL, fakeecs.TestAccessKeyID, fakeecs.TestAccessKeySecret, ecs.URL, keyA, nodeA.Port, keyB, nodeB.Port)

	var awsID, aliyunID string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy: func(*terraform.State) error {
			if n := len(ec2.LiveInstances()); n != 0 {
				return fmt.Errorf("%d EC2 instances left after destroy", n)
			}
			for _, in := range ecs.Instances() {
				if !in.Released {
					return fmt.Errorf("ECS instance %s left after destroy", in.ID)
				}
			}
			return nil
		},
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "status", "ready"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "runtime_version", "0.1.0-acc"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "public_ip", "127.0.0.2"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "host_key_fingerprint", nodeA.Fingerprint),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aliyun", "status", "ready"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aliyun", "runtime_version", "0.1.0-acc"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aliyun", "host_key_fingerprint", nodeB.Fingerprint),
				resource.TestMatchResourceAttr("hadron_gpu_instance.aws", "vcpus", regexp.MustCompile(`^[1-9]\d*$`)),
				resource.TestMatchResourceAttr("hadron_gpu_instance.aliyun", "hostname", regexp.MustCompile(`.+`)),
				resource.TestMatchOutput("aws_node", regexp.MustCompile(`^ready 0\.1\.0-acc vcpus=[1-9]`)),
				captureID("hadron_gpu_instance.aws", &awsID),
				captureID("hadron_gpu_instance.aliyun", &aliyunID),
			),
		}, {
			// The node's host key changes between applies: refresh refuses it.
			PreConfig:   func() { swapHostKey(t, nodeA, filepath.Join(dir, "hostkey-a")) },
			Config:      config,
			ExpectError: regexp.MustCompile(`(?s)SSH Host Key Changed.*` + regexp.QuoteMeta(nodeA.Fingerprint)),
		}, {
			// The original key is back: the connection is trusted again and
			// nothing changes.
			PreConfig: func() { restoreHostKey(t, nodeA, filepath.Join(dir, "hostkey-a")) },
			Config:    config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("hadron_gpu_instance.aws", plancheck.ResourceActionNoop),
			}},
		}, {
			// Someone stops both instances in the console: refresh says so
			// (with a warning) instead of trying to reach the agents.
			PreConfig: func() {
				if err := ec2.Stop(awsID); err != nil {
					t.Fatal(err)
				}
				if err := ecs.Stop(aliyunID); err != nil {
					t.Fatal(err)
				}
			},
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "status", "stopped"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "public_ip", ""),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aliyun", "status", "stopped"),
			),
		}, {
			// The next apply starts them (EC2 gives a new public IP) and
			// brings their runtime back, in place.
			Config: config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("hadron_gpu_instance.aws", plancheck.ResourceActionUpdate),
				plancheck.ExpectResourceAction("hadron_gpu_instance.aliyun", plancheck.ResourceActionUpdate),
				plancheck.ExpectUnknownValue("hadron_gpu_instance.aws", tfjsonpath.New("public_ip")),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "status", "ready"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "public_ip", "127.0.0.2"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aliyun", "status", "ready"),
				func(*terraform.State) error {
					if in, _ := ec2.Instance(awsID); in.State != "running" {
						return fmt.Errorf("EC2 instance %s is %s after apply, want running", awsID, in.State)
					}
					if in, _ := ecs.Instance(aliyunID); in.Status != "Running" {
						return fmt.Errorf("ECS instance %s is %s after apply, want Running", aliyunID, in.Status)
					}
					return nil
				},
			),
		}, {
			// A provider with a newer runtime: the plan shows an in-place
			// upgrade of both nodes, and apply performs it.
			Config: strings.Replace(config, bundle, nextBundle, 1),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("hadron_gpu_instance.aws", plancheck.ResourceActionUpdate),
				plancheck.ExpectResourceAction("hadron_gpu_instance.aliyun", plancheck.ResourceActionUpdate),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "runtime_version", "0.1.1-acc"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "status", "ready"),
				resource.TestCheckResourceAttr("hadron_gpu_instance.aliyun", "runtime_version", "0.1.1-acc"),
				resource.TestMatchOutput("aws_node", regexp.MustCompile(`^ready 0\.1\.1-acc vcpus=[1-9]`)),
			),
		}, {
			// A changed runtime block is applied in place: the agent's
			// config is rewritten and it restarts.
			Config: strings.Replace(strings.Replace(config, bundle, nextBundle, 1), `    check_gpu_driver = false
  }
}

resource "hadron_gpu_instance" "aliyun"`, `    check_gpu_driver = false
    idle_timeout     = "2h"
    idle_action      = "stop"
  }
}

resource "hadron_gpu_instance" "aliyun"`, 1),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("hadron_gpu_instance.aws", plancheck.ResourceActionUpdate),
				plancheck.ExpectResourceAction("hadron_gpu_instance.aliyun", plancheck.ResourceActionNoop),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("hadron_gpu_instance.aws", "status", "ready"),
				func(*terraform.State) error {
					b, err := os.ReadFile(filepath.Join(dir, "aws", "prefix", "etc", "hadrond.hcl"))
					if err != nil || !strings.Contains(string(b), `idle_timeout     = "2h"`) || !strings.Contains(string(b), `idle_action      = "stop"`) {
						return fmt.Errorf("agent config after the change (%v):\n%s", err, b)
					}
					return nil
				},
			),
		}},
	})
}

// swapHostKey saves a node's host key to backup and gives it a new one.
func swapHostKey(t *testing.T, n *sshdtest.Node, backup string) {
	t.Helper()
	for _, ext := range []string{"", ".pub"} {
		b, err := os.ReadFile(filepath.Join(n.Dir, "host_ed25519"+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(backup+ext, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.NewHostKey(); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
}

// restoreHostKey puts a saved host key back.
func restoreHostKey(t *testing.T, n *sshdtest.Node, backup string) {
	t.Helper()
	for _, ext := range []string{"", ".pub"} {
		b, err := os.ReadFile(backup + ext)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.Dir, "host_ed25519"+ext), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
}

// killProcessesUnder stops every process whose command line mentions dir
// (agents and supervisors the test's nodes run on this machine).
func killProcessesUnder(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(cmd), dir) {
			continue
		}
		var pid int
		fmt.Sscanf(strings.Split(p, "/")[2], "%d", &pid)
		if pid > 0 && pid != os.Getpid() {
			if proc, err := os.FindProcess(pid); err == nil {
				proc.Kill()
			}
		}
	}
}
