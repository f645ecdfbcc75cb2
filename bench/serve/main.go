// Command serve benchmarks the OIP inference server against in-process ONNX
// Runtime: throughput and p50/p99 latency through HTTP at several client
// concurrencies, JSON and binary tensors, with and without dynamic batching,
// next to direct Session.Run calls with the same threads, unbatched and
// batched at the batch size the server formed. It measures the seed CNN
// (runtime/inference/testdata/cnn.onnx), a wider CNN built in memory, and a
// linear model with next to no compute whose server cost bounds what any
// server can reach on the same cores. It prints Markdown and writes it into
// docs/benchmarks.md between <!-- BEGIN bench-serve --> and <!-- END
// bench-serve -->.
//
//	HADRON_ORT_LIBRARY=/path/libonnxruntime.so.1 go run ./bench/serve
//	go run ./bench/serve -hadrond bin/hadrond   # serve from the real agent process
package main

import (
	"bufio"
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
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	instances       int
	maxBatch        int
	delay           string
	concurrency     []int
	encoding        string
	rounds          int
	client          string
	hadrond         string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var o options
	var conc string
	fs.StringVar(&o.model, "model", filepath.Join("runtime", "inference", "testdata", "cnn.onnx"), "the seed CNN model file")
	fs.StringVar(&o.models, "models", "seed,wide,linear", "models to measure: seed (the model file), wide (a wider CNN built in memory) and linear (next to no compute: the serving cost alone)")
	fs.StringVar(&o.lib, "ort", getenv("HADRON_ORT_LIBRARY"), "ONNX Runtime library (env HADRON_ORT_LIBRARY)")
	fs.StringVar(&o.out, "out", filepath.Join("docs", "benchmarks.md"), "Markdown file whose bench-serve section is replaced; empty to skip")
	fs.DurationVar(&o.duration, "duration", time.Second, "measuring time per configuration and round (after a warm-up of a quarter of it)")
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds; each row reports its median round")
	fs.IntVar(&o.threads, "threads", runtime.NumCPU(), "ONNX Runtime intra-op threads, server and in-process alike")
	fs.IntVar(&o.instances, "instances", 1, "model instances (concurrent executions of one session) of the server; in-process rows run as many callers")
	fs.IntVar(&o.maxBatch, "max-batch", 32, "max_batch_size of the batching configuration")
	fs.StringVar(&o.delay, "delay", "2ms", "max_queue_delay of the batching configuration")
	fs.StringVar(&conc, "concurrency", "1,8,32", "client concurrencies")
	fs.StringVar(&o.client, "client", "raw", "load generator: raw (pre-encoded HTTP/1.1 requests on plain connections, like wrk) or net/http")
	fs.StringVar(&o.hadrond, "hadrond", "", "serve from this hadrond binary in its own process (make bench-serve builds it); empty: a server in this process")
	fs.StringVar(&o.encoding, "encoding", "both", "request encoding of the server rows: json, binary or both")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	traceFile := fs.String("trace", "", "write an execution trace of the whole run to this file")
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
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}
	if o.lib == "" {
		return errors.New("ONNX Runtime library unknown: set HADRON_ORT_LIBRARY or -ort (make bench-serve does)")
	}
	rt, err := inference.NewRuntime(inference.Options{LibraryPath: o.lib, ExecutionProvider: "cpu", IntraOpThreads: o.threads})
	if err != nil {
		return err
	}
	defer rt.Close()

	type benchModelSpec struct {
		name, desc string
		data       []byte
	}
	var models []benchModelSpec
	for _, m := range strings.Split(o.models, ",") {
		var (
			spec  = benchModelSpec{name: strings.TrimSpace(m)}
			graph *onnxtest.Graph
			err   error
		)
		switch spec.name {
		case "seed":
			spec.desc = "the seed CNN (`" + o.model + "`: image [N,1,28,28] -> Conv 32 -> Conv 64 -> Conv 128 -> Dense 512 -> 10 logits, about 16 MFLOP per image)"
			spec.data, err = os.ReadFile(o.model)
		case "wide":
			spec.desc = "a wider CNN of the same shape generated in memory (`onnxtest.CNNWidth(1, 64, 256, 512, 1024)`: Conv 64 -> Conv 256 -> Conv 512 -> Dense 1024 -> 10, about 150 MFLOP per image), where compute outweighs the per-request HTTP cost"
			graph = onnxtest.CNNWidth(1, 64, 256, 512, 1024)
		case "linear":
			spec.desc = "a linear classifier with the same input and output (`onnxtest.Linear`: Flatten -> Dense 10, about 16 kFLOP per image): next to no compute, so its server rows show what serving itself costs per request"
			graph = onnxtest.Linear(1)
		default:
			return fmt.Errorf("unknown model %q: use seed, wide or linear", m)
		}
		if graph != nil {
			spec.data, err = graph.Marshal()
		}
		if err != nil {
			return err
		}
		models = append(models, spec)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "### Inference server (`make bench-serve`)\n\n")
	server := "an OIP server in the bench process (what `-cpuprofile` sees)"
	if o.hadrond != "" {
		server = "`hadrond agent` in its own process, configured by HCL and loaded through its management API"
	}
	client := "a wrk-style load generator (pre-encoded requests, one keep-alive connection per client, responses read up to Content-Length)"
	if o.client != "raw" {
		client = "Go's net/http client"
	}
	fmt.Fprintf(&out, "Run %s on %d CPUs (%s), ONNX Runtime %s, CPU execution provider, %d intra-op threads everywhere, %d model instance(s) (in-process rows run as many callers). "+
		"Server rows: %s over HTTP/1.1 on loopback, one image per request as JSON or binary tensor data, driven by %s in the bench process, on the same cores. "+
		"Every row was measured in %d interleaved rounds of %s (after a warm-up of a quarter of that); throughput is the median round's, in images per second, "+
		"and p50/p99 cover all rounds. Batch is images per model execution (`nv_inference_count / nv_inference_exec_count`); CPU is the cores the bench process (server, client and ONNX Runtime) kept busy. "+
		"Load average when the run started: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), cpuModel(), inference.RuntimeVersion(), o.threads, o.instances, server, client, o.rounds, o.duration, loadAverage())
	results := map[string]*modelResult{}
	var order []string
	for _, m := range models {
		fmt.Fprintf(os.Stderr, "model %s\n", m.name)
		res, err := benchModel(ctx, rt, m.data, o)
		if err != nil {
			return fmt.Errorf("model %s: %w", m.name, err)
		}
		results[m.name] = res
		order = append(order, m.name)
	}
	if floor, ok := results["linear"]; ok {
		// Its server/in-process ratios compare HTTP with next to nothing;
		// what it measures is the serving cost per request.
		floor.ratios = nil
		for _, enc := range []string{"JSON", "binary"} {
			if c, ok := floor.cost[enc]; ok {
				floor.ratios = append(floor.ratios, ratio{fmt.Sprintf("CPU per request outside the model, server (%s) with batching at c=%d, client included (H)", enc, o.concurrency[len(o.concurrency)-1]),
					max(c.server-c.inProcess, 0) * 1e6, -1})
			}
		}
	}
	addBounds(results, order)
	for _, m := range models {
		fmt.Fprintf(&out, "#### Model: %s\n\n", m.desc)
		out.WriteString(render(results[m.name].rows, results[m.name].ratios))
		out.WriteString("\n")
	}
	out.WriteString("Reading the numbers: the \"ceiling\" lines show how much ONNX Runtime itself gains from batching each model on this CPU; " +
		"the 2x batching target comes from GPU serving, where a batch fills idle compute units, and a CPU run can only exceed that ceiling by as much as batching saves per-request work. " +
		"The \"estimated bound\" lines show what the 0.9x target meets on a machine where the server, its client and the model share the same cores: every request costs H of CPU outside the model " +
		"(HTTP on both ends, decoding, scheduling; measured with the linear model), so the server cannot pass C/(C+H) of in-process throughput however it is built " +
		"(an estimate: C and H come from rows measured at different moments of a noisy run). " +
		"Compare each server ratio with its bound: the gap between them is what the server itself could still win. " +
		"A GPU, or a client on other machines, takes H off the model's cores. Rows measured while other processes load the machine vary by tens of percent between runs; the CPU column shows it when the bench could not keep both cores busy.\n")
	table := out.String()
	fmt.Fprint(stdout, table)
	if o.out != "" {
		return writeSection(o.out, "bench-serve", table)
	}
	return nil
}

