package fakeecs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Instances returns the instances that are not released, in creation order.
func (s *Server) Instances() []Instance {
	return s.instances(false)
}

// AllInstances returns every instance ever created, released ones included.
func (s *Server) AllInstances() []Instance {
	return s.instances(true)
}

func (s *Server) instances(all bool) []Instance {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Instance
	for _, id := range w.order {
		in := w.instances[id]
		if in.Released && !all {
			continue
		}
		out = append(out, copyInstance(in.Instance))
	}
	return out
}

func copyInstance(in Instance) Instance {
	in.SecurityGroupIDs = append([]string(nil), in.SecurityGroupIDs...)
	tags := make(map[string]string, len(in.Tags))
	for k, v := range in.Tags {
		tags[k] = v
	}
	in.Tags = tags
	return in
}

// Instance returns one instance by id, released ones included.
func (s *Server) Instance(id string) (Instance, bool) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	in, ok := w.instances[id]
	if !ok {
		return Instance{}, false
	}
	return copyInstance(in.Instance), true
}

// Release releases an instance out of band (as a user in the console, or an
// expired spot instance would): it disappears at once.
func (s *Server) Release(id string) error {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	in, ok := w.instances[id]
	if !ok || in.Released {
		return fmt.Errorf("fakeecs: release %s: no such instance", id)
	}
	in.Released, in.Status = true, "Deleted"
	return nil
}

// Stop stops a running instance out of band, as its owner does in the
// console (standard stop mode: it keeps its public IP address).
func (s *Server) Stop(id string) error {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	in, ok := w.instances[id]
	if !ok || in.Released {
		return fmt.Errorf("fakeecs: stop %s: no such instance", id)
	}
	if in.Status != "Running" {
		return fmt.Errorf("fakeecs: stop %s: it is %s, not Running", id, in.Status)
	}
	in.Status = "Stopped"
	return nil
}

// Reclaim marks a spot instance as being reclaimed: it stays listed with the
// operation lock Recycling until it is released.
func (s *Server) Reclaim(id string) error {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	in, ok := w.instances[id]
	if !ok || in.Released {
		return fmt.Errorf("fakeecs: reclaim %s: no such instance", id)
	}
	if in.SpotStrategy == "NoSpot" {
		return fmt.Errorf("fakeecs: reclaim %s: not a spot instance", id)
	}
	in.Reclaimed = true
	return nil
}

// SetNextPublicIPs queues the public IPs the next instances created with a
// public bandwidth get (for example 127.0.0.3 for a test that runs sshd).
func (s *Server) SetNextPublicIPs(ips ...string) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextIPs = append([]string(nil), ips...)
}

// SetStock sets whether a region, zone and instance type has stock. Empty zone
// or type match any zone or type of the region; the most specific setting
// wins. Everything has stock by default. Both DescribeAvailableResource and
// RunInstances (OperationDenied.NoStock) honour it.
func (s *Server) SetStock(region, zone, instanceType string, inStock bool) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stock[stockKey{region, zone, instanceType}] = inStock
}

// FailRunInstances makes RunInstances fail with code for a zone and instance
// type ("" type: every type) while DescribeAvailableResource still reports
// stock, e.g. QuotaExceed.ElasticQuota. InvalidInstanceType.NotSupported also
// hides the zone from DescribeAvailableResource for that type. An empty code
// removes the fault.
func (s *Server) FailRunInstances(zone, instanceType, code string) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	k := stockKey{w.regionOfZone(zone), zone, instanceType}
	if code == "" {
		delete(w.runErrors, k)
		return
	}
	w.runErrors[k] = code
}

// InjectErrors makes the next n calls of action ("" means any action) fail
// with code, after authentication: Throttling.User (HTTP 400),
// ServiceUnavailable (503), InternalError (500) or any other code.
func (s *Server) InjectErrors(action, code string, n int) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	for range n {
		w.injected[action] = append(w.injected[action], code)
	}
}

// HideNewInstances makes each instance created from now on invisible to its
// first n DescribeInstances calls (ECS's eventual consistency after create).
func (s *Server) HideNewInstances(n int) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hideNew = n
}

