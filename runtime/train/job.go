package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// JobSpec is a training job: model, data, loss, optimizer and schedule. It
// decodes from an HCL job file (ParseJobHCL) and from JSON (the API).
type JobSpec struct {
	Name string `hcl:"name,optional" json:"name,omitempty"`
	// OutputDir is where RunFile writes artifacts (job files only; the API
	// chooses the directory itself).
	OutputDir string `hcl:"output_dir,optional" json:"-"`
	// Seed fixes initialisation, the validation split, shuffling and dropout.
	Seed int64 `hcl:"seed,optional" json:"seed,omitempty"`
	// Threads is the number of data-parallel workers (default: all CPUs).
	// Results are bit-identical for the same seed and thread count.
	Threads   int `hcl:"threads,optional" json:"threads,omitempty"`
	Epochs    int `hcl:"epochs" json:"epochs"`
	BatchSize int `hcl:"batch_size,optional" json:"batch_size,omitempty"`
	// ValidationSplit is the fraction of the training data held out.
	ValidationSplit float64 `hcl:"validation_split,optional" json:"validation_split,omitempty"`
	// Loss is sparse_categorical_crossentropy, binary_crossentropy or mse.
	Loss string `hcl:"loss" json:"loss"`
	// Metrics lists extra metrics; accuracy is always reported.
	Metrics []string `hcl:"metrics,optional" json:"metrics,omitempty"`
	// CheckpointEverySteps adds checkpoints inside epochs (0: epoch ends only).
	CheckpointEverySteps int            `hcl:"checkpoint_every_steps,optional" json:"checkpoint_every_steps,omitempty"`
	Optimizer            *OptimizerSpec `hcl:"optimizer,block" json:"optimizer,omitempty"`
	Dataset              DatasetSpec    `hcl:"dataset,block" json:"dataset"`
	Model                ModelSpec      `hcl:"model,block" json:"model"`
}

// DatasetSpec says where the data is and how to read it.
type DatasetSpec struct {
	// Format is idx, csv or image_folder.
	Format string `hcl:"format" json:"format"`
	// IDX: image and label files (gzipped or not).
	TrainImages string `hcl:"train_images,optional" json:"train_images,omitempty"`
	TrainLabels string `hcl:"train_labels,optional" json:"train_labels,omitempty"`
	TestImages  string `hcl:"test_images,optional" json:"test_images,omitempty"`
	TestLabels  string `hcl:"test_labels,optional" json:"test_labels,omitempty"`
	// CSV: files; image_folder: directories with one subdirectory per class.
	Train string `hcl:"train,optional" json:"train,omitempty"`
	Test  string `hcl:"test,optional" json:"test,omitempty"`
	// LabelColumn is the CSV column (from 0) holding the label.
	LabelColumn int `hcl:"label_column,optional" json:"label_column,omitempty"`
	// Rescale multiplies every input value (1/255 for 8-bit images).
	Rescale float64 `hcl:"rescale,optional" json:"rescale,omitempty"`
	// Limit and TestLimit keep only the first samples (0: all).
	Limit     int `hcl:"limit,optional" json:"limit,omitempty"`
	TestLimit int `hcl:"test_limit,optional" json:"test_limit,omitempty"`
}

// ParseJobHCL decodes an HCL job file.
func ParseJobHCL(src []byte, filename string) (JobSpec, error) {
	f, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return JobSpec{}, fmt.Errorf("parsing job file: %w", diags)
	}
	var j JobSpec
	if diags := gohcl.DecodeBody(f.Body, nil, &j); diags.HasErrors() {
		return JobSpec{}, fmt.Errorf("decoding job file: %w", hcl.Diagnostics(diags))
	}
	return j, nil
}

// ParseJobJSON decodes a JSON job spec, rejecting unknown fields.
func ParseJobJSON(data []byte) (JobSpec, error) {
	var j JobSpec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return JobSpec{}, fmt.Errorf("decoding job spec: %w", err)
	}
	return j, nil
}