// benchModel measures one model and returns its table rows and ratios.
func benchModel(ctx context.Context, rt *inference.Runtime, model []byte, o options) (*modelResult, error) {
	// Every configuration is measured in several interleaved rounds and
	// reported by its median round, so that load from other processes on
	// the machine skews all configurations alike.
	unbatched := oip.ModelConfig{IntraOpThreads: o.threads, Instances: o.instances}
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
			return nil, err
		}
		defer bs.close()
		servers[batched] = bs
	}
	sess, err := rt.LoadBytes(model, inference.SessionOptions{IntraOpThreads: o.threads})
	if err != nil {
		return nil, err
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
				bc := &benchCase{mode: mode, conc: c, measure: servers[batched].measurer(ctx, c, bin, o.client)}
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
		same := &benchCase{conc: o.instances}
		enc := map[bool]string{false: "JSON", true: "binary"}[g.binary]
		top := g.batchedTop
		same.measure = inProcess(ctx, sess, func() int {
			b := max(int(top.meanBatch()+0.5), 1)
			same.mode = fmt.Sprintf("in-process, batch %d (mean batch of the %s server at c=%d)", b, enc, top.conc)
			return b
		}, o.instances)
		g.inProcessSameBat = same
		cases = append(cases, same)
	}
	full := &benchCase{mode: fmt.Sprintf("in-process, batch %d", o.maxBatch), conc: o.instances, measure: inProcess(ctx, sess, func() int { return o.maxBatch }, o.instances)}
	cases = append(cases, full)

	for round := 1; round <= o.rounds; round++ {
		for _, bc := range cases {
			r, err := bc.measure(o.duration)
			if err != nil {
				return nil, fmt.Errorf("%s, concurrency %d: %w", bc.mode, bc.conc, err)
			}
			bc.rounds = append(bc.rounds, r)
			fmt.Fprintf(os.Stderr, "round %d  %-48s c=%-3d %9.1f inf/s  batch %5.1f\n", round, bc.mode, bc.conc, r.throughput, r.batch)
		}
	}
	rows := make([]row, len(cases))
	for i, bc := range cases {
		rows[i] = bc.summary()
	}
	res := &modelResult{rows: rows, cost: map[string]cost{}}
	for _, g := range groups {
		enc := map[bool]string{false: "JSON", true: "binary"}[g.binary]
		top, same, unb := g.batchedTop.summary(), g.inProcessSameBat.summary(), g.unbatchedTop.summary()
		res.cost[enc] = cost{server: top.cpu / top.throughput, inProcess: same.cpu / same.throughput}
		res.ratios = append(res.ratios,
			ratio{fmt.Sprintf("server (%s) with batching, c=%d / in-process at the server's mean batch (%.1f)", enc, top.conc, same.batch), top.throughput / same.throughput, 0.9},
			ratio{fmt.Sprintf("server (%s) with batching / server (%s) without batching, c=%d", enc, enc, top.conc), top.throughput / unb.throughput, 2})
	}
	one := cases[len(cases)-len(groups)-1-len(o.concurrency)].summary()
	res.ratios = append(res.ratios, ratio{fmt.Sprintf("ceiling for batching on this model and CPU: in-process batch %d / in-process batch 1 (c=1)", o.maxBatch), full.summary().throughput / one.throughput, 0})
	return res, nil
}

