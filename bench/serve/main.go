// Command serve benchmarks the OIP inference server against in-process ONNX
// Runtime on the seed CNN (runtime/inference/testdata/cnn.onnx): throughput
// and p50/p99 latency through HTTP at several client concurrencies, with and
// without dynamic batching, next to direct Session.Run calls with the same
// threads, unbatched and batched at the batch size the server formed. It
// prints a Markdown table and writes it into docs/benchmarks.md between
// <!-- BEGIN bench-serve --> and <!-- END bench-serve -->.
//
//	HADRON_ORT_LIBRARY=/path/libonnxruntime.so.1 go run ./bench/serve
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/oip"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/serve:", err)
		os.Exit(1)
	}
}

type options struct {
	model, lib, out string
	duration        time.Duration
	threads         int
	maxBatch        int
	delay           string
	concurrency     []int
	binary          bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var o options
	var conc string
	fs.StringVar(&o.model, "model", filepath.Join("runtime", "inference", "testdata", "cnn.onnx"), "ONNX model (input image [N,1,28,28] FP32)")
	fs.StringVar(&o.lib, "ort", getenv("HADRON_ORT_LIBRARY"), "ONNX Runtime library (env HADRON_ORT_LIBRARY)")
	fs.StringVar(&o.out, "out", filepath.Join("docs", "benchmarks.md"), "Markdown file whose bench-serve section is replaced; empty to skip")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "measuring time per configuration (after a warm-up)")
	fs.IntVar(&o.threads, "threads", runtime.NumCPU(), "ONNX Runtime intra-op threads, server and in-process alike")
	fs.IntVar(&o.maxBatch, "max-batch", 32, "max_batch_size of the batching configuration")
	fs.StringVar(&o.delay, "delay", "2ms", "max_queue_delay of the batching configuration")
	fs.StringVar(&conc, "concurrency", "1,8,32", "client concurrencies")
	fs.BoolVar(&o.binary, "binary", false, "send the image as binary tensor data instead of JSON")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, c := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("bad concurrency %q", c)
		}
		o.concurrency = append(o.concurrency, n)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if o.lib == "" {
		return errors.New("ONNX Runtime library unknown: set HADRON_ORT_LIBRARY or -ort (make bench-serve does)")
	}
	model, err := os.ReadFile(o.model)
	if err != nil {
		return err
	}
	rt, err := inference.NewRuntime(inference.Options{LibraryPath: o.lib, ExecutionProvider: "cpu", IntraOpThreads: o.threads})
	if err != nil {
		return err
	}
	defer rt.Close()

	var rows []row
	add := func(r row) {
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "%-34s c=%-3d %9.1f inf/s  p50 %7.2f ms  p99 %7.2f ms  batch %5.1f\n", r.mode, r.conc, r.throughput, ms(r.p50), ms(r.p99), r.batch)
	}

	// Through the HTTP server, unbatched then batched.
	for _, batched := range []bool{false, true} {
		cfg := oip.ModelConfig{IntraOpThreads: o.threads, Instances: 1}
		mode := "server, no batching"
		if batched {
			cfg.MaxBatchSize, cfg.MaxQueueDelay = int64(o.maxBatch), o.delay
			mode = fmt.Sprintf("server, batching (max %d, %s)", o.maxBatch, o.delay)
		}
		for _, c := range o.concurrency {
			r, err := benchServer(ctx, rt, model, cfg, c, o)
			if err != nil {
				return err
			}
			r.mode = mode
			add(r)
		}
	}

	// In-process: the same session options, one image per call from c goroutines.
	sess, err := rt.LoadBytes(model, inference.SessionOptions{IntraOpThreads: o.threads})
	if err != nil {
		return err
	}
	defer sess.Close()
	for _, c := range o.concurrency {
		r, err := benchInProcess(ctx, sess, 1, c, o.duration)
		if err != nil {
			return err
		}
		r.mode = "in-process, batch 1"
		add(r)
	}
	// In-process batched at the batch size the server formed at the highest
	// concurrency, and at max_batch_size.
	top := rows[2*len(o.concurrency)-1]
	sizes := []int{int(top.batch + 0.5), o.maxBatch}
	if sizes[0] < 1 {
		sizes[0] = 1
	}
	sizes = slices.Compact(sizes)
	var inBatched row
	for i, b := range sizes {
		r, err := benchInProcess(ctx, sess, b, 1, o.duration)
		if err != nil {
			return err
		}
		r.mode = fmt.Sprintf("in-process, batch %d", b)
		add(r)
		if i == 0 {
			inBatched = r
		}
	}
	unbatchedTop := rows[len(o.concurrency)-1]
	table := render(o, rows, top, inBatched, unbatchedTop)
	fmt.Fprint(stdout, table)
	if o.out != "" {
		return writeSection(o.out, "bench-serve", table)
	}
	return nil
}

