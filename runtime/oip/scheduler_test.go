package oip

import (
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
)

// identityRunner returns its input x as output y.
type identityRunner struct{ runs chan int64 }

func (r identityRunner) Run(in map[string]*inference.Tensor, _ []string) (map[string]*inference.Tensor, error) {
	r.runs <- in["x"].Shape[0]
	return map[string]*inference.Tensor{"y": in["x"]}, nil
}

func (identityRunner) Signature() inference.Signature {
	return inference.Signature{
		Inputs:  []inference.TensorInfo{{Name: "x", DType: inference.FP32, Shape: []int64{-1, 2}}},
		Outputs: []inference.TensorInfo{{Name: "y", DType: inference.FP32, Shape: []int64{-1, 2}}},
	}
}

type nopGauge struct{}

func (nopGauge) Inc() {}
func (nopGauge) Dec() {}

// TestBatchDelayCountsFromTheFirstRequest: max_queue_delay bounds how long
// a request waits in the queue, so one that has waited that long already
// (through the previous batch, under load) runs at once even while more
// requests are arriving, instead of idling the model for another delay.
func TestBatchDelayCountsFromTheFirstRequest(t *testing.T) {
	r := identityRunner{runs: make(chan int64, 4)}
	s := newScheduler(r, 8, 10*time.Minute, 1, func() {}, nopGauge{})
	defer s.close()
	arriving := s.announce() // a request being received, for the whole test
	defer arriving.finish()

	x, _ := inference.NewTensor(inference.FP32, []int64{1, 2})
	old := &job{inputs: map[string]*inference.Tensor{"x": x}, rows: 1, enqueued: time.Now().Add(-11 * time.Minute), done: make(chan result, 1)}
	s.queue <- old
	select {
	case res := <-old.done:
		if res.err != nil || res.out["y"] != x {
			t.Fatalf("result %+v, want y = x", res)
		}
	case <-time.After(time.Minute):
		t.Fatal("a request queued longer than max_queue_delay still waited for the arriving one")
	}

	// A fresh request does wait for the arriving one (up to the delay).
	fresh := &job{inputs: map[string]*inference.Tensor{"x": x}, rows: 1, enqueued: time.Now(), done: make(chan result, 1)}
	s.queue <- fresh
	select {
	case <-fresh.done:
		t.Fatal("a fresh request ran while another was still arriving")
	case <-time.After(200 * time.Millisecond):
	}
	arriving.release() // the other request failed before reaching the queue
	select {
	case <-fresh.done:
	case <-time.After(time.Minute):
		t.Fatal("the fresh request did not run once nothing was arriving")
	}
}