// modelResult is one model's table, ratios and CPU costs.
type modelResult struct {
	rows   []row
	ratios []ratio
	cost   map[string]cost // by request encoding
}

// cost is CPU time (core-seconds) per image: through the server with
// batching at the top concurrency, client included, and in-process at the
// same batch size.
type cost struct{ server, inProcess float64 }

// addBounds adds to each model's ratios the bound that the serving cost
// measured with the linear model (next to no compute) puts on server /
// in-process: with C the in-process CPU per image and H the CPU per request
// spent on everything but the model, the server can reach at most C/(C+H)
// of in-process throughput on the same cores.
func addBounds(results map[string]*modelResult, order []string) {
	floor, ok := results["linear"]
	if !ok {
		return
	}
	for _, name := range order {
		if name == "linear" {
			continue
		}
		r := results[name]
		for _, enc := range []string{"JSON", "binary"} {
			c, okC := r.cost[enc]
			f, okF := floor.cost[enc]
			if !okC || !okF {
				continue
			}
			h := max(f.server-f.inProcess, 0)
			r.ratios = append(r.ratios, ratio{fmt.Sprintf("estimated bound on server (%s) / in-process on these cores: C/(C+H) with C = %.0f us of CPU per image in-process and H = %.0f us of CPU per request outside the model (the linear model's server cost)",
				enc, c.inProcess*1e6, h*1e6), c.inProcess / (c.inProcess + h), 0})
		}
	}
}

type ratio struct {
	what   string
	value  float64
	target float64 // 0: informational; < 0: a cost in microseconds
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
	cpu        float64 // cores busy in the measured window
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
	var cpu float64
	for _, r := range bc.rounds {
		cpu += r.cpu / float64(len(bc.rounds))
	}
	slices.Sort(tps)
	return row{mode: bc.mode, conc: bc.conc, throughput: tps[len(tps)/2], p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), batch: bc.meanBatch(), cpu: cpu}
}

