package agent

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// GPU is one accelerator as reported by the driver.
type GPU struct {
	Index         int    `json:"index"`
	Name          string `json:"name"`
	MemoryMiB     int    `json:"memory_mib"`
	DriverVersion string `json:"driver_version"`
	UUID          string `json:"uuid"`
}

// NvidiaSMI lists GPUs with nvidia-smi. A node without nvidia-smi has no
// NVIDIA GPUs: that is an empty list, not an error.
func NvidiaSMI(ctx context.Context) ([]GPU, error) {
	bin, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil, nil
	}
	out, err := exec.CommandContext(ctx, bin,
		"--query-gpu=index,name,memory.total,driver_version,uuid", "--format=csv,noheader,nounits").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("nvidia-smi failed: %s", strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("running nvidia-smi: %w", err)
	}
	return parseNvidiaSMI(string(out))
}

func parseNvidiaSMI(out string) ([]GPU, error) {
	r := csv.NewReader(strings.NewReader(out))
	r.TrimLeadingSpace = true
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parsing nvidia-smi output: %w", err)
	}
	gpus := []GPU{}
	for _, rec := range recs {
		if len(rec) < 5 {
			return nil, fmt.Errorf("parsing nvidia-smi output: want 5 fields, got %d in %q", len(rec), strings.Join(rec, ","))
		}
		idx, _ := strconv.Atoi(strings.TrimSpace(rec[0]))
		mem, _ := strconv.Atoi(strings.TrimSpace(rec[2]))
		gpus = append(gpus, GPU{Index: idx, Name: strings.TrimSpace(rec[1]), MemoryMiB: mem,
			DriverVersion: strings.TrimSpace(rec[3]), UUID: strings.TrimSpace(rec[4])})
	}
	return gpus, nil
}

func hostInfo() NodeInfo {
	host, _ := os.Hostname()
	return NodeInfo{Hostname: host, OS: runtime.GOOS, Arch: runtime.GOARCH, VCPUs: runtime.NumCPU(), MemoryBytes: memTotal()}
}

// memTotal reads MemTotal from /proc/meminfo; 0 when unknown.
func memTotal() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