// ResolvePaths makes relative data paths relative to base (the directory
// of the job file).
func (j *JobSpec) ResolvePaths(base string) {
	for _, p := range []*string{&j.Dataset.TrainImages, &j.Dataset.TrainLabels, &j.Dataset.TestImages, &j.Dataset.TestLabels, &j.Dataset.Train, &j.Dataset.Test} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

func (j *JobSpec) withDefaults() JobSpec {
	c := *j
	if c.Threads <= 0 {
		c.Threads = runtime.NumCPU()
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 32
	}
	if c.Optimizer == nil {
		c.Optimizer = &OptimizerSpec{Type: "adam"}
	}
	if c.Dataset.Rescale == 0 {
		c.Dataset.Rescale = 1
	}
	return c
}

// Validate checks the job without reading data.
func (j JobSpec) Validate() error {
	_, err := j.prepare()
	return err
}

// prepared is a validated job with its model, loss and optimizer.
type prepared struct {
	job   JobSpec
	model *Model
	loss  lossKind
	opt   *optimizer
}

func (j JobSpec) prepare() (*prepared, error) {
	c := j.withDefaults()
	if c.Epochs <= 0 {
		return nil, fmt.Errorf("epochs must be positive, got %d", c.Epochs)
	}
	if c.CheckpointEverySteps < 0 {
		return nil, fmt.Errorf("checkpoint_every_steps must not be negative, got %d", c.CheckpointEverySteps)
	}
	for _, m := range c.Metrics {
		if strings.ToLower(m) != "accuracy" && strings.ToLower(m) != "acc" {
			return nil, fmt.Errorf("unknown metric %q (accuracy is the one supported, and always reported)", m)
		}
	}
	if c.ValidationSplit < 0 || c.ValidationSplit >= 1 {
		return nil, fmt.Errorf("validation_split must be in [0, 1), got %v", c.ValidationSplit)
	}
	lk, err := parseLoss(c.Loss)
	if err != nil {
		return nil, err
	}
	m, err := NewModel(c.Model, uint64(c.Seed))
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if _, err := lk.fuses(m.finalActivation(), m.out.size()); err != nil {
		return nil, err
	}
	opt, err := newOptimizer(*c.Optimizer, len(m.Params))
	if err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	switch c.Dataset.Format {
	case "idx":
		if c.Dataset.TrainImages == "" || c.Dataset.TrainLabels == "" {
			return nil, errors.New("dataset: format idx needs train_images and train_labels")
		}
		if (c.Dataset.TestImages == "") != (c.Dataset.TestLabels == "") {
			return nil, errors.New("dataset: test_images and test_labels go together")
		}
	case "csv", "image_folder":
		if c.Dataset.Train == "" {
			return nil, fmt.Errorf("dataset: format %s needs train", c.Dataset.Format)
		}
	default:
		return nil, fmt.Errorf("dataset: unknown format %q (want idx, csv or image_folder)", c.Dataset.Format)
	}
	return &prepared{job: c, model: m, loss: lk, opt: opt}, nil
}

// digest identifies the settings that determine the trained weights, so a
// checkpoint is only resumed by the job that wrote it.
func (p *prepared) digest() string {
	j := p.job
	j.Name = ""
	j.CheckpointEverySteps = 0
	b, _ := json.Marshal(j)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (p *prepared) load() (train, val, test *Dataset, err error) {
	d := p.job.Dataset
	shape := p.model.InputShape()
	var full *Dataset
	switch d.Format {
	case "idx":
		if full, err = LoadIDX(d.TrainImages, d.TrainLabels, d.Limit); err != nil {
			return nil, nil, nil, err
		}
		if d.TestImages != "" {
			if test, err = LoadIDX(d.TestImages, d.TestLabels, d.TestLimit); err != nil {
				return nil, nil, nil, err
			}
		}
	case "csv":
		if full, err = LoadCSV(d.Train, d.LabelColumn, shape, d.Limit); err != nil {
			return nil, nil, nil, err
		}
		if d.Test != "" {
			if test, err = LoadCSV(d.Test, d.LabelColumn, shape, d.TestLimit); err != nil {
				return nil, nil, nil, err
			}
		}
	case "image_folder":
		if full, err = LoadImageFolder(d.Train, shape, nil, d.Limit); err != nil {
			return nil, nil, nil, err
		}
		if d.Test != "" {
			if test, err = LoadImageFolder(d.Test, shape, full.Classes, d.TestLimit); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	check := func(what string, ds *Dataset) error {
		if ds == nil {
			return nil
		}
		if ds.sampleSize() != p.model.InputSize() {
			return fmt.Errorf("%s samples have shape %v, the model input is %v", what, ds.Shape, shape)
		}
		ds.Rescale(float32(d.Rescale))
		return nil
	}
	if err := check("training", full); err != nil {
		return nil, nil, nil, err
	}
	if err := check("test", test); err != nil {
		return nil, nil, nil, err
	}
	train, val, err = full.Split(p.job.ValidationSplit, uint64(p.job.Seed))
	if err != nil {
		return nil, nil, nil, err
	}
	return train, val, test, nil
}

// Progress reports a training job's position. It is sent after every step
// and, with EpochDone set, at the end of every epoch.
type Progress struct {
	Phase         string        `json:"phase"` // loading, training, exporting, done
	Epoch         int           `json:"epoch"` // 1-based epoch in progress
	Epochs        int           `json:"epochs"`
	Step          int           `json:"step"` // completed steps of this epoch
	StepsPerEpoch int           `json:"steps_per_epoch"`
	GlobalStep    uint64        `json:"global_step"`
	Loss          float64       `json:"loss"`     // mean training loss of this epoch so far
	Accuracy      float64       `json:"accuracy"` // mean training accuracy of this epoch so far
	SamplesPerSec float64       `json:"samples_per_sec"`
	ETASeconds    float64       `json:"eta_seconds"`
	EpochDone     *EpochMetrics `json:"epoch_done,omitempty"`
	Resumed       bool          `json:"resumed,omitempty"`
}

// Result lists a finished job's artifacts.
type Result struct {
	ModelPath   string  `json:"model_path"`
	ModelSHA256 string  `json:"model_sha256"`
	MetricsPath string  `json:"metrics_path"`
	ChartPath   string  `json:"chart_path"`
	Metrics     Metrics `json:"metrics"`
	Resumed     bool    `json:"resumed"`
}

// Artifact file names inside a job directory.
const (
	ModelFile   = "model.onnx"
	DigestFile  = "model.onnx.sha256"
	MetricsFile = "metrics.json"
	ChartFile   = "chart.png"
)

// runOptions are knobs for tests.
type runOptions struct {
	portable bool // use the portable Go kernel
	// noSaveOnCancel skips the checkpoint written when ctx ends, as if the
	// process had been killed.
	noSaveOnCancel bool
	version        string
}

// RunJob trains job, writing checkpoints, metrics.json, chart.png,
// model.onnx and model.onnx.sha256 into dir. If dir holds a checkpoint of
// the same job it resumes from the newest one and reaches the same weights
// as an uninterrupted run. When ctx ends, it saves a checkpoint and returns
// ctx's error. progress, if not nil, is called from the calling goroutine.
func RunJob(ctx context.Context, job JobSpec, dir string, progress func(Progress)) (*Result, error) {
	return runJob(ctx, job, dir, progress, runOptions{})
}

func runJob(ctx context.Context, job JobSpec, dir string, progress func(Progress), opts runOptions) (*Result, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	p, err := job.prepare()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating job directory: %w", err)
	}
	j := p.job
	progress(Progress{Phase: "loading", Epochs: j.Epochs})
	trainSet, valSet, testSet, err := p.load()
	if err != nil {
		return nil, err
	}
	tr, err := newTrainer(p.model, p.loss, p.opt, j.Threads, j.BatchSize, opts.portable, uint64(j.Seed))
	if err != nil {
		return nil, err
	}
	for _, ds := range []*Dataset{trainSet, valSet, testSet} {
		if ds != nil {
			if err := tr.checkLabels(ds.Y); err != nil {
				return nil, fmt.Errorf("dataset: %w", err)
			}
		}
	}
	metrics := Metrics{Job: j.Name, TrainSamples: trainSet.N}
	if valSet != nil {
		metrics.ValSamples = valSet.N
	}
	if testSet != nil {
		metrics.TestSamples = testSet.N
	}

	digest := p.digest()
	st := &checkpoint{Version: checkpointVersion, Digest: digest}
	resumed := false
	if c, path, err := latestCheckpoint(dir); err != nil {
		return nil, err
	} else if c != nil {
		if c.Digest != digest {
			return nil, fmt.Errorf("checkpoint %s belongs to a different job (model, data or settings changed): remove it or use another directory", path)
		}
		if len(c.Params) != len(p.model.Params) || int64(len(c.OptM)) != int64(len(p.opt.m)) || len(c.OptV) != len(p.opt.v) {
			return nil, fmt.Errorf("checkpoint %s does not match the model's parameter count", path)
		}
		st = c
		copy(p.model.Params, c.Params)
		p.opt.t = c.OptT
		copy(p.opt.m, c.OptM)
		copy(p.opt.v, c.OptV)
		resumed = true
	}
	metrics.Epochs = st.History

	save := func() error {
		st.Params = p.model.Params
		st.OptT, st.OptM, st.OptV = p.opt.t, p.opt.m, p.opt.v
		st.History = metrics.Epochs
		return saveCheckpoint(dir, st)
	}
	writeMetrics := func() error {
		b, err := metrics.marshal()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, MetricsFile), b); err != nil {
			return fmt.Errorf("writing metrics: %w", err)
		}
		png, err := metrics.chartPNG()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, ChartFile), png); err != nil {
			return fmt.Errorf("writing chart: %w", err)
		}
		return nil
	}

	in := p.model.InputSize()
	bs := j.BatchSize
	steps := (trainSet.N + bs - 1) / bs
	xb := make([]float32, bs*in)
	yb := make([]int32, bs)
	runStart := time.Now()
	for epoch := st.Epoch; epoch < j.Epochs; epoch++ {
		perm := rand.New(rand.NewPCG(uint64(j.Seed), uint64(epoch)+1)).Perm(trainSet.N)
		epochStart := time.Now()
		prior := st.EpochSecs
		for step := st.Step; step < steps; step++ {
			if ctx.Err() != nil {
				st.Elapsed += time.Since(runStart).Seconds()
				st.EpochSecs = prior + time.Since(epochStart).Seconds()
				if !opts.noSaveOnCancel {
					if err := save(); err != nil {
						return nil, err
					}
				}
				return nil, ctx.Err()
			}
			lo, hi := step*bs, min((step+1)*bs, trainSet.N)
			n := hi - lo
			for i, idx := range perm[lo:hi] {
				copy(xb[i*in:(i+1)*in], trainSet.X[idx*in:(idx+1)*in])
				yb[i] = trainSet.Y[idx]
			}
			loss, right := tr.step(xb, yb, n, st.GlobalStep)
			st.EpochLoss += loss
			st.EpochRight += right
			st.EpochSeen += n
			st.Step = step + 1
			st.GlobalStep++
			secs := prior + time.Since(epochStart).Seconds()
			rate := float64(st.EpochSeen) / math.Max(secs, 1e-9)
			remaining := float64(steps-st.Step)*float64(bs) + float64((j.Epochs-epoch-1)*trainSet.N)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("training diverged at epoch %d step %d: loss is %v (lower the learning rate)", epoch+1, st.Step, loss)
			}
			progress(Progress{Phase: "training", Epoch: epoch + 1, Epochs: j.Epochs, Step: st.Step, StepsPerEpoch: steps, GlobalStep: st.GlobalStep,
				Loss: st.EpochLoss / float64(st.EpochSeen), Accuracy: float64(st.EpochRight) / float64(st.EpochSeen),
				SamplesPerSec: rate, ETASeconds: remaining / rate, Resumed: resumed})
			if j.CheckpointEverySteps > 0 && st.GlobalStep%uint64(j.CheckpointEverySteps) == 0 && st.Step < steps {
				st.EpochSecs = secs
				st.Elapsed += time.Since(runStart).Seconds()
				runStart = time.Now()
				if err := save(); err != nil {
					return nil, err
				}
			}
		}
		trainSecs := prior + time.Since(epochStart).Seconds()
		em := EpochMetrics{
			Epoch:         epoch + 1,
			TrainLoss:     st.EpochLoss / float64(st.EpochSeen),
			TrainAccuracy: float64(st.EpochRight) / float64(st.EpochSeen),
			SamplesPerSec: float64(st.EpochSeen) / math.Max(trainSecs, 1e-9),
		}
		if valSet != nil {
			l, c := tr.evaluate(valSet.X, valSet.Y, valSet.N)
			vl, va := l/float64(valSet.N), float64(c)/float64(valSet.N)
			em.ValLoss, em.ValAccuracy = &vl, &va
		}
		em.EpochSeconds = prior + time.Since(epochStart).Seconds()
		st.Elapsed += time.Since(runStart).Seconds()
		runStart = time.Now()
		em.ElapsedSeconds = st.Elapsed
		metrics.Epochs = append(metrics.Epochs, em)
		st.Epoch, st.Step = epoch+1, 0
		st.EpochLoss, st.EpochRight, st.EpochSeen, st.EpochSecs = 0, 0, 0, 0
		if err := save(); err != nil {
			return nil, err
		}
		if err := writeMetrics(); err != nil {
			return nil, err
		}
		e := em
		progress(Progress{Phase: "training", Epoch: epoch + 1, Epochs: j.Epochs, Step: steps, StepsPerEpoch: steps, GlobalStep: st.GlobalStep,
			Loss: em.TrainLoss, Accuracy: em.TrainAccuracy, SamplesPerSec: em.SamplesPerSec, ETASeconds: float64((j.Epochs-epoch-1)*trainSet.N) / em.SamplesPerSec,
			EpochDone: &e, Resumed: resumed})
	}

	progress(Progress{Phase: "exporting", Epoch: j.Epochs, Epochs: j.Epochs, GlobalStep: st.GlobalStep})
	if testSet != nil {
		l, c := tr.evaluate(testSet.X, testSet.Y, testSet.N)
		tl, ta := l/float64(testSet.N), float64(c)/float64(testSet.N)
		metrics.TestLoss, metrics.TestAccuracy = &tl, &ta
	}
	metrics.Complete = true
	onnx, err := p.model.ExportONNX(opts.version)
	if err != nil {
		return nil, fmt.Errorf("exporting ONNX: %w", err)
	}
	sum := sha256.Sum256(onnx)
	hexSum := hex.EncodeToString(sum[:])
	modelPath := filepath.Join(dir, ModelFile)
	if err := writeFileAtomic(modelPath, onnx); err != nil {
		return nil, fmt.Errorf("writing model: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, DigestFile), []byte(hexSum+"  "+ModelFile+"\n")); err != nil {
		return nil, fmt.Errorf("writing model digest: %w", err)
	}
	if err := writeMetrics(); err != nil {
		return nil, err
	}
	progress(Progress{Phase: "done", Epoch: j.Epochs, Epochs: j.Epochs, GlobalStep: st.GlobalStep, Resumed: resumed})
	return &Result{
		ModelPath:   modelPath,
		ModelSHA256: hexSum,
		MetricsPath: filepath.Join(dir, MetricsFile),
		ChartPath:   filepath.Join(dir, ChartFile),
		Metrics:     metrics,
		Resumed:     resumed,
	}, nil
}

