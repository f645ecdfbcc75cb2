// Command serve benchmarks the OIP inference server against in-process ONNX
// Runtime: throughput and p50/p99 latency through HTTP at several client
// concurrencies, JSON and binary tensors, with and without dynamic batching,
// next to direct Session.Run calls with the same threads, unbatched and
// batched at the batch size the server formed. It measures the seed CNN
// (runtime/inference/testdata/cnn.onnx) and a wider CNN built in memory,
// prints Markdown and writes it into docs/benchmarks.md between
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
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference/onnxtest"
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
	models          string
	duration        time.Duration
	threads         int
	maxBatch        int
	delay           string
	concurrency     []int
	encoding        string
	rounds          int
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var o options
	var conc string
	fs.StringVar(&o.model, "model", filepath.Join("runtime", "inference", "testdata", "cnn.onnx"), "the seed CNN model file")
	fs.StringVar(&o.models, "models", "seed,wide", "models to measure: seed (the model file) and wide (a wider CNN built in memory)")
	fs.StringVar(&o.lib, "ort", getenv("HADRON_ORT_LIBRARY"), "ONNX Runtime library (env HADRON_ORT_LIBRARY)")
	fs.StringVar(&o.out, "out", filepath.Join("docs", "benchmarks.md"), "Markdown file whose bench-serve section is replaced; empty to skip")
	fs.DurationVar(&o.duration, "duration", time.Second, "measuring time per configuration and round (after a warm-up of a quarter of it)")
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds; each row reports its median round")
	fs.IntVar(&o.threads, "threads", runtime.NumCPU(), "ONNX Runtime intra-op threads, server and in-process alike")
	fs.IntVar(&o.maxBatch, "max-batch", 32, "max_batch_size of the batching configuration")
	fs.StringVar(&o.delay, "delay", "2ms", "max_queue_delay of the batching configuration")
	fs.StringVar(&conc, "concurrency", "1,8,32", "client concurrencies")
	fs.StringVar(&o.encoding, "encoding", "both", "request encoding of the server rows: json, binary or both")
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
	rt, err := inference.NewRuntime(inference.Options{LibraryPath: o.lib, ExecutionProvider: "cpu", IntraOpThreads: o.threads})
	if err != nil {
		return err
	}
	defer rt.Close()

	models := []struct {
		name, desc string
		data       []byte
	}{}
	for _, m := range strings.Split(o.models, ",") {
		switch strings.TrimSpace(m) {
		case "seed":
			b, err := os.ReadFile(o.model)
			if err != nil {
				return err
			}
			models = append(models, struct {
				name, desc string
				data       []byte
			}{"seed", "the seed CNN (`" + o.model + "`: image [N,1,28,28] -> Conv 32 -> Conv 64 -> Conv 128 -> Dense 512 -> 10 logits, about 16 MFLOP per image)", b})
		case "wide":
			b, err := onnxtest.CNNWidth(1, 64, 256, 512, 1024).Marshal()
			if err != nil {
				return err
			}
			models = append(models, struct {
				name, desc string
				data       []byte
			}{"wide", "a wider CNN of the same shape generated in memory (`onnxtest.CNNWidth(1, 64, 256, 512, 1024)`: Conv 64 -> Conv 256 -> Conv 512 -> Dense 1024 -> 10, about 150 MFLOP per image), where compute outweighs the per-request HTTP cost", b})
		default:
			return fmt.Errorf("unknown model %q: use seed or wide", m)
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "### Inference server (`make bench-serve`)\n\n")
	fmt.Fprintf(&out, "Run %s on %d CPUs (%s), ONNX Runtime %s, CPU execution provider, %d intra-op threads everywhere, one model instance. "+
		"Server rows: HTTP/1.1 over loopback, one image per request as JSON or binary tensor data, the client in the same process and on the same cores. "+
		"Every row was measured in %d interleaved rounds of %s (after a warm-up of a quarter of that); throughput is the median round's, in images per second, "+
		"and p50/p99 cover all rounds. Batch is images per model execution (`nv_inference_count / nv_inference_exec_count`). Load average when the run started: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), cpuModel(), inference.RuntimeVersion(), o.threads, o.rounds, o.duration, loadAverage())
	for _, m := range models {
		fmt.Fprintf(os.Stderr, "model %s\n", m.name)
		rows, ratios, err := benchModel(ctx, rt, m.data, o)
		if err != nil {
			return fmt.Errorf("model %s: %w", m.name, err)
		}
		fmt.Fprintf(&out, "#### Model: %s\n\n", m.desc)
		out.WriteString(render(rows, ratios))
		out.WriteString("\n")
	}
	out.WriteString("Reading the numbers: the \"ceiling\" lines show how much ONNX Runtime itself gains from batching each model on this CPU; " +
		"the 2x batching target comes from GPU serving, where a batch fills idle compute units, and cannot exceed that ceiling here. " +
		"What batching buys on CPU is amortising the per-request cost: the gap between the server rows and the in-process rows is the HTTP round trip " +
		"(request parsing, response encoding, the Go HTTP stack on both ends), paid on the same cores as the model. It weighs heavily on the seed CNN, " +
		"whose compute is about 0.1-0.2 ms per image, and little on the wider CNN. Rows measured while other processes loaded the machine vary by tens of percent between runs.\n")
	table := out.String()
	fmt.Fprint(stdout, table)
	if o.out != "" {
		return writeSection(o.out, "bench-serve", table)
	}
	return nil
}

// benchModel measures one model and returns its table rows and ratios.
func benchModel(ctx context.Context, rt *inference.Runtime, model []byte, o options) ([]row, []ratio, error) {
	// Every configuration is measured in several interleaved rounds and
	// reported by its median round, so that load from other processes on
	// the machine skews all configurations alike.
	unbatched := oip.ModelConfig{IntraOpThreads: o.threads, Instances: 1}
	batching := unbatched
	batching.MaxBatchSize, batching.MaxQueueDelay = int64(o.maxBatch), o.delay
	servers := map[bool]*benchServer{}
	for _, batched := range []bool{false, true} {
		cfg := unbatched
		if batched {
			cfg = batching
		}
		bs, err := startServer(ctx, rt, model, cfg, o)
		if err != nil {
			return nil, nil, err
		}
		defer bs.close()
		servers[batched] = bs
	}
	sess, err := rt.LoadBytes(model, inference.SessionOptions{IntraOpThreads: o.threads})
	if err != nil {
		return nil, nil, err
	}
	defer sess.Close()

	var cases []*benchCase
	encodings := []bool{false, true}
	if o.encoding == "json" {
		encodings = []bool{false}
	} else if o.encoding == "binary" {
		encodings = []bool{true}
	}
	type group struct {
		binary           bool
		unbatchedTop     *benchCase
		batchedTop       *benchCase
		inProcessSameBat *benchCase
	}
	var groups []*group
	for _, bin := range encodings {
		g := &group{binary: bin}
		groups = append(groups, g)
		enc := "JSON"
		if bin {
			enc = "binary"
		}
		for _, batched := range []bool{false, true} {
			mode := fmt.Sprintf("server (%s), no batching", enc)
			if batched {
				mode = fmt.Sprintf("server (%s), batching (max %d, %s)", enc, o.maxBatch, o.delay)
			}
			for _, c := range o.concurrency {
				bc := &benchCase{mode: mode, conc: c, measure: servers[batched].measurer(ctx, c, bin)}
				cases = append(cases, bc)
				if batched {
					g.batchedTop = bc
				} else {
					g.unbatchedTop = bc
				}
			}
		}
	}
	for _, c := range o.concurrency {
		cases = append(cases, &benchCase{mode: "in-process, batch 1", conc: c, measure: inProcess(ctx, sess, func() int { return 1 }, c)})
	}
	for _, g := range groups {
		same := &benchCase{conc: 1}
		enc := map[bool]string{false: "JSON", true: "binary"}[g.binary]
		top := g.batchedTop
		same.measure = inProcess(ctx, sess, func() int {
			b := max(int(top.meanBatch()+0.5), 1)
			same.mode = fmt.Sprintf("in-process, batch %d (mean batch of the %s server at c=%d)", b, enc, top.conc)
			return b
		}, 1)
		g.inProcessSameBat = same
		cases = append(cases, same)
	}
	full := &benchCase{mode: fmt.Sprintf("in-process, batch %d", o.maxBatch), conc: 1, measure: inProcess(ctx, sess, func() int { return o.maxBatch }, 1)}
	cases = append(cases, full)

	for round := 1; round <= o.rounds; round++ {
		for _, bc := range cases {
			r, err := bc.measure(o.duration)
			if err != nil {
				return nil, nil, fmt.Errorf("%s, concurrency %d: %w", bc.mode, bc.conc, err)
			}
			bc.rounds = append(bc.rounds, r)
			fmt.Fprintf(os.Stderr, "round %d  %-48s c=%-3d %9.1f inf/s  batch %5.1f\n", round, bc.mode, bc.conc, r.throughput, r.batch)
		}
	}
	rows := make([]row, len(cases))
	for i, bc := range cases {
		rows[i] = bc.summary()
	}
	var ratios []ratio
	for _, g := range groups {
		enc := map[bool]string{false: "JSON", true: "binary"}[g.binary]
		top, same, unb := g.batchedTop.summary(), g.inProcessSameBat.summary(), g.unbatchedTop.summary()
		ratios = append(ratios,
			ratio{fmt.Sprintf("server (%s) with batching, c=%d / in-process at the server's mean batch (%.1f)", enc, top.conc, same.batch), top.throughput / same.throughput, 0.9},
			ratio{fmt.Sprintf("server (%s) with batching / server (%s) without batching, c=%d", enc, enc, top.conc), top.throughput / unb.throughput, 2})
	}
	one := cases[len(cases)-len(groups)-1-len(o.concurrency)].summary()
	ratios = append(ratios, ratio{fmt.Sprintf("ceiling for batching on this model and CPU: in-process batch %d / in-process batch 1 (c=1)", o.maxBatch), full.summary().throughput / one.throughput, 0})
	return rows, ratios, nil
}

type ratio struct {
	what   string
	value  float64
	target float64 // 0: informational
}

// benchCase is one table row measured over several rounds.
type benchCase struct {
	mode    string
	conc    int
	measure func(d time.Duration) (roundResult, error)
	rounds  []roundResult
}

type roundResult struct {
	throughput float64
	lat        []time.Duration
	batch      float64
}

func (bc *benchCase) meanBatch() float64 {
	var sum float64
	for _, r := range bc.rounds {
		sum += r.batch
	}
	if len(bc.rounds) == 0 {
		return 1
	}
	return sum / float64(len(bc.rounds))
}

// summary reports the median round's throughput and latency percentiles
// over all rounds.
func (bc *benchCase) summary() row {
	tps := make([]float64, len(bc.rounds))
	var lat []time.Duration
	for i, r := range bc.rounds {
		tps[i] = r.throughput
		lat = append(lat, r.lat...)
	}
	slices.Sort(tps)
	return row{mode: bc.mode, conc: bc.conc, throughput: tps[len(tps)/2], p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), batch: bc.meanBatch()}
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

// benchServer is an OIP server on a loopback listener serving the model.
type benchServer struct {
	s     *oip.Server
	hs    *http.Server
	base  string
	dir   string
	token string
}

func startServer(ctx context.Context, rt *inference.Runtime, model []byte, cfg oip.ModelConfig, o options) (*benchServer, error) {
	s, err := oip.New(oip.Config{}, oip.Deps{Runtime: rt, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	bs := &benchServer{s: s, token: "bench"}
	mux := http.NewServeMux()
	s.Register(mux, api.RequireToken(bs.token))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	bs.hs = &http.Server{Handler: mux}
	go func() { _ = bs.hs.Serve(ln) }()
	bs.base = "http://" + ln.Addr().String()
	if bs.dir, err = os.MkdirTemp("", "bench-serve"); err != nil {
		return nil, err
	}
	path := filepath.Join(bs.dir, "cnn.onnx")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(model)
	if _, err := s.LoadModel(ctx, "cnn", oip.LoadRequest{Version: "1", Source: path, SHA256: hex.EncodeToString(sum[:]), Config: cfg}); err != nil {
		return nil, err
	}
	return bs, nil
}

func (bs *benchServer) close() {
	_ = bs.hs.Shutdown(context.Background())
	_ = bs.s.Shutdown(context.Background())
	_ = os.RemoveAll(bs.dir)
}

// measurer drives the server with c client goroutines, each sending one
// image per request.
func (bs *benchServer) measurer(ctx context.Context, c int, binary bool) func(time.Duration) (roundResult, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}}
	bodies := make([][]byte, 16)
	var headerLen int
	for i := range bodies {
		bodies[i], headerLen = requestBody(image(uint64(i)), binary)
	}
	send := func(i int) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", bs.base+"/v2/models/cnn/infer", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Authorization", "Bearer "+bs.token)
		if binary {
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
	return func(d time.Duration) (roundResult, error) {
		count0, execs0 := scrapeCounts(bs.s)
		lat, n, elapsed, err := drive(ctx, c, d, send)
		if err != nil {
			return roundResult{}, err
		}
		count, execs := scrapeCounts(bs.s)
		batch := 0.0
		if execs > execs0 {
			batch = (count - count0) / (execs - execs0)
		}
		return roundResult{throughput: float64(n) / elapsed.Seconds(), lat: lat, batch: batch}, nil
	}
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

// inProcess calls Session.Run with batch() images per call from c goroutines.
func inProcess(ctx context.Context, sess *inference.Session, batch func() int, c int) func(time.Duration) (roundResult, error) {
	return func(d time.Duration) (roundResult, error) {
		b := batch()
		data := make([]float32, 0, 784*b)
		for i := 0; i < b; i++ {
			data = append(data, image(uint64(i))...)
		}
		in := map[string]*inference.Tensor{"image": {DType: inference.FP32, Shape: []int64{int64(b), 1, 28, 28}, Data: data}}
		lat, n, elapsed, err := drive(ctx, c, d, func(int) error {
			_, err := sess.Run(in, nil)
			return err
		})
		if err != nil {
			return roundResult{}, err
		}
		return roundResult{throughput: float64(n*b) / elapsed.Seconds(), lat: lat, batch: float64(b)}, nil
	}
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

func render(rows []row, ratios []ratio) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| configuration | concurrency | throughput (inf/s) | p50 (ms) | p99 (ms) | batch |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.2f | %.2f | %.1f |\n", r.mode, r.conc, r.throughput, ms(r.p50), ms(r.p99), r.batch)
	}
	fmt.Fprintf(&b, "\nRatios from this run:\n\n")
	for _, r := range ratios {
		if r.target == 0 {
			fmt.Fprintf(&b, "- %s: **%.2fx**\n", r.what, r.value)
			continue
		}
		fmt.Fprintf(&b, "- %s: **%.2fx** (target >= %gx: %s)\n", r.what, r.value, r.target, verdict(r.value >= r.target))
	}
	return b.String()
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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
