// Package inference runs ONNX models with ONNX Runtime. It is the only
// package of the node runtime that imports github.com/yalue/onnxruntime_go.
//
// A Runtime owns the ONNX Runtime environment: it loads the shared library
// named in Options, picks the execution provider and creates Sessions. A
// Session reports the model's Signature and runs it on Tensors, plain Go
// values whose Data is a typed slice (see DType).
//
// ONNX Runtime's environment is process-wide (onnxruntime_go keeps it in
// package globals). This package hides that: NewRuntime initialises the
// environment on first use and every further Runtime shares it, provided it
// names the same library; the last Runtime's Close releases it. Callers only
// ever hold a *Runtime.
package inference