// AddVSwitch adds a non-default vSwitch in the zone's default VPC and returns it.
func (s *Server) AddVSwitch(zone string) (VSwitch, error) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	region := w.regionOfZone(zone)
	if region == "" {
		return VSwitch{}, fmt.Errorf("fakeecs: add vswitch: unknown zone %q", zone)
	}
	w.vswN++
	v := &VSwitch{ID: fmt.Sprintf("vsw-%s%012d", regionCode(region), w.vswN), Region: region, Zone: zone,
		VpcID: w.vpcs[region], CIDR: fmt.Sprintf("172.16.%d.0/24", 100+w.vswN%100)}
	w.vswitches[v.ID] = v
	return *v, nil
}

// VSwitches returns every vSwitch, sorted by id.
func (s *Server) VSwitches() []VSwitch {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]VSwitch, 0, len(w.vswitches))
	for _, v := range w.vswitches {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// AddSecurityGroup creates a security group in the region's default VPC, as
// a user would have done outside Hadron.
func (s *Server) AddSecurityGroup(region string) (SecurityGroup, error) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	vpc, ok := w.vpcs[region]
	if !ok {
		return SecurityGroup{}, fmt.Errorf("fakeecs: add security group: unknown region %q", region)
	}
	w.sgN++
	sg := &SecurityGroup{ID: fmt.Sprintf("sg-%s%018x", regionCode(region), w.sgN), Region: region, VpcID: vpc, Name: "user", Tags: map[string]string{}}
	w.sgs[sg.ID] = sg
	return *sg, nil
}

