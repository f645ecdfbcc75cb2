package train

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// checkpoint is everything needed to continue a job exactly where it
// stopped: parameters, optimizer moments, position in the epoch, the running
// epoch totals and the metrics history. Shuffling and dropout are derived
// from the seed and the step, so no generator state is needed.
type checkpoint struct {
	Version    int
	Digest     string // of the job settings that affect the weights
	Epoch      int    // completed epochs
	Step       int    // completed steps of the epoch in progress
	GlobalStep uint64
	Params     []float32
	OptT       int64
	OptM       []float32
	OptV       []float32
	History    []EpochMetrics
	Elapsed    float64 // seconds spent before this checkpoint
	EpochLoss  float64
	EpochRight int
	EpochSeen  int
	EpochSecs  float64
}

const (
	checkpointVersion = 1
	checkpointDir     = "checkpoints"
	checkpointKeep    = 2
)

func checkpointName(step uint64) string { return fmt.Sprintf("ckpt-%012d.gob", step) }

// saveCheckpoint writes c atomically into dir/checkpoints and removes all
// but the newest checkpointKeep files.
func saveCheckpoint(dir string, c *checkpoint) error {
	cdir := filepath.Join(dir, checkpointDir)
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		return fmt.Errorf("creating checkpoint directory: %w", err)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(c); err != nil {
		return fmt.Errorf("encoding checkpoint: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(cdir, checkpointName(c.GlobalStep)), buf.Bytes()); err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	names, err := listCheckpoints(cdir)
	if err != nil {
		return err
	}
	for len(names) > checkpointKeep {
		if err := os.Remove(filepath.Join(cdir, names[0])); err != nil {
			return fmt.Errorf("removing old checkpoint: %w", err)
		}
		names = names[1:]
	}
	return nil
}

func listCheckpoints(cdir string) ([]string, error) {
	entries, err := os.ReadDir(cdir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing checkpoints: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), "ckpt-") && strings.HasSuffix(e.Name(), ".gob") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // zero-padded step numbers sort in step order
	return names, nil
}

// latestCheckpoint loads the newest checkpoint in dir, or returns nil when
// there is none.
func latestCheckpoint(dir string) (*checkpoint, string, error) {
	cdir := filepath.Join(dir, checkpointDir)
	names, err := listCheckpoints(cdir)
	if err != nil || len(names) == 0 {
		return nil, "", err
	}
	path := filepath.Join(cdir, names[len(names)-1])
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading checkpoint: %w", err)
	}
	var c checkpoint
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&c); err != nil {
		return nil, "", fmt.Errorf("decoding checkpoint %s: %w", path, err)
	}
	if c.Version != checkpointVersion {
		return nil, "", fmt.Errorf("checkpoint %s has version %d, this runtime reads %d", path, c.Version, checkpointVersion)
	}
	return &c, path, nil
}

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it, renames it over path and syncs the directory, so readers see
// either the old or the new content, also after a crash.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
