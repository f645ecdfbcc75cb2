package agentclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ModelConfig mirrors the agent's per-model serving configuration.
type ModelConfig struct {
	MaxBatchSize      int64  `json:"max_batch_size,omitempty"`
	MaxQueueDelay     string `json:"max_queue_delay,omitempty"`
	Instances         int    `json:"instances,omitempty"`
	IntraOpThreads    int    `json:"intra_op_threads,omitempty"`
	ExecutionProvider string `json:"execution_provider,omitempty"`
}

// LoadRequest mirrors PUT /v1/models/{name}.
type LoadRequest struct {
	Version string      `json:"version"`
	Source  string      `json:"source"`
	SHA256  string      `json:"sha256"`
	Config  ModelConfig `json:"config"`
}

// TensorSpec is one input or output of a model's signature.
type TensorSpec struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// Signature is a model's inputs and outputs.
type Signature struct {
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []TensorSpec `json:"outputs"`
}

// ModelStatus mirrors the agent's model description.
type ModelStatus struct {
	Name              string     `json:"name"`
	Version           string     `json:"version"`
	SHA256            string     `json:"sha256"`
	State             string     `json:"state"`
	ExecutionProvider string     `json:"execution_provider"`
	Signature         *Signature `json:"signature"`
	LastError         string     `json:"last_error"`
}

// ModelReady is the state of a model that serves.
const ModelReady = "READY"

// LoadModel loads (or swaps in) a model version; it returns when the new
// version serves or the load failed (the old version then keeps serving).
func (c *Client) LoadModel(ctx context.Context, name string, req LoadRequest) (*ModelStatus, error) {
	var st ModelStatus
	err := c.Do(ctx, "PUT", "/v1/models/"+url.PathEscape(name), req, &st)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.HasPrefix(ae.Message, "no route") {
		return nil, fmt.Errorf("the agent does not serve models: it runs without ONNX Runtime (for local nodes set " +
			"local.ort_library or HADRON_ORT_LIBRARY; `make install` puts the library next to the provider)")
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Model returns a model's status; ok is false when the agent has no such model.
func (c *Client) Model(ctx context.Context, name string) (st *ModelStatus, ok bool, err error) {
	var s ModelStatus
	err = c.Do(ctx, "GET", "/v1/models/"+url.PathEscape(name), nil, &s)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &s, true, nil
}

// UnloadModel removes a model; a model that is not there is not an error.
func (c *Client) UnloadModel(ctx context.Context, name string) error {
	err := c.Do(ctx, "DELETE", "/v1/models/"+url.PathEscape(name), nil, nil)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}