// SecurityGroups returns every security group, sorted by id.
func (s *Server) SecurityGroups() []SecurityGroup {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]SecurityGroup, 0, len(w.sgs))
	for _, g := range w.sgs {
		c := *g
		c.Rules = append([]Rule(nil), g.Rules...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// KeyPairs returns every key pair, sorted by region and name.
func (s *Server) KeyPairs() []KeyPair {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]KeyPair, 0, len(w.keyPairs))
	for _, k := range w.keyPairs {
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Region != out[j].Region {
			return out[i].Region < out[j].Region
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// serveAdmin is the JSON admin API for tests that drive a separate process:
//
//	GET  /_fake/instances[?all=1]          instances (released ones with all=1)
//	POST /_fake/instances/{id}/release     release out of band
//	POST /_fake/instances/{id}/reclaim     mark a spot instance Recycling
//	POST /_fake/public-ips                 {"ips": ["127.0.0.3"]}
//	POST /_fake/stock                      {"region", "zone", "instance_type", "in_stock"}
//	POST /_fake/run-errors                 {"zone", "instance_type", "code"}
//	POST /_fake/errors                     {"action", "code", "count"}
//	POST /_fake/hide-new-instances         {"count"}
//	POST /_fake/offerings                  {"region", "offerings": {"type": ["zone", ...]}} (null offerings: default)
//	POST /_fake/spot-price-history         {"currency", "history": [SpotPrice, ...]}
//	GET  /_fake/security-groups, /_fake/key-pairs, /_fake/vswitches
//	GET  /_fake/calls[?action=RunInstances]
//	GET  /_fake/wait?action=RunInstances&count=1&timeout=30s
//	     200 once count calls of action arrived, 408 on timeout
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	reply := func(v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		if v == nil {
			v = map[string]bool{"ok": true}
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	decode := func(v any) error {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			return fmt.Errorf("decoding %s body: %w", r.URL.Path, err)
		}
		return nil
	}
	path := r.URL.Path
	switch {
	case r.Method == http.MethodGet && path == "/_fake/instances":
		if r.URL.Query().Get("all") != "" {
			reply(nonNil(s.AllInstances()), nil)
		} else {
			reply(nonNil(s.Instances()), nil)
		}
	case r.Method == http.MethodPost && len(path) > len("/_fake/instances/") && hasSuffix(path, "/release"):
		reply(nil, s.Release(path[len("/_fake/instances/"):len(path)-len("/release")]))
	case r.Method == http.MethodPost && len(path) > len("/_fake/instances/") && hasSuffix(path, "/reclaim"):
		reply(nil, s.Reclaim(path[len("/_fake/instances/"):len(path)-len("/reclaim")]))
	case r.Method == http.MethodPost && path == "/_fake/public-ips":
		var body struct {
			IPs []string `json:"ips"`
		}
		err := decode(&body)
		if err == nil {
			s.SetNextPublicIPs(body.IPs...)
		}
		reply(nil, err)
	case r.Method == http.MethodPost && path == "/_fake/stock":
		var body struct {
			Region       string `json:"region"`
			Zone         string `json:"zone"`
			InstanceType string `json:"instance_type"`
			InStock      bool   `json:"in_stock"`
		}
		err := decode(&body)
		if err == nil {
			s.SetStock(body.Region, body.Zone, body.InstanceType, body.InStock)
		}
		reply(nil, err)
	case r.Method == http.MethodPost && path == "/_fake/run-errors":
		var body struct {
			Zone         string `json:"zone"`
			InstanceType string `json:"instance_type"`
			Code         string `json:"code"`
		}
		err := decode(&body)
		if err == nil {
			s.FailRunInstances(body.Zone, body.InstanceType, body.Code)
		}
		reply(nil, err)
	case r.Method == http.MethodPost && path == "/_fake/offerings":
		var body struct {
			Region    string              `json:"region"`
			Offerings map[string][]string `json:"offerings"`
		}
		err := decode(&body)
		if err == nil {
			s.SetOfferings(body.Region, body.Offerings)
		}
		reply(nil, err)
	case r.Method == http.MethodPost && path == "/_fake/spot-price-history":
		var body struct {
			Currency string      `json:"currency"`
			History  []SpotPrice `json:"history"`
		}
		err := decode(&body)
		if err == nil {
			s.SetSpotPriceHistory(body.Currency, body.History)
		}
		reply(nil, err)
	case r.Method == http.MethodPost && path == "/_fake/errors":
		var body struct {
			Action string `json:"action"`
			Code   string `json:"code"`
			Count  int    `json:"count"`
		}
		err := decode(&body)
		if err == nil {
			s.InjectErrors(body.Action, body.Code, body.Count)
		}
		reply(nil, err)
	case r.Method == http.MethodPost && path == "/_fake/hide-new-instances":
		var body struct {
			Count int `json:"count"`
		}
		err := decode(&body)
		if err == nil {
			s.HideNewInstances(body.Count)
		}
		reply(nil, err)
	case r.Method == http.MethodGet && path == "/_fake/security-groups":
		reply(s.SecurityGroups(), nil)
	case r.Method == http.MethodGet && path == "/_fake/key-pairs":
		reply(s.KeyPairs(), nil)
	case r.Method == http.MethodGet && path == "/_fake/vswitches":
		reply(s.VSwitches(), nil)
	case r.Method == http.MethodGet && path == "/_fake/calls":
		reply(nonNil(s.Calls(r.URL.Query().Get("action"))), nil)
	case r.Method == http.MethodGet && path == "/_fake/wait":
		q := r.URL.Query()
		n, err := strconv.Atoi(q.Get("count"))
		if err != nil {
			n = 1
		}
		timeout, err := time.ParseDuration(q.Get("timeout"))
		if err != nil {
			timeout = 30 * time.Second
		}
		ctx, cancel := contextWithTimeout(r, timeout)
		defer cancel()
		if err := s.WaitForCalls(ctx, q.Get("action"), n); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestTimeout)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		reply(map[string]int{"count": s.CallCount(q.Get("action"))}, nil)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "no admin route " + r.Method + " " + path})
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

func contextWithTimeout(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}

// AddImage adds a system image (x86_64 Linux, available in every region);
// an id starting with "ubuntu" counts as an Ubuntu image.
func (s *Server) AddImage(id string, created time.Time) {
	w := s.world
	w.mu.Lock()
	defer w.mu.Unlock()
	platform := "Linux"
	if strings.HasPrefix(id, "ubuntu") {
		platform = "Ubuntu"
	}
	w.images = append(w.images, image{ID: id, Name: id, OSName: id, Platform: platform, Arch: "x86_64", Created: created})
}