type row struct {
	mode       string
	conc       int
	throughput float64 // inferences (images) per second
	p50, p99   time.Duration
	batch      float64 // mean images per model execution
	cpu        float64 // mean cores busy
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

// benchServer is an OIP server on a loopback listener serving the model
// as "cnn": a hadrond process (-hadrond) or, for profiling, a server in
// this process.
type benchServer struct {
	addr    string
	token   string
	metrics func() (string, error) // the Prometheus exposition
	close   func()
}

func startServer(ctx context.Context, rt *inference.Runtime, model []byte, cfg oip.ModelConfig, o options) (*benchServer, error) {
	dir, err := os.MkdirTemp("", "bench-serve")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "cnn.onnx")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(model)
	load := oip.LoadRequest{Version: "1", Source: path, SHA256: hex.EncodeToString(sum[:]), Config: cfg}
	bs := &benchServer{token: "bench"}
	if o.hadrond != "" {
		err = bs.startHadrond(ctx, dir, o)
		if err == nil {
			err = bs.loadModel(ctx, load)
		}
	} else {
		err = bs.startInProcess(ctx, rt, load)
	}
	if err != nil {
		if bs.close != nil {
			bs.close()
		}
		_ = os.RemoveAll(dir)
		return nil, err
	}
	stop := bs.close
	bs.close = func() {
		stop()
		_ = os.RemoveAll(dir)
	}
	return bs, nil
}

// startHadrond runs the node runtime's agent in its own process, as on a
// node, configured by an HCL file in dir.
func (bs *benchServer) startHadrond(ctx context.Context, dir string, o options) error {
	addrFile := filepath.Join(dir, "addr")
	conf := fmt.Sprintf("listen = \"127.0.0.1:0\"\ndata_dir = %q\ntoken = %q\naddr_file = %q\nlog_level = \"warn\"\n"+
		"ort {\n  library = %q\n  execution_provider = \"cpu\"\n  intra_op_threads = %d\n}\n",
		filepath.Join(dir, "data"), bs.token, addrFile, o.lib, o.threads)
	confPath := filepath.Join(dir, "hadrond.hcl")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "hadrond.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(o.hadrond, "agent", "-config", confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	bs.close = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	}
	bs.metrics = func() (string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+bs.addr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+bs.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /metrics: HTTP %d: %s", resp.StatusCode, b)
		}
		return string(b), err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("hadrond exited (%v): %s", err, log)
		default:
		}
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			bs.addr = strings.TrimPrefix(strings.TrimSpace(string(b)), "http://")
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("hadrond did not write its address within 30s")
		}
	}
}

