// Package train is the node runtime's training engine: Keras-style
// Sequential models (Conv2D, MaxPooling2D, Dense, Flatten, Dropout, ReLU,
// Sigmoid, Softmax) trained in float32 on the CPU, with softmax or binary
// cross-entropy or MSE losses and SGD (momentum) or Adam.
//
// A job (JobSpec, from an HCL job file or JSON) names the model, the data
// (IDX, CSV or image folders), the loss, the optimizer and the schedule.
// RunJob trains it in a directory, writing atomic checkpoints every epoch
// (and every N steps if asked), metrics.json and chart.png after every epoch,
// and finally model.onnx (opset 13, dynamic batch) with its sha256. Running
// RunJob again on the same directory resumes from the newest checkpoint and
// reaches bit-identical weights: shuffling and dropout are functions of the
// seed and the step, and data-parallel workers reduce their gradients in a
// fixed order.
//
// Convolutions are im2col plus a blocked SGEMM whose 6x16 micro-kernel is Go
// assembly (AVX2 + FMA) when the CPU has it (golang.org/x/sys/cpu) and plain
// Go otherwise; 2x2 max pooling has AVX2 kernels too. Activations are NHWC
// and the exported ONNX graph takes NHWC input, so the same preprocessed
// tensors feed training and serving.
//
// Package jobs serves training jobs over the agent's HTTP API.
package train
