package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fashionDir = "/usr/share/datasets/fashion-mnist"

func fashionJob(t *testing.T) JobSpec {
	t.Helper()
	if _, err := os.Stat(filepath.Join(fashionDir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Fashion-MNIST not found in %s: run make test (which installs the Debian package dataset-fashion-mnist) or apt-get install dataset-fashion-mnist", fashionDir)
	}
	src, err := os.ReadFile("testdata/fashion_mnist.hcl")
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseJobHCL(src, "testdata/fashion_mnist.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestParseSeedRecipe(t *testing.T) {
	src, err := os.ReadFile("testdata/cats_vs_dogs.hcl")
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseJobHCL(src, "cats_vs_dogs.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Validate(); err != nil {
		t.Fatalf("validating the seed recipe: %v", err)
	}
	p, err := j.prepare()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(p.model.Params), 19034177; got != want {
		t.Errorf("parameters = %d, want %d", got, want)
	}
	if got, want := j.Dataset.Rescale, 1.0/255; got != want {
		t.Errorf("rescale = %v, want %v", got, want)
	}
	if p.loss != lossBCE || p.model.finalActivation() != actSigmoid {
		t.Errorf("loss %v with final activation %v, want binary cross-entropy with sigmoid", p.loss, p.model.finalActivation())
	}
	// The same job round-trips through JSON (the API's format).
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	j2, err := ParseJobJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := j2.prepare()
	if err != nil {
		t.Fatal(err)
	}
	if p.digest() != p2.digest() {
		t.Errorf("JSON round trip changed the job:\n%s", b)
	}
}

func TestJobErrors(t *testing.T) {
	tests := []struct {
		name string
		hcl  string
		want string
	}{
		{"missing epochs", `loss = "mse"
dataset { format = "idx" }
model {
  layer "dense" { units = 1 }
}`, `The argument "epochs" is required`},
		{"bad layer", `epochs = 1
loss = "mse"
dataset {
  format = "idx"
  train_images = "a"
  train_labels = "b"
}
model {
  input_shape = [4, 4, 1]
  layer "dense" { units = 1 }
}`, "model: layer 1 (dense): needs a flat input"},
		{"loss and activation disagree", `epochs = 1
loss = "binary_crossentropy"
dataset {
  format = "idx"
  train_images = "a"
  train_labels = "b"
}
model {
  input_shape = [4]
  layer "dense" {
    units = 3
    activation = "softmax"
  }
}`, "needs a sigmoid or linear last layer, got softmax"},
		{"unknown format", `epochs = 1
loss = "mse"
dataset { format = "parquet" }
model {
  input_shape = [4]
  layer "dense" { units = 1 }
}`, `unknown format "parquet"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := ParseJobHCL([]byte(tt.hcl), "job.hcl")
			if err == nil {
				err = j.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestTrainFashionMNISTSubset is the real training test: 2000 images, one
// epoch, must be far above chance (0.10) on 1000 test images.
func TestTrainFashionMNISTSubset(t *testing.T) {
	j := fashionJob(t)
	j.Dataset.Limit = 2000
	j.Dataset.TestLimit = 1000
	j.ValidationSplit = 0.1
	dir := t.TempDir()
	var lines []Progress
	res, err := RunJob(context.Background(), j, dir, func(p Progress) {
		if p.EpochDone != nil {
			lines = append(lines, p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	acc := *res.Metrics.TestAccuracy
	t.Logf("test accuracy %.3f, %.0f samples/s", acc, res.Metrics.Epochs[0].SamplesPerSec)
	if acc < 0.60 {
		t.Errorf("test accuracy after one epoch on 2000 images = %.3f, want >= 0.60", acc)
	}
	if len(lines) != 1 || lines[0].EpochDone.ValAccuracy == nil {
		t.Errorf("got %d epoch progress reports (%+v), want 1 with validation metrics", len(lines), lines)
	}
	for _, f := range []string{ModelFile, DigestFile, MetricsFile, ChartFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
	var m Metrics
	b, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
	if err := json.Unmarshal(b, &m); err != nil || !m.Complete || len(m.Epochs) != 1 || m.TrainSamples != 1800 || m.ValSamples != 200 {
		t.Errorf("metrics.json = %s (err %v), want one complete epoch over 1800 training and 200 validation samples", b, err)
	}
	f, _ := os.Open(filepath.Join(dir, ChartFile))
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("chart.png is not a PNG: %v", err)
	}
	sum, _ := os.ReadFile(filepath.Join(dir, DigestFile))
	if want := res.ModelSHA256 + "  model.onnx\n"; string(sum) != want {
		t.Errorf("model.onnx.sha256 = %q, want %q", sum, want)
	}
}

// TestResumeIsBitIdentical interrupts a job mid-epoch, resumes it in the
// same directory and compares the final weights with an uninterrupted run.
func TestResumeIsBitIdentical(t *testing.T) {
	j := fashionJob(t)
	j.Dataset.Limit = 320
	j.Dataset.TestImages, j.Dataset.TestLabels = "", ""
	j.Epochs = 2
	j.BatchSize = 32
	j.ValidationSplit = 0.2
	j.CheckpointEverySteps = 3
	// A smaller model with dropout keeps the test fast and covers the dropout stream.
	j.Model = ModelSpec{InputShape: []int{28, 28, 1}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 8, KernelSize: []int{3, 3}, Strides: []int{2, 2}, Activation: "relu"},
		{Type: "max_pooling2d"},
		{Type: "flatten"},
		{Type: "dropout", Rate: 0.25},
		{Type: "dense", Units: 10},
	}}
	want, err := RunJob(context.Background(), j, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		stopAt uint64
		kill   bool
	}{
		// 8 steps per epoch, checkpoints every 3 steps and at epoch ends.
		{"killed in the first epoch after a step checkpoint", 5, true},
		{"killed in the second epoch", 13, true},
		{"cancelled gracefully", 7, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			_, err := runJob(ctx, j, dir, func(p Progress) {
				if p.GlobalStep == tt.stopAt {
					cancel()
				}
			}, runOptions{noSaveOnCancel: tt.kill})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run returned %v, want context.Canceled", err)
			}
			if _, err := os.Stat(filepath.Join(dir, ModelFile)); err == nil {
				t.Fatal("interrupted run exported a model")
			}
			var first uint64
			got, err := RunJob(context.Background(), j, dir, func(p Progress) {
				if first == 0 && p.GlobalStep > 0 {
					first = p.GlobalStep
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if !got.Resumed || first == 1 {
				t.Errorf("second run resumed=%v starting at step %d, want a resume from a checkpoint", got.Resumed, first)
			}
			if got.ModelSHA256 != want.ModelSHA256 {
				t.Errorf("resumed model sha256 %s, uninterrupted %s: weights differ", got.ModelSHA256, want.ModelSHA256)
			}
			for i := range want.Metrics.Epochs {
				g, w := got.Metrics.Epochs[i], want.Metrics.Epochs[i]
				if g.TrainLoss != w.TrainLoss || *g.ValLoss != *w.ValLoss {
					t.Errorf("epoch %d: train/val loss %v/%v, uninterrupted %v/%v", i+1, g.TrainLoss, *g.ValLoss, w.TrainLoss, *w.ValLoss)
				}
			}
		})
	}
	t.Run("another job refuses the checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		_, _ = RunJob(ctx, j, dir, func(p Progress) {
			if p.GlobalStep == 2 {
				cancel()
			}
		})
		cancel()
		j2 := j
		j2.Seed++
		_, err := RunJob(context.Background(), j2, dir, nil)
		if err == nil || !strings.Contains(err.Error(), "belongs to a different job") {
			t.Fatalf("error = %v, want a different-job error", err)
		}
	})
}

func TestRunFile(t *testing.T) {
	dir := t.TempDir()
	// A tiny CSV job: label in column 2, two features.
	var csv strings.Builder
	csv.WriteString("x1,x2,label\n")
	for i := range 64 {
		a, b := float64(i%8)/8, float64(i/8)/8
		label := 0
		if a+b > 0.9 {
			label = 1
		}
		csv.WriteString(strings.Join([]string{ftoa(a), ftoa(b), itoa(label)}, ",") + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "points.csv"), []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	job := `epochs = 3
seed = 3
threads = 2
batch_size = 16
loss = "binary_crossentropy"
output_dir = "run"
optimizer {
  type = "sgd"
  learning_rate = 0.5
  momentum = 0.9
}
dataset {
  format = "csv"
  train = "points.csv"
  label_column = 2
}
model {
  input_shape = [2]
  layer "dense" {
    units = 8
    activation = "relu"
  }
  layer "dense" {
    units = 1
    activation = "sigmoid"
  }
}
`
	path := filepath.Join(dir, "job.hcl")
	if err := os.WriteFile(path, []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := RunFile(context.Background(), path, &out); err != nil {
		t.Fatal(err)
	}
	var epochs int
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "epoch ") {
			epochs++
		}
	}
	if epochs != 3 || !strings.Contains(out.String(), "sha256") {
		t.Errorf("output has %d epoch lines, want 3 and the model digest:\n%s", epochs, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "run", ModelFile)); err != nil {
		t.Errorf("model not in output_dir: %v", err)
	}
}

func ftoa(v float64) string { b, _ := json.Marshal(v); return string(b) }
func itoa(v int) string     { b, _ := json.Marshal(v); return string(b) }

func TestBadData(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	images := write("images", append([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2}, make([]byte, 8)...))
	labels3 := write("labels3", []byte{0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3})
	labels2 := write("labels2", []byte{0, 0, 8, 1, 0, 0, 0, 2, 1, 2})
	badMagic := write("badmagic", []byte{1, 2, 8, 1, 0, 0, 0, 2, 1, 2})
	short := write("short", append([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2}, make([]byte, 5)...))
	csvBad := write("bad.csv", []byte("1,0.5,0.5\n2,abc,0.1\n"))
	csvShort := write("short.csv", []byte("1,0.5,0.5\n2,0.1\n"))
	if err := os.MkdirAll(filepath.Join(dir, "imgs", "cat"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("imgs/cat/broken.png", []byte("not a png"))

	tests := []struct {
		name string
		load func() error
		want string
	}{
		{"idx ok", func() error { _, err := LoadIDX(images, labels2, 0); return err }, ""},
		{"idx wrong magic", func() error { _, err := LoadIDX(images, badMagic, 0); return err }, badMagic + ": wrong magic number"},
		{"idx truncated", func() error { _, err := LoadIDX(short, labels2, 0); return err }, short + ": truncated"},
		{"idx count mismatch", func() error { _, err := LoadIDX(images, labels3, 0); return err }, labels3 + " hold 3 labels but images " + images + " hold 2"},
		{"idx missing", func() error { _, err := LoadIDX(filepath.Join(dir, "nope"), labels2, 0); return err }, "nope: open"},
		{"csv not a number", func() error { _, err := LoadCSV(csvBad, 0, []int{2}, 0); return err }, csvBad + ": line 2 column 2: \"abc\" is not a number"},
		{"csv wrong width", func() error { _, err := LoadCSV(csvShort, 0, []int{2}, 0); return err }, csvShort + ": line 2 has 1 features"},
		{"unreadable image", func() error {
			_, err := LoadImageFolder(filepath.Join(dir, "imgs"), []int{4, 4, 3}, nil, 0)
			return err
		}, "broken.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadImageFolder(t *testing.T) {
	dir := t.TempDir()
	// Two classes of 8x6 images, resized to 4x3: "dark" is black, "light" white.
	for ci, class := range []string{"light", "dark"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			img := image.NewRGBA(image.Rect(0, 0, 6, 8))
			v := uint8(255 * (1 - ci))
			for p := 0; p < 48; p++ {
				img.Set(p%6, p/6, color.RGBA{v, v, v, 255})
			}
			f, err := os.Create(filepath.Join(dir, class, string(rune('a'+i))+".png"))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	os.WriteFile(filepath.Join(dir, "light", "notes.txt"), []byte("ignored"), 0o644)
	d, err := LoadImageFolder(dir, []int{4, 3, 1}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 6 || strings.Join(d.Classes, ",") != "dark,light" {
		t.Fatalf("got %d images, classes %v; want 6 in dark,light (sorted)", d.N, d.Classes)
	}
	for i := range d.N {
		wantLabel, wantPix := int32(i/3), float32(255*(i/3))
		if d.Y[i] != wantLabel || d.X[i*12] != wantPix || d.X[i*12+11] != wantPix {
			t.Errorf("image %d: label %d pixel %v..%v, want label %d pixel %v", i, d.Y[i], d.X[i*12], d.X[i*12+11], wantLabel, wantPix)
		}
	}
}
