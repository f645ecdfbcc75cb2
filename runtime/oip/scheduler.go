package oip

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// runner is the part of inference.Session that the scheduler needs.
type runner interface {
	Run(inputs map[string]*inference.Tensor, outputs []string) (map[string]*inference.Tensor, error)
	Signature() inference.Signature
}

// job is one inference request waiting for execution.
type job struct {
	inputs   map[string]*inference.Tensor
	outputs  []string
	rows     int64 // dimension 0 of the inputs when batchable
	enqueued time.Time
	done     chan result // buffered, written once
}

type result struct {
	out     map[string]*inference.Tensor
	err     error
	queue   time.Duration
	compute time.Duration
}

// scheduler executes requests on one model version, either directly with at
// most `instances` concurrent executions, or through the dynamic batcher:
// `instances` workers each gather queued requests whose inputs agree beyond
// dimension 0, up to maxBatch rows or until the first has been queued for
// maxDelay, run them as one batch and split the outputs along dimension 0.
// Unlike a fixed queue delay, a partial batch waits only while another
// request is being received, so a lone client pays no batching latency.
type scheduler struct {
	run       runner
	maxBatch  int64
	maxDelay  time.Duration
	batchable bool
	onExec    func() // counts model executions
	pending   interface {
		Inc()
		Dec()
	}

	// arriving counts requests that have reached the handler but are not
	// queued yet; a batch only waits for more work while some is on its way.
	arriving atomic.Int64
	nudge    chan struct{} // signalled when arriving drops to zero

	sem     chan struct{}
	queue   chan *job
	workers sync.WaitGroup
	stop    sync.Once
}

// batchable reports whether requests to a model with this signature can be
// joined along dimension 0: every input and output must have a dynamic
// first dimension.
func batchable(sig inference.Signature) bool {
	for _, ts := range [][]inference.TensorInfo{sig.Inputs, sig.Outputs} {
		for _, t := range ts {
			if len(t.Shape) == 0 || t.Shape[0] != -1 {
				return false
			}
		}
	}
	return len(sig.Inputs) > 0
}

func newScheduler(r runner, maxBatch int64, maxDelay time.Duration, instances int, onExec func(), pending interface {
	Inc()
	Dec()
}) *scheduler {
	if instances < 1 {
		instances = 1
	}
	s := &scheduler{
		run:      r,
		maxBatch: maxBatch,
		maxDelay: maxDelay,
		onExec:   onExec,
		pending:  pending,
		sem:      make(chan struct{}, instances),
		nudge:    make(chan struct{}, instances),
	}
	s.batchable = maxBatch > 1 && batchable(r.Signature())
	if s.batchable {
		s.queue = make(chan *job, 4*maxBatch*int64(instances))
		for range instances {
			s.workers.Add(1)
			go s.worker()
		}
	}
	return s
}

// ticket marks a request on its way to the scheduler; see announce.
type ticket struct {
	s    *scheduler
	once sync.Once
}

// announce tells the batcher that a request is being decoded, so that a
// partial batch waits (up to maxDelay) for it instead of running at once.
// The ticket is consumed by infer; release it if the request fails before.
// The request counts as pending (nv_inference_pending_request_count) until
// finish.
func (s *scheduler) announce() *ticket {
	s.arriving.Add(1)
	s.pending.Inc()
	return &ticket{s: s}
}

// finish ends the request's pending time; call it once, when it is answered.
func (t *ticket) finish() {
	t.release()
	t.s.pending.Dec()
}

func (t *ticket) release() {
	if t != nil {
		t.once.Do(func() {
			if t.s.arriving.Add(-1) == 0 {
				for range cap(t.s.nudge) { // one per worker that may be waiting
					select {
					case t.s.nudge <- struct{}{}:
					default:
					}
				}
			}
		})
	}
}

// infer runs one request. Only requests with the same tail shapes are
// batched together, so batching never changes what a request computes.
func (s *scheduler) infer(ctx context.Context, t *ticket, inputs map[string]*inference.Tensor, outputs []string) result {
	defer t.release()
	j := &job{inputs: inputs, outputs: outputs, enqueued: time.Now(), done: make(chan result, 1)}
	if s.batchable {
		j.rows = rowsOf(inputs)
	}
	if !s.batchable || j.rows < 0 || j.rows > s.maxBatch {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return result{err: ctx.Err()}
		}
		defer func() { <-s.sem }()
		start := time.Now()
		out, err := s.exec(inputs, outputs)
		return result{out: out, err: err, queue: start.Sub(j.enqueued), compute: time.Since(start)}
	}
	select {
	case s.queue <- j:
		t.release()
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
	return <-j.done
}

func (s *scheduler) exec(inputs map[string]*inference.Tensor, outputs []string) (map[string]*inference.Tensor, error) {
	s.onExec()
	return s.run.Run(inputs, outputs)
}

