package oip

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds the Triton-named counters on a private registry, together
// with the Go and process collectors.
type metrics struct {
	reg     *prometheus.Registry
	success *prometheus.CounterVec
	failure *prometheus.CounterVec
	count   *prometheus.CounterVec
	exec    *prometheus.CounterVec
	request *prometheus.CounterVec
	queue   *prometheus.CounterVec
	compute *prometheus.CounterVec
	pending *prometheus.GaugeVec
	handler http.Handler
}

func newMetrics() *metrics {
	labels := []string{"model", "version"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg:     prometheus.NewRegistry(),
		success: counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
		failure: counter("nv_inference_request_failure", "Number of failed inference requests, all batch sizes"),
		count:   counter("nv_inference_count", "Number of inferences performed (a batch of N counts N)"),
		exec:    counter("nv_inference_exec_count", "Number of model executions performed (a batch counts once)"),
		request: counter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds, queueing included"),
		queue:   counter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds"),
		compute: counter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds"),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nv_inference_pending_request_count", Help: "Instantaneous number of pending requests awaiting execution"}, labels),
	}
	m.reg.MustRegister(m.success, m.failure, m.count, m.exec, m.request, m.queue, m.compute, m.pending,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// observe records one finished request.
func (m *metrics) observe(model, version string, ok bool, rows int64, total, queue, compute time.Duration) {
	if !ok {
		m.failure.WithLabelValues(model, version).Inc()
		m.request.WithLabelValues(model, version).Add(us(total))
		return
	}
	m.success.WithLabelValues(model, version).Inc()
	m.count.WithLabelValues(model, version).Add(float64(rows))
	m.request.WithLabelValues(model, version).Add(us(total))
	m.queue.WithLabelValues(model, version).Add(us(queue))
	m.compute.WithLabelValues(model, version).Add(us(compute))
}
