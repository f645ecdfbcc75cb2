package train

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image folders may hold JPEG files
	_ "image/png"  // and PNG files
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/image/draw"
)

// Dataset is a set of labelled samples held in memory. X holds N samples of
// Shape (height, width, channels in NHWC order, or a single feature count)
// as float32; Y holds their integer class labels.
type Dataset struct {
	X       []float32
	Y       []int32
	N       int
	Shape   []int
	Classes []string // class names for image folders, else nil
}

func (d *Dataset) sampleSize() int {
	n := 1
	for _, v := range d.Shape {
		n *= v
	}
	return n
}

// Rescale multiplies every value by f (1/255 maps bytes to [0, 1]).
func (d *Dataset) Rescale(f float32) {
	if f == 1 || f == 0 {
		return
	}
	for i := range d.X {
		d.X[i] *= f
	}
}

// subset returns the samples at idx as a new dataset.
func (d *Dataset) subset(idx []int) *Dataset {
	s := d.sampleSize()
	out := &Dataset{X: make([]float32, len(idx)*s), Y: make([]int32, len(idx)), N: len(idx), Shape: d.Shape, Classes: d.Classes}
	for i, j := range idx {
		copy(out.X[i*s:(i+1)*s], d.X[j*s:(j+1)*s])
		out.Y[i] = d.Y[j]
	}
	return out
}

// Split shuffles the samples with seed and returns the training part and a
// validation part holding the given fraction of them.
func (d *Dataset) Split(fraction float64, seed uint64) (train, val *Dataset, err error) {
	if fraction < 0 || fraction >= 1 {
		return nil, nil, fmt.Errorf("validation split must be in [0, 1), got %v", fraction)
	}
	nVal := int(float64(d.N) * fraction)
	if fraction > 0 && (nVal == 0 || nVal == d.N) {
		return nil, nil, fmt.Errorf("validation split %v of %d samples leaves an empty part", fraction, d.N)
	}
	perm := rand.New(rand.NewPCG(seed, 0x5eed)).Perm(d.N)
	if nVal == 0 {
		return d, nil, nil
	}
	trainIdx := perm[:d.N-nVal]
	valIdx := perm[d.N-nVal:]
	slices.Sort(trainIdx)
	slices.Sort(valIdx)
	return d.subset(trainIdx), d.subset(valIdx), nil
}

// openMaybeGzip reads a whole file, decompressing it when it starts with
// the gzip magic bytes.
func readMaybeGzip(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("reading gzip header: %w", err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		return out, nil
	}
	return raw, nil
}

// readIDX parses an IDX file of unsigned bytes and returns its dimensions
// and data.
func readIDX(path string) ([]int, []byte, error) {
	b, err := readMaybeGzip(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading IDX file %s: %w", path, err)
	}
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("reading IDX file %s: truncated header (%d bytes)", path, len(b))
	}
	if b[0] != 0 || b[1] != 0 {
		return nil, nil, fmt.Errorf("reading IDX file %s: wrong magic number 0x%08x (not an IDX file)", path, binary.BigEndian.Uint32(b))
	}
	if b[2] != 0x08 {
		return nil, nil, fmt.Errorf("reading IDX file %s: element type 0x%02x is not supported (want 0x08, unsigned byte)", path, b[2])
	}
	nd := int(b[3])
	if nd < 1 || nd > 4 {
		return nil, nil, fmt.Errorf("reading IDX file %s: %d dimensions (want 1 to 4)", path, nd)
	}
	if len(b) < 4+4*nd {
		return nil, nil, fmt.Errorf("reading IDX file %s: truncated header", path)
	}
	dims := make([]int, nd)
	total := 1
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(b[4+4*i:]))
		total *= dims[i]
	}
	data := b[4+4*nd:]
	if len(data) < total {
		return nil, nil, fmt.Errorf("reading IDX file %s: truncated: dimensions %v need %d bytes of data, the file has %d", path, dims, total, len(data))
	}
	if len(data) > total {
		return nil, nil, fmt.Errorf("reading IDX file %s: %d bytes of trailing data after dimensions %v", path, len(data)-total, dims)
	}
	return dims, data, nil
}

// LoadIDX reads an MNIST-style pair of IDX files (images N x H x W or
// N x H x W x C, labels N), gzipped or not. limit > 0 keeps the first limit
// samples. Pixel values are left in 0..255.
func LoadIDX(imagesPath, labelsPath string, limit int) (*Dataset, error) {
	dims, px, err := readIDX(imagesPath)
	if err != nil {
		return nil, err
	}
	if len(dims) < 3 {
		return nil, fmt.Errorf("reading IDX images %s: %d dimensions, want 3 (N, height, width) or 4", imagesPath, len(dims))
	}
	ldims, labels, err := readIDX(labelsPath)
	if err != nil {
		return nil, err
	}
	if len(ldims) != 1 {
		return nil, fmt.Errorf("reading IDX labels %s: %d dimensions, want 1", labelsPath, len(ldims))
	}
	if ldims[0] != dims[0] {
		return nil, fmt.Errorf("IDX labels %s hold %d labels but images %s hold %d images", labelsPath, ldims[0], imagesPath, dims[0])
	}
	shape := []int{dims[1], dims[2], 1}
	if len(dims) == 4 {
		shape[2] = dims[3]
	}
	n := dims[0]
	if limit > 0 && limit < n {
		n = limit
	}
	size := shape[0] * shape[1] * shape[2]
	d := &Dataset{X: make([]float32, n*size), Y: make([]int32, n), N: n, Shape: shape}
	for i := range d.X {
		d.X[i] = float32(px[i])
	}
	for i := range d.Y {
		d.Y[i] = int32(labels[i])
	}
	return d, nil
}