// rowsOf returns the common dimension 0 of the inputs, or -1.
func rowsOf(inputs map[string]*inference.Tensor) int64 {
	rows := int64(-1)
	for _, t := range inputs {
		if len(t.Shape) == 0 || (rows >= 0 && t.Shape[0] != rows) {
			return -1
		}
		rows = t.Shape[0]
	}
	return rows
}

// compatible reports whether b can join a batch started by a.
func compatible(a, b *job) bool {
	if len(a.inputs) != len(b.inputs) {
		return false
	}
	for name, ta := range a.inputs {
		tb, ok := b.inputs[name]
		if !ok || ta.DType != tb.DType || len(ta.Shape) != len(tb.Shape) {
			return false
		}
		for i := 1; i < len(ta.Shape); i++ {
			if ta.Shape[i] != tb.Shape[i] {
				return false
			}
		}
	}
	return true
}

func (s *scheduler) worker() {
	defer s.workers.Done()
	var next *job
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first := next
		next = nil
		if first == nil {
			var ok bool
			if first, ok = <-s.queue; !ok {
				return
			}
		}
		batch := []*job{first}
		rows := first.rows
		// The delay bounds how long the first request waits in the queue
		// (as Triton's max_queue_delay), not how long the worker waits:
		// under load it has waited through the previous batch already, and
		// the next one starts at once instead of leaving the model idle.
		deadline := first.enqueued.Add(s.maxDelay)
		if s.maxDelay > 0 {
			timer.Reset(time.Until(deadline))
		}
	collect:
		for rows < s.maxBatch {
			var j *job
			var ok bool
			select {
			case j, ok = <-s.queue:
			default:
				// Nothing queued: wait only if a request is on its way.
				if s.maxDelay <= 0 || s.arriving.Load() == 0 || !time.Now().Before(deadline) {
					break collect
				}
				select {
				case j, ok = <-s.queue:
				case <-s.nudge:
					continue // re-check: the awaited request may have failed
				case <-timer.C:
					break collect
				}
			}
			if !ok {
				break collect
			}
			if !compatible(first, j) || rows+j.rows > s.maxBatch {
				next = j
				break collect
			}
			batch = append(batch, j)
			rows += j.rows
		}
		if s.maxDelay > 0 && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		s.runBatch(batch)
	}
}

// runBatch executes a batch and hands each job its rows of the outputs. If
// the batched run fails, or a model output does not keep dimension 0 equal
// to the batch size, each job is run on its own so that one request's
// failure or an unusual model never changes another request's result.
func (s *scheduler) runBatch(batch []*job) {
	start := time.Now()
	if len(batch) == 1 {
		j := batch[0]
		out, err := s.exec(j.inputs, j.outputs)
		j.done <- result{out: out, err: err, queue: start.Sub(j.enqueued), compute: time.Since(start)}
		return
	}
	outs, err := s.execBatch(batch)
	compute := time.Since(start)
	if err != nil {
		for _, j := range batch {
			t := time.Now()
			out, err := s.exec(j.inputs, j.outputs)
			j.done <- result{out: out, err: err, queue: start.Sub(j.enqueued), compute: time.Since(t)}
		}
		return
	}
	for i, j := range batch {
		j.done <- result{out: outs[i], queue: start.Sub(j.enqueued), compute: compute}
	}
}

func (s *scheduler) execBatch(batch []*job) ([]map[string]*inference.Tensor, error) {
	joined := make(map[string]*inference.Tensor, len(batch[0].inputs))
	rows := make([]int64, len(batch))
	for i, j := range batch {
		rows[i] = j.rows
	}
	parts := make([]*inference.Tensor, len(batch))
	for name := range batch[0].inputs {
		for i, j := range batch {
			parts[i] = j.inputs[name]
		}
		t, err := inference.ConcatRows(parts)
		if err != nil {
			return nil, err
		}
		joined[name] = t
	}
	res, err := s.exec(joined, nil)
	if err != nil {
		return nil, err
	}
	outs := make([]map[string]*inference.Tensor, len(batch))
	for i := range outs {
		outs[i] = map[string]*inference.Tensor{}
	}
	for name, t := range res {
		pieces, err := inference.SplitRows(t, rows)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", name, err)
		}
		for i, p := range pieces {
			outs[i][name] = p
		}
	}
	for i, j := range batch {
		if len(j.outputs) == 0 {
			continue
		}
		picked := make(map[string]*inference.Tensor, len(j.outputs))
		for _, o := range j.outputs {
			t, ok := outs[i][o]
			if !ok {
				return nil, errors.New("batched run lacks output " + o)
			}
			picked[o] = t
		}
		outs[i] = picked
	}
	return outs, nil
}

// close stops the batch workers once the queue has drained. Callers must
// not submit work after close.
func (s *scheduler) close() {
	s.stop.Do(func() {
		if s.queue != nil {
			close(s.queue)
		}
	})
	s.workers.Wait()
}
