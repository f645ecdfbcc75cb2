package provider

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// writeBlobsCSV writes a small two-class CSV (label, x, y): two separable
// blobs, seeded.
func writeBlobsCSV(t *testing.T, path string, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	var b strings.Builder
	b.WriteString("label,x,y\n")
	for i := range n {
		c := i % 2
		fmt.Fprintf(&b, "%d,%.4f,%.4f\n", c, float64(2*c-1)+r.NormFloat64()*0.3, float64(1-2*c)+r.NormFloat64()*0.3)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func csvJobConfig(dataDir, location, train, sha string) string {
	shaAttr := ""
	if sha != "" {
		shaAttr = fmt.Sprintf("sha256 = { train = %q }", sha)
	}
	return localProviderConfig(dataDir) + fmt.Sprintf(`
resource "hadron_gpu_instance" "node" {
  name = "csv"
}

resource "hadron_training_job" "blobs" {
  name         = "blobs"
  instance_ids = [hadron_gpu_instance.node.id]
  engine = {
    input_shape = [2]
    layers = [
      { type = "dense", units = 8, activation = "relu" },
      { type = "dense", units = 2 },
    ]
    loss       = "sparse_categorical_crossentropy"
    optimizer  = { type = "sgd", learning_rate = 0.1, momentum = 0.9 }
    epochs     = 3
    batch_size = 16
    seed       = 3
    threads    = 1
  }
  dataset = {
    format       = "csv"
    location     = %q
    train        = %q
    label_column = 0
    %s
  }
}
`, location, train, shaAttr)
}

// TestAccTrainingJob_datasetUploadAndURL trains on a CSV file uploaded from
// this machine, then on the same file fetched by the node from a URL with its
// sha256, and checks that a wrong digest is refused before training.
func TestAccTrainingJob_datasetUploadAndURL(t *testing.T) {
	dataDir := t.TempDir()
	csvPath := filepath.Join(t.TempDir(), "blobs.csv")
	writeBlobsCSV(t, csvPath, 400)
	digest, err := fileSHA256(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(csvPath))))
	defer origin.Close()
	url := origin.URL + "/blobs.csv"

	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkLocalNodesGone(dataDir),
		Steps: []resource.TestStep{
			{
				Config: csvJobConfig(dataDir, "upload", csvPath, ""),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("hadron_training_job.blobs", "status", "succeeded"),
					resource.TestCheckResourceAttr("hadron_training_job.blobs", "history.#", "3"),
					checkAttrAbove("hadron_training_job.blobs", "history.2.train_accuracy", 0.9),
				),
			},
			{
				Config:      csvJobConfig(dataDir, "url", url, strings.Repeat("0", 64)),
				ExpectError: regexp.MustCompile(`(?s)Dataset Not Staged.*sha256 mismatch`),
			},
			{
				Config: csvJobConfig(dataDir, "url", url, digest),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("hadron_training_job.blobs", "status", "succeeded"),
					checkAttrAbove("hadron_training_job.blobs", "history.2.train_accuracy", 0.9),
				),
			},
		},
	})
}