// loadModel loads the model through the agent's management API.
func (bs *benchServer) loadModel(ctx context.Context, load oip.LoadRequest) error {
	body, _ := json.Marshal(load)
	req, _ := http.NewRequestWithContext(ctx, "PUT", "http://"+bs.addr+"/v1/models/cnn", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bs.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("loading the model: HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}

// startInProcess serves from this process, sharing its Go scheduler with
// the client: what -cpuprofile and -trace can see.
func (bs *benchServer) startInProcess(ctx context.Context, rt *inference.Runtime, load oip.LoadRequest) error {
	s, err := oip.New(oip.Config{}, oip.Deps{Runtime: rt, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	s.Register(mux, api.RequireToken(bs.token))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	bs.addr = ln.Addr().String()
	bs.close = func() {
		_ = hs.Shutdown(context.Background())
		_ = s.Shutdown(context.Background())
	}
	bs.metrics = func() (string, error) {
		rec := &responseRecorder{header: http.Header{}}
		req, _ := http.NewRequest("GET", "/metrics", nil)
		s.MetricsHandler().ServeHTTP(rec, req)
		return rec.body.String(), nil
	}
	_, err = s.LoadModel(ctx, "cnn", load)
	return err
}

// measurer drives the server with c client goroutines, each sending one
// image per request on its own keep-alive connection.
func (bs *benchServer) measurer(ctx context.Context, c int, binary bool, client string) func(time.Duration) (roundResult, error) {
	bodies := make([][]byte, 16)
	var headerLen int
	for i := range bodies {
		bodies[i], headerLen = requestBody(image(uint64(i)), binary)
	}
	var send func(i int) error
	switch client {
	case "raw":
		reqs := make([][]byte, len(bodies))
		for i, b := range bodies {
			reqs[i] = bs.rawRequest(b, headerLen)
		}
		conns := make([]*rawConn, c) // conns[g] belongs to client goroutine g
		send = func(i int) error {
			rc := conns[i%c]
			if rc == nil {
				conn, err := net.Dial("tcp", bs.addr)
				if err != nil {
					return err
				}
				rc = &rawConn{conn: conn, r: bufio.NewReaderSize(conn, 16<<10)}
				conns[i%c] = rc
			}
			return rc.roundTrip(reqs[i%len(reqs)])
		}
	default:
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}}
		send = func(i int) error {
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+bs.addr+"/v2/models/cnn/infer", bytes.NewReader(bodies[i%len(bodies)]))
			req.Header.Set("Authorization", "Bearer "+bs.token)
			if binary {
				req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(headerLen))
			}
			resp, err := hc.Do(req)
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
	}
	return func(d time.Duration) (roundResult, error) {
		count0, execs0, err := scrapeCounts(bs)
		if err != nil {
			return roundResult{}, err
		}
		lat, n, elapsed, cpu, err := drive(ctx, c, d, send)
		if err != nil {
			return roundResult{}, err
		}
		count, execs, err := scrapeCounts(bs)
		if err != nil {
			return roundResult{}, err
		}
		batch := 0.0
		if execs > execs0 {
			batch = (count - count0) / (execs - execs0)
		}
		return roundResult{throughput: float64(n) / elapsed.Seconds(), lat: lat, batch: batch, cpu: cpu}, nil
	}
}

// rawRequest encodes a complete HTTP/1.1 inference request once, so that
// the raw client only writes bytes.
func (bs *benchServer) rawRequest(body []byte, headerLen int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST /v2/models/cnn/infer HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n", bs.addr, bs.token, len(body))
	if headerLen >= 0 {
		fmt.Fprintf(&b, "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %d\r\n", headerLen)
	} else {
		b.WriteString("Content-Type: application/json\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// rawConn is a load generator's HTTP/1.1 client, like wrk's: it writes a
// pre-encoded request and reads the response's status line, headers and
// Content-Length body with no further parsing, so that on these shared
// cores the client costs as little as possible next to the server.
type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (rc *rawConn) roundTrip(req []byte) error {
	if _, err := rc.conn.Write(req); err != nil {
		return err
	}
	status, err := rc.r.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("reading status line: %w", err)
	}
	ok := bytes.HasPrefix(status, []byte("HTTP/1.1 200 "))
	status = bytes.Clone(status)
	length := -1
	for {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reading headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if k, v, found := bytes.Cut(line, []byte(":")); found && strings.EqualFold(string(k), "Content-Length") {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return errors.New("response without Content-Length")
	}
	if !ok {
		b := make([]byte, length)
		_, _ = io.ReadFull(rc.r, b)
		return fmt.Errorf("%s: %s", bytes.TrimSpace(status), b)
	}
	_, err = rc.r.Discard(length)
	return err
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
// server's metrics. The server is fresh per configuration, so the counts
// cover the warm-up and the measured window.
func scrapeCounts(bs *benchServer) (count, execs float64, err error) {
	text, err := bs.metrics()
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(text, "\n") {
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
	return count, execs, nil
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
		lat, n, elapsed, cpu, err := drive(ctx, c, d, func(int) error {
			_, err := sess.Run(in, nil)
			return err
		})
		if err != nil {
			return roundResult{}, err
		}
		return roundResult{throughput: float64(n*b) / elapsed.Seconds(), lat: lat, batch: float64(b), cpu: cpu}, nil
	}
}

// drive runs f from c goroutines for a warm-up of d/4, then measures for d.
// It returns the latencies and call count of the measured window, and the
// CPU time the process used in it, in cores.
func drive(ctx context.Context, c int, d time.Duration, f func(i int) error) ([]time.Duration, int, time.Duration, float64, error) {
	var (
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	measureFrom := start.Add(d / 4)
	end := measureFrom.Add(d)
	cpuDone := make(chan float64, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		t0, c0 := time.Now(), cpuTime()
		time.Sleep(time.Until(end))
		cpuDone <- (cpuTime() - c0).Seconds() / time.Since(t0).Seconds()
	}()
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
	return lat, len(lat), d, <-cpuDone, firstErr
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func render(rows []row, ratios []ratio) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| configuration | concurrency | throughput (inf/s) | p50 (ms) | p99 (ms) | batch | CPU (cores) |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.2f | %.2f | %.1f | %.2f |\n", r.mode, r.conc, r.throughput, ms(r.p50), ms(r.p99), r.batch, r.cpu)
	}
	fmt.Fprintf(&b, "\nFrom this run:\n\n")
	for _, r := range ratios {
		if r.target < 0 {
			fmt.Fprintf(&b, "- %s: **%.0f us**\n", r.what, r.value)
			continue
		}
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