type row struct {
	mode       string
	conc       int
	throughput float64 // inferences (images) per second
	p50, p99   time.Duration
	batch      float64 // mean images per model execution
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := int(p * float64(len(lat)-1))
	return lat[i]
}

func image(seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, 784)
	for i := range x {
		x[i] = float32(rng.IntN(256)) / 255
	}
	return x
}

// benchServer serves the model on a loopback listener and drives it with c
// client goroutines, each sending one image per request.
func benchServer(ctx context.Context, rt *inference.Runtime, model []byte, cfg oip.ModelConfig, c int, o options) (row, error) {
	s, err := oip.New(oip.Config{}, oip.Deps{Runtime: rt, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return row{}, err
	}
	mux := http.NewServeMux()
	const token = "bench"
	s.Register(mux, api.RequireToken(token))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return row{}, err
	}
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	defer func() {
		_ = hs.Shutdown(context.Background())
		_ = s.Shutdown(context.Background())
	}()
	base := "http://" + ln.Addr().String()
	dir, err := os.MkdirTemp("", "bench-serve")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "cnn.onnx")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		return row{}, err
	}
	sum := sha256.Sum256(model)
	if _, err := s.LoadModel(ctx, "cnn", oip.LoadRequest{Version: "1", Source: path, SHA256: hex.EncodeToString(sum[:]), Config: cfg}); err != nil {
		return row{}, err
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}}
	bodies := make([][]byte, 16)
	var headerLen int
	for i := range bodies {
		bodies[i], headerLen = requestBody(image(uint64(i)), o.binary)
	}
	send := func(i int) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v2/models/cnn/infer", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Authorization", "Bearer "+token)
		if o.binary {
			req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(headerLen))
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		return nil
	}
	lat, n, elapsed, err := drive(ctx, c, o.duration, send)
	if err != nil {
		return row{}, err
	}
	count, execs := scrapeCounts(s)
	batch := 0.0
	if execs > 0 {
		batch = count / execs
	}
	return row{conc: c, throughput: float64(n) / elapsed.Seconds(), p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), batch: batch}, nil
}

func requestBody(img []float32, binary bool) ([]byte, int) {
	in := map[string]any{"name": "image", "datatype": "FP32", "shape": []int{1, 1, 28, 28}}
	if !binary {
		in["data"] = img
		b, _ := json.Marshal(map[string]any{"inputs": []any{in}})
		return b, -1
	}
	in["parameters"] = map[string]any{"binary_data_size": 4 * len(img)}
	h, _ := json.Marshal(map[string]any{"inputs": []any{in}})
	t := &inference.Tensor{DType: inference.FP32, Shape: []int64{1, 1, 28, 28}, Data: img}
	return append(h, t.RawBytes()...), len(h)
}

// scrapeCounts reads nv_inference_count and nv_inference_exec_count from the
// server's registry. The server is fresh per configuration, so the counts
// cover the warm-up and the measured window.
func scrapeCounts(s *oip.Server) (count, execs float64) {
	rec := &responseRecorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	s.MetricsHandler().ServeHTTP(rec, req)
	for _, line := range strings.Split(rec.body.String(), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(val, 64)
		switch {
		case strings.HasPrefix(name, "nv_inference_count{"):
			count = v
		case strings.HasPrefix(name, "nv_inference_exec_count{"):
			execs = v
		}
	}
	return count, execs
}

