// Command predict sends Fashion-MNIST test images to a Hadron model endpoint
// over the Open Inference Protocol v2 and prints predicted and true labels.
//
//	go run ./examples/quickstart/predict -url INFER_URL -token TOKEN [-n 8]
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

var classes = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

func main() {
	url := flag.String("url", "", "inference URL (terraform output -raw infer_url)")
	token := flag.String("token", "", "bearer token (terraform output -raw token)")
	dir := flag.String("data", "/usr/share/datasets/fashion-mnist", "directory of the Fashion-MNIST IDX files")
	n := flag.Int("n", 8, "number of test images to classify")
	flag.Parse()
	if err := run(*url, *token, *dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "predict:", err)
		os.Exit(1)
	}
}

func run(url, token, dir string, n int) error {
	if url == "" {
		return fmt.Errorf("-url is required")
	}
	images, err := readIDX(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), 16)
	if err != nil {
		return err
	}
	labels, err := readIDX(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), 8)
	if err != nil {
		return err
	}
	n = min(n, len(labels))
	data := make([]float32, n*784)
	for i := range data {
		data[i] = float32(images[i]) / 255
	}
	// The exported model names its input "input"; ask the server if not.
	body, _ := json.Marshal(map[string]any{
		"id": "quickstart",
		"inputs": []map[string]any{{
			"name": "input", "datatype": "FP32", "shape": []int{n, 28, 28, 1}, "data": data,
		}},
	})
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("endpoint answered %s: %s", resp.Status, raw)
	}
	var out struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	if len(out.Outputs) == 0 || len(out.Outputs[0].Data) != n*10 {
		return fmt.Errorf("unexpected answer: %s", raw)
	}
	fmt.Printf("%d images classified by model version %s in %s\n", n, out.ModelVersion, time.Since(start).Round(time.Millisecond))
	right := 0
	for i := range n {
		logits := out.Outputs[0].Data[i*10 : (i+1)*10]
		best := 0
		for k, v := range logits {
			if v > logits[best] {
				best = k
			}
		}
		mark := "  "
		if best == int(labels[i]) {
			right++
			mark = "ok"
		}
		fmt.Printf("  %s image %d: predicted %-12s true %s\n", mark, i, classes[best], classes[labels[i]])
	}
	fmt.Printf("%d of %d right\n", right, n)
	return nil
}

// readIDX returns the payload of a gzipped IDX file after its header.
func readIDX(path string, header int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil || len(b) < header {
		return nil, fmt.Errorf("%s: truncated", path)
	}
	if binary.BigEndian.Uint32(b[:4])>>8 != 0x08 {
		return nil, fmt.Errorf("%s: not an unsigned-byte IDX file", path)
	}
	return b[header:], nil
}
