// Command train-bench runs the Fashion-MNIST benchmark recipe of Hadron's Go
// training engine (Conv32-Pool-Conv64-Pool-Conv128-Pool-Flatten-Dense512-Dense10,
// valid padding, Adam lr 0.001, batch 64, fixed seed) and prints one JSON
// line: train samples/s, epoch wall times, peak RSS and test accuracy.
// bench/train/run.sh runs it next to bench/train/torch_ref.py.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/train"
)

// Report is the JSON line the program prints.
type Report struct {
	Impl          string    `json:"impl"`
	Epochs        int       `json:"epochs"`
	Threads       int       `json:"threads"`
	BatchSize     int       `json:"batch_size"`
	TrainSamples  int       `json:"train_samples"`
	SamplesPerSec float64   `json:"samples_per_sec"`
	EpochSeconds  []float64 `json:"epoch_seconds"`
	WallSeconds   float64   `json:"wall_seconds"`
	PeakRSSMiB    float64   `json:"peak_rss_mib"`
	TestAccuracy  float64   `json:"test_accuracy"`
	Kernel        string    `json:"kernel"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "train-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", "/usr/share/datasets/fashion-mnist", "directory with the Fashion-MNIST IDX files")
	epochs := flag.Int("epochs", 1, "epochs")
	threads := flag.Int("threads", 2, "worker threads")
	batch := flag.Int("batch", 64, "batch size")
	limit := flag.Int("limit", 0, "use only the first N training images (0: all)")
	seed := flag.Int64("seed", 42, "seed")
	dir := flag.String("dir", "", "job directory (default: a temporary one, removed afterwards)")
	flag.Parse()
	runtime.GOMAXPROCS(*threads)

	job := train.JobSpec{
		Name: "fashion-mnist-bench", Seed: *seed, Threads: *threads, Epochs: *epochs, BatchSize: *batch,
		Loss:      "sparse_categorical_crossentropy",
		Optimizer: &train.OptimizerSpec{Type: "adam", LearningRate: 0.001},
		Dataset: train.DatasetSpec{
			Format:      "idx",
			TrainImages: filepath.Join(*data, "train-images-idx3-ubyte.gz"),
			TrainLabels: filepath.Join(*data, "train-labels-idx1-ubyte.gz"),
			TestImages:  filepath.Join(*data, "t10k-images-idx3-ubyte.gz"),
			TestLabels:  filepath.Join(*data, "t10k-labels-idx1-ubyte.gz"),
			Rescale:     1.0 / 255,
			Limit:       *limit,
		},
		Model: train.ModelSpec{InputShape: []int{28, 28, 1}, Layers: []train.LayerSpec{
			{Type: "conv2d", Filters: 32, KernelSize: []int{3, 3}, Activation: "relu"},
			{Type: "max_pooling2d", PoolSize: []int{2, 2}},
			{Type: "conv2d", Filters: 64, KernelSize: []int{3, 3}, Activation: "relu"},
			{Type: "max_pooling2d", PoolSize: []int{2, 2}},
			{Type: "conv2d", Filters: 128, KernelSize: []int{3, 3}, Activation: "relu"},
			{Type: "max_pooling2d", PoolSize: []int{2, 2}},
			{Type: "flatten"},
			{Type: "dense", Units: 512, Activation: "relu"},
			{Type: "dense", Units: 10},
		}},
	}
	d := *dir
	if d == "" {
		tmp, err := os.MkdirTemp("", "train-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		d = tmp
	}
	start := time.Now()
	res, err := train.RunJob(context.Background(), job, d, func(p train.Progress) {
		if p.EpochDone != nil {
			fmt.Fprintf(os.Stderr, "epoch %d/%d: loss %.4f accuracy %.4f, %.0f samples/s, %.1fs\n",
				p.EpochDone.Epoch, p.Epochs, p.EpochDone.TrainLoss, p.EpochDone.TrainAccuracy, p.EpochDone.SamplesPerSec, p.EpochDone.EpochSeconds)
		}
	})
	if err != nil {
		return err
	}
	r := Report{Impl: "hadron-go", Epochs: *epochs, Threads: *threads, BatchSize: *batch, TrainSamples: res.Metrics.TrainSamples,
		WallSeconds: time.Since(start).Seconds(), Kernel: train.KernelName()}
	var secs float64
	for _, e := range res.Metrics.Epochs {
		r.EpochSeconds = append(r.EpochSeconds, e.EpochSeconds)
		secs += float64(res.Metrics.TrainSamples) / e.SamplesPerSec
	}
	r.SamplesPerSec = float64(res.Metrics.TrainSamples*len(res.Metrics.Epochs)) / secs
	if res.Metrics.TestAccuracy != nil {
		r.TestAccuracy = *res.Metrics.TestAccuracy
	}
	r.PeakRSSMiB, err = peakRSS()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// peakRSS reads the process's high-water resident set size (VmHWM).
func peakRSS() (float64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("parsing VmHWM %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
