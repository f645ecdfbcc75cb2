package train

import (
	"bytes"
	"encoding/json"
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// EpochMetrics is one epoch's line of metrics.json.
type EpochMetrics struct {
	Epoch          int      `json:"epoch"`
	TrainLoss      float64  `json:"train_loss"`
	TrainAccuracy  float64  `json:"train_accuracy"`
	ValLoss        *float64 `json:"val_loss,omitempty"`
	ValAccuracy    *float64 `json:"val_accuracy,omitempty"`
	SamplesPerSec  float64  `json:"samples_per_sec"`
	EpochSeconds   float64  `json:"epoch_seconds"`
	ElapsedSeconds float64  `json:"elapsed_seconds"`
}

// Metrics is the content of metrics.json: per-epoch history, dataset sizes
// and, once training is complete, the test-set result.
type Metrics struct {
	Job          string         `json:"job,omitempty"`
	TrainSamples int            `json:"train_samples"`
	ValSamples   int            `json:"val_samples"`
	TestSamples  int            `json:"test_samples"`
	Epochs       []EpochMetrics `json:"epochs"`
	TestLoss     *float64       `json:"test_loss,omitempty"`
	TestAccuracy *float64       `json:"test_accuracy,omitempty"`
	Complete     bool           `json:"complete"`
}

func (m *Metrics) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding metrics: %w", err)
	}
	return append(b, '\n'), nil
}

// chartPNG draws the loss and accuracy curves side by side.
func (m *Metrics) chartPNG() ([]byte, error) {
	loss := plot.New()
	loss.Title.Text = "Loss"
	loss.X.Label.Text = "epoch"
	acc := plot.New()
	acc.Title.Text = "Accuracy"
	acc.X.Label.Text = "epoch"
	series := func(p *plot.Plot, name string, get func(EpochMetrics) *float64, dashed bool) error {
		var xy plotter.XYs
		for _, e := range m.Epochs {
			if v := get(e); v != nil {
				xy = append(xy, plotter.XY{X: float64(e.Epoch), Y: *v})
			}
		}
		if len(xy) == 0 {
			return nil
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("plotting %s: %w", name, err)
		}
		if dashed {
			l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			pts.Shape = draw.SquareGlyph{}
		}
		p.Add(l, pts)
		p.Legend.Add(name, l, pts)
		return nil
	}
	ptr := func(v float64) *float64 { return &v }
	for _, s := range []struct {
		p      *plot.Plot
		name   string
		get    func(EpochMetrics) *float64
		dashed bool
	}{
		{loss, "train", func(e EpochMetrics) *float64 { return ptr(e.TrainLoss) }, false},
		{loss, "validation", func(e EpochMetrics) *float64 { return e.ValLoss }, true},
		{acc, "train", func(e EpochMetrics) *float64 { return ptr(e.TrainAccuracy) }, false},
		{acc, "validation", func(e EpochMetrics) *float64 { return e.ValAccuracy }, true},
	} {
		if err := series(s.p, s.name, s.get, s.dashed); err != nil {
			return nil, err
		}
	}
	loss.Legend.Top = true
	acc.Legend.Top = false
	img := vgimg.New(vg.Points(720), vg.Points(300))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{{loss, acc}}, tiles, dc)
	loss.Draw(canvases[0][0])
	acc.Draw(canvases[0][1])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encoding chart: %w", err)
	}
	return buf.Bytes(), nil
}