// RunFile runs the HCL job file at path standalone and writes one progress
// line per epoch to out. Artifacts and checkpoints go to the file's
// output_dir (default: the file's name with ".out" instead of its
// extension); running it again after an interruption resumes. Relative paths
// in the file are relative to the file's directory.
func RunFile(ctx context.Context, path string, out io.Writer) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading job file: %w", err)
	}
	job, err := ParseJobHCL(src, path)
	if err != nil {
		return err
	}
	base := filepath.Dir(path)
	job.ResolvePaths(base)
	dir := job.OutputDir
	switch {
	case dir == "":
		dir = strings.TrimSuffix(path, filepath.Ext(path)) + ".out"
	case !filepath.IsAbs(dir):
		dir = filepath.Join(base, dir)
	}
	fmt.Fprintf(out, "training %s: artifacts in %s\n", path, dir)
	res, err := RunJob(ctx, job, dir, func(p Progress) {
		if p.EpochDone == nil {
			return
		}
		e := p.EpochDone
		line := fmt.Sprintf("epoch %d/%d  loss %.4f  accuracy %.4f", e.Epoch, p.Epochs, e.TrainLoss, e.TrainAccuracy)
		if e.ValLoss != nil {
			line += fmt.Sprintf("  val_loss %.4f  val_accuracy %.4f", *e.ValLoss, *e.ValAccuracy)
		}
		line += fmt.Sprintf("  %.0f samples/s  %.1fs", e.SamplesPerSec, e.EpochSeconds)
		fmt.Fprintln(out, line)
	})
	if err != nil {
		return err
	}
	if res.Metrics.TestAccuracy != nil {
		fmt.Fprintf(out, "test loss %.4f  test accuracy %.4f\n", *res.Metrics.TestLoss, *res.Metrics.TestAccuracy)
	}
	fmt.Fprintf(out, "model %s sha256 %s\n", res.ModelPath, res.ModelSHA256)
	return nil
}
