// Package api holds the HTTP conventions shared by every part of the node
// runtime: JSON errors in the Open Inference Protocol shape, bearer-token
// authentication, and the Service interface through which the inference and
// training parts plug their routes into the agent.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
)

// Service is one part of the agent that serves HTTP routes (inference,
// training). The agent owns the mux, the listener and the lifecycle.
type Service interface {
	// Register adds the service's routes. auth wraps a handler so that it
	// requires the agent's bearer token.
	Register(mux *http.ServeMux, auth func(http.Handler) http.Handler)
	// Shutdown drains in-flight work; it returns when done or ctx ends.
	Shutdown(ctx context.Context) error
}

// Error is the JSON body of every error response: {"error": "..."}.
type Error struct {
	Error string `json:"error"`
}

// WriteJSON writes v as JSON with the given status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": msg} with the given status code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, Error{Error: msg})
}

// RequireToken returns middleware that accepts only requests carrying
// "Authorization: Bearer <token>". The comparison is constant-time and the
// token is never logged. An empty token disables authentication.
func RequireToken(token string) func(http.Handler) http.Handler {
	want := []byte(token)
	return func(next http.Handler) http.Handler {
		if token == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := bearer(r.Header.Get("Authorization"))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hadrond"`)
				WriteError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
				return
			}
			if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hadrond", error="invalid_token"`)
				WriteError(w, http.StatusUnauthorized, "invalid bearer token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// Readier is implemented by services that can be not ready yet (a model still
// loading). The agent's /v2/health/ready answers 200 only when every Readier
// service is ready.
type Readier interface {
	Ready() bool
}

// Busier is implemented by services with work in progress that makes no
// HTTP traffic (a training job); the agent's idle timeout waits for them.
type Busier interface {
	Busy() bool
}