type responseRecorder struct {
	header http.Header
	body   bytes.Buffer
}

func (r *responseRecorder) Header() http.Header         { return r.header }
func (r *responseRecorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *responseRecorder) WriteHeader(int)             {}

// benchInProcess calls Session.Run with batch images per call from c goroutines.
func benchInProcess(ctx context.Context, sess *inference.Session, batch, c int, d time.Duration) (row, error) {
	data := make([]float32, 0, 784*batch)
	for i := 0; i < batch; i++ {
		data = append(data, image(uint64(i))...)
	}
	in := map[string]*inference.Tensor{"image": {DType: inference.FP32, Shape: []int64{int64(batch), 1, 28, 28}, Data: data}}
	lat, n, elapsed, err := drive(ctx, c, d, func(int) error {
		_, err := sess.Run(in, nil)
		return err
	})
	if err != nil {
		return row{}, err
	}
	return row{conc: c, throughput: float64(n*batch) / elapsed.Seconds(), p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), batch: float64(batch)}, nil
}

// drive runs f from c goroutines for a warm-up of d/4, then measures for d.
// It returns the latencies and call count of the measured window.
func drive(ctx context.Context, c int, d time.Duration, f func(i int) error) ([]time.Duration, int, time.Duration, error) {
	var (
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	measureFrom := start.Add(d / 4)
	end := measureFrom.Add(d)
	for g := 0; g < c; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := g; ctx.Err() == nil; i += c {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				if err := f(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if t0.After(measureFrom) {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return lat, len(lat), d, firstErr
}

func render(o options, rows []row, top, inBatched, unbatchedTop row) string {
	var b strings.Builder
	cpu := cpuModel()
	fmt.Fprintf(&b, "### Inference server (`make bench-serve`)\n\n")
	fmt.Fprintf(&b, "Run %s on %d CPUs (%s), ONNX Runtime %s, CPU provider, %d intra-op threads everywhere, one model instance. ",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), cpu, inference.RuntimeVersion(), o.threads)
	enc := "JSON tensors"
	if o.binary {
		enc = "binary tensor data"
	}
	fmt.Fprintf(&b, "Model: the seed CNN (`runtime/inference/testdata/cnn.onnx`, image [N,1,28,28] -> 10 logits). "+
		"Server rows: HTTP/1.1 over loopback, one image per request as %s, client in the same process; %s per row after a warm-up. "+
		"Throughput is images per second; batch is images per model execution (from `nv_inference_count / nv_inference_exec_count`).\n\n", enc, o.duration)
	fmt.Fprintf(&b, "| configuration | concurrency | throughput (inf/s) | p50 (ms) | p99 (ms) | batch |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.2f | %.2f | %.1f |\n", r.mode, r.conc, r.throughput, ms(r.p50), ms(r.p99), r.batch)
	}
	r1 := top.throughput / inBatched.throughput
	r2 := top.throughput / unbatchedTop.throughput
	fmt.Fprintf(&b, "\nRatios from this run, at concurrency %d:\n\n", top.conc)
	fmt.Fprintf(&b, "- server with batching / in-process batched at the same batch size (%s): **%.2fx** (target >= 0.9x) %s\n", strings.TrimPrefix(inBatched.mode, "in-process, "), r1, verdict(r1 >= 0.9))
	fmt.Fprintf(&b, "- server with batching / server without batching: **%.2fx** (target >= 2x) %s\n", r2, verdict(r2 >= 2))
	return b.String()
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// writeSection replaces the text between the section's markers in path,
// appending the section when the file or the markers are missing.
func writeSection(path, name, body string) error {
	begin, end := "<!-- BEGIN "+name+" -->", "<!-- END "+name+" -->"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	if s == "" {
		s = "# Benchmarks\n"
	}
	section := begin + "\n" + body + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(end):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