// LoadCSV reads a CSV file with one sample per row: an integer label in
// column labelColumn and numeric features in every other column. A first
// row that does not parse as numbers is taken as a header. shape is the
// model's input shape; the feature count must match it.
func LoadCSV(path string, labelColumn int, shape []int, limit int) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading CSV %s: %w", path, err)
	}
	defer f.Close()
	want := 1
	for _, v := range shape {
		want *= v
	}
	r := csv.NewReader(bufio.NewReader(f))
	r.ReuseRecord = true
	r.FieldsPerRecord = -1 // rows are checked below, with a clearer message
	r.TrimLeadingSpace = true
	d := &Dataset{Shape: slices.Clone(shape)}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading CSV %s: %w", path, err)
		}
		if labelColumn < 0 || labelColumn >= len(rec) {
			return nil, fmt.Errorf("reading CSV %s: line %d has %d columns, the label column is %d", path, line, len(rec), labelColumn)
		}
		label, lerr := strconv.Atoi(strings.TrimSpace(rec[labelColumn]))
		if lerr != nil && line == 1 {
			continue // header
		}
		if lerr != nil {
			return nil, fmt.Errorf("reading CSV %s: line %d: label %q is not an integer", path, line, rec[labelColumn])
		}
		if len(rec)-1 != want {
			return nil, fmt.Errorf("reading CSV %s: line %d has %d features, the model input %v needs %d", path, line, len(rec)-1, shape, want)
		}
		for i, s := range rec {
			if i == labelColumn {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 32)
			if err != nil {
				return nil, fmt.Errorf("reading CSV %s: line %d column %d: %q is not a number", path, line, i+1, s)
			}
			d.X = append(d.X, float32(v))
		}
		d.Y = append(d.Y, int32(label))
		d.N++
		if limit > 0 && d.N == limit {
			break
		}
	}
	if d.N == 0 {
		return nil, fmt.Errorf("reading CSV %s: no samples", path)
	}
	return d, nil
}

// LoadImageFolder reads a directory with one subdirectory per class, as
// Keras' flow_from_directory does: classes are the subdirectory names in
// sorted order, images are PNG or JPEG files resized to height x width with
// bilinear interpolation, in RGB (channels 3) or grayscale (channels 1).
// classes, when not nil, fixes the class list (the test set must use the
// training set's classes). Pixel values are left in 0..255.
func LoadImageFolder(dir string, shape []int, classes []string, limit int) (*Dataset, error) {
	if len(shape) != 3 || (shape[2] != 1 && shape[2] != 3) {
		return nil, fmt.Errorf("reading image folder %s: the model input must be [height, width, 1 or 3], got %v", dir, shape)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading image folder %s: %w", dir, err)
	}
	if classes == nil {
		for _, e := range entries {
			if e.IsDir() {
				classes = append(classes, e.Name())
			}
		}
		slices.Sort(classes)
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("reading image folder %s: no class subdirectories", dir)
	}
	h, w, c := shape[0], shape[1], shape[2]
	d := &Dataset{Shape: slices.Clone(shape), Classes: classes}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for ci, class := range classes {
		files, err := os.ReadDir(filepath.Join(dir, class))
		if err != nil {
			return nil, fmt.Errorf("reading image folder %s: class %s: %w", dir, class, err)
		}
		for _, f := range files {
			ext := strings.ToLower(filepath.Ext(f.Name()))
			if f.IsDir() || (ext != ".png" && ext != ".jpg" && ext != ".jpeg") {
				continue
			}
			path := filepath.Join(dir, class, f.Name())
			img, err := decodeImage(path)
			if err != nil {
				return nil, err
			}
			draw.BiLinear.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
			for i := 0; i < h*w; i++ {
				r, g, b := float32(dst.Pix[4*i]), float32(dst.Pix[4*i+1]), float32(dst.Pix[4*i+2])
				if c == 3 {
					d.X = append(d.X, r, g, b)
				} else {
					d.X = append(d.X, 0.299*r+0.587*g+0.114*b)
				}
			}
			d.Y = append(d.Y, int32(ci))
			d.N++
			if limit > 0 && d.N == limit {
				return d, nil
			}
		}
	}
	if d.N == 0 {
		return nil, fmt.Errorf("reading image folder %s: no PNG or JPEG images in %d class folders", dir, len(classes))
	}
	return d, nil
}

func decodeImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w", path, err)
	}
	defer f.Close()
	img, _, err := image.Decode(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w", path, err)
	}
	return img, nil
}
