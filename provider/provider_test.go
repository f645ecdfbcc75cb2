package provider

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

// testAccProtoV6ProviderFactories serves the provider in-process to the real
// Terraform CLI that terraform-plugin-testing drives.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"hadron": providerserver.NewProtocol6WithError(New("test")()),
}

// testHadrond is the hadrond binary built once for the acceptance tests;
// testHadrondNext is the same runtime stamped with a newer version, to test
// upgrades.
var testHadrond, testHadrondNext string

// nextRuntimeVersion is testHadrondNext's version.
const nextRuntimeVersion = "0.1.1-next"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hadron-provider-test")
	if err != nil {
		panic(err)
	}
	testHadrond = filepath.Join(dir, "hadrond")
	if out, err := exec.Command("go", "build", "-o", testHadrond, "../runtime/cmd/hadrond").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("building hadrond: %v\n%s", err, out))
	}
	testHadrondNext = filepath.Join(dir, "hadrond-next")
	ldflags := "-X github.com/hadron-ai/terraform-provider-hadron/internal/version.Version=" + nextRuntimeVersion
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", testHadrondNext, "../runtime/cmd/hadrond").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("building hadrond: %v\n%s", err, out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// localProviderConfig is a provider block that keeps a test's local nodes in
// its own directory.
func localProviderConfig(dataDir string) string {
	return fmt.Sprintf(`
provider "hadron" {
  local {
    data_dir     = %q
    runtime_path = %q
  }
}
`, dataDir, testHadrond)
}
