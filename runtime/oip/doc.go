// Package oip serves ONNX models over the Open Inference Protocol v2 REST
// API (the KServe/Triton protocol), with Triton's binary tensor data
// extension, a token-protected model management API, dynamic batching and
// Prometheus metrics under Triton's names.
//
// Routes (see Server.Register):
//
//	GET    /v2                                        server metadata
//	GET    /v2/models/{name}[/versions/{v}]           model metadata
//	GET    /v2/models/{name}[/versions/{v}]/ready     200 ready, 503 not ready
//	POST   /v2/models/{name}[/versions/{v}]/infer     inference
//	GET    /metrics                                   Prometheus
//	PUT    /v1/models/{name}    {"version","source","sha256","config"}
//	GET    /v1/models, /v1/models/{name}
//	DELETE /v1/models/{name}
//
// Loading a version swaps it in atomically: in-flight requests finish on the
// version they started on, and a failed load leaves the old one serving.
// Errors are {"error": "..."}: 400 for malformed requests (naming the input
// and what was expected), 404 for unknown models, 413 beyond the body limit,
// 422 for a model refused at load (sha256 mismatch, invalid ONNX), 503 while
// a model or the server is not ready.
package oip
