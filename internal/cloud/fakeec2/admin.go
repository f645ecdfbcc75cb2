package fakeec2

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// registerAdmin adds the JSON admin API, for a fake running in another
// process (cmd/fakeec2). It is unauthenticated: the fake only listens on
// loopback.
//
//	GET    /admin/instances                 every instance ([]Instance)
//	GET    /admin/instances/{id}            one instance
//	POST   /admin/instances/{id}/terminate  out-of-band termination (spot reclaim); ?immediate=true skips shutting-down
//	GET    /admin/security-groups           []SecurityGroup
//	GET    /admin/key-pairs                 []KeyPair
//	GET    /admin/subnets                   []Subnet
//	GET    /admin/faults                    the pending Faults
//	PUT    /admin/faults                    replace the Faults (JSON body)
//	POST   /admin/release                   let held RunInstances responses go
//	POST   /admin/public-ips                queue public IPs for the next instances, and optionally set the
//	                                        one used once the queue is empty: {"ips": ["127.0.0.2"], "default": "127.0.0.3"}
//	PUT    /admin/polls                     {"pending": N, "shutting_down": N}
//	PUT    /admin/offerings/{region}        where types are offered: {"g5.xlarge": ["us-east-1b"]}; null restores the default
//	PUT    /admin/spot-price-history        replace the spot price history ([]SpotPrice)
//	GET    /admin/calls                     the call log ([]Call); with ?action=A&min=N&timeout=30s it
//	                                        first waits until N calls of A were handled (408 on timeout)
func (f *Fake) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/instances", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, f.Instances())
	})
	mux.HandleFunc("GET /admin/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		in, ok := f.Instance(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such instance"})
			return
		}
		writeJSON(w, http.StatusOK, in)
	})
	mux.HandleFunc("POST /admin/instances/{id}/terminate", func(w http.ResponseWriter, r *http.Request) {
		immediate, _ := strconv.ParseBool(r.URL.Query().Get("immediate"))
		if err := f.Terminate(r.PathValue("id"), immediate); err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		in, _ := f.Instance(r.PathValue("id"))
		writeJSON(w, http.StatusOK, in)
	})
	mux.HandleFunc("GET /admin/security-groups", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, f.SecurityGroups())
	})
	mux.HandleFunc("GET /admin/key-pairs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, f.KeyPairs())
	})
	mux.HandleFunc("GET /admin/subnets", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, f.Subnets())
	})
	mux.HandleFunc("GET /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, f.Faults())
	})
	mux.HandleFunc("PUT /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		var faults Faults
		if !readJSON(w, r, &faults) {
			return
		}
		f.SetFaults(faults)
		writeJSON(w, http.StatusOK, f.Faults())
	})
	mux.HandleFunc("POST /admin/release", func(w http.ResponseWriter, r *http.Request) {
		f.Release()
		writeJSON(w, http.StatusOK, map[string]bool{"released": true})
	})
	mux.HandleFunc("POST /admin/public-ips", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			IPs     []string `json:"ips"`
			Default *string  `json:"default,omitempty"`
		}
		if !readJSON(w, r, &body) {
			return
		}
		f.QueuePublicIPs(body.IPs...)
		if body.Default != nil {
			f.SetDefaultPublicIP(*body.Default)
		}
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("PUT /admin/polls", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Pending      int `json:"pending"`
			ShuttingDown int `json:"shutting_down"`
		}
		if !readJSON(w, r, &body) {
			return
		}
		f.SetPolls(body.Pending, body.ShuttingDown)
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("PUT /admin/offerings/{region}", func(w http.ResponseWriter, r *http.Request) {
		var body map[string][]string
		if !readJSON(w, r, &body) {
			return
		}
		f.SetOfferings(r.PathValue("region"), body)
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("PUT /admin/spot-price-history", func(w http.ResponseWriter, r *http.Request) {
		var body []SpotPrice
		if !readJSON(w, r, &body) {
			return
		}
		f.SetSpotPriceHistory(body)
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("GET /admin/calls", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if minStr := q.Get("min"); minStr != "" {
			n, err := strconv.Atoi(minStr)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "min must be an integer"})
				return
			}
			timeout := 30 * time.Second
			if t := q.Get("timeout"); t != "" {
				if timeout, err = time.ParseDuration(t); err != nil {
					writeJSON(w, http.StatusBadRequest, map[string]string{"error": "timeout must be a Go duration"})
					return
				}
			}
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			if err := f.WaitForCalls(ctx, q.Get("action"), n); err != nil {
				status := http.StatusRequestTimeout
				if !errors.Is(err, context.DeadlineExceeded) {
					status = http.StatusServiceUnavailable
				}
				writeJSON(w, status, map[string]string{"error": err.Error()})
				return
			}
		}
		calls := f.Calls()
		if a := q.Get("action"); a != "" {
			kept := calls[:0]
			for _, c := range calls {
				if c.Action == a {
					kept = append(kept, c)
				}
			}
			calls = kept
		}
		writeJSON(w, http.StatusOK, calls)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decoding JSON body: " + err.Error()})
		return false
	}
	return true
}
