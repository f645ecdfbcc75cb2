package inference

// ProbeModel exposes the CUDA probe's model to the external tests.
func ProbeModel() string { return probeModel }
