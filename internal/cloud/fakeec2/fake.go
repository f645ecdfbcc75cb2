package fakeec2

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// Config configures a Fake. Zero values are usable except for the credentials.
type Config struct {
	// AccessKeyID and SecretAccessKey are the only credentials the fake
	// accepts; every request must be signed with them (SigV4).
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken, when set, must be sent (and signed) as X-Amz-Security-Token.
	SessionToken string
	// Roles are the role ARNs STS AssumeRole (served at the same URL, for
	// requests signed for service sts) lets the credentials assume; nil allows
	// any role ARN. Calls signed with the temporary credentials it issues are
	// accepted and logged with the role (Call.Role).
	Roles []string
	// Zones maps each region the fake serves to its availability zones.
	// Default: DefaultZones().
	Zones map[string][]string
	// Images are the AMIs DescribeImages knows; default DefaultImages().
	Images []Image
	// Offerings maps region -> instance type -> the zones where
	// DescribeInstanceTypeOfferings says the type is offered. A region left
	// out answers with DefaultOfferings (see SetOfferings).
	Offerings map[string]map[string][]string
	// SpotPriceHistory is what DescribeSpotPriceHistory answers from; empty
	// by default (no spot price known).
	SpotPriceHistory []SpotPrice
	// PendingPolls is how many DescribeInstances answers show a new instance as
	// pending before it is running (0: running at the first poll).
	PendingPolls int
	// ShuttingDownPolls is how many DescribeInstances answers show a
	// terminating instance as shutting-down before it is terminated.
	ShuttingDownPolls int
	// OnCall, when set, is called with every handled API call (after its
	// effect, e.g. the instance RunInstances created, and before the answer
	// is sent or held), outside the fake's lock.
	OnCall func(Call)
	// Now is the fake's clock (launch times, call log); default time.Now.
	Now func() time.Time
}

// DefaultZones returns the regions and zones a Fake serves by default.
func DefaultZones() map[string][]string {
	return map[string][]string{
		"us-east-1": {"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"},
		"us-west-2": {"us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"},
	}
}

// DefaultImageName is the name of the newest Deep Learning Base GPU AMI the
// fake knows by default (owner amazon, every region).
const DefaultImageName = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20250815"

// DefaultImageID is the id of the image named DefaultImageName.
const DefaultImageID = "ami-0d1b5e0000000002a"

// DefaultImages returns the AMIs a Fake knows by default: two Deep Learning
// Base GPU AMIs from amazon (an older one and DefaultImageID), an arm64
// variant, and a look-alike from another owner that must not be picked.
func DefaultImages() []Image {
	return []Image{
		{ID: "ami-0d1b5e00000000001", Name: "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20250301", OwnerAlias: "amazon", OwnerID: "898082745236", CreationDate: "2025-03-01T10:00:00.000Z", Architecture: "x86_64", RootDeviceName: "/dev/sda1"},
		{ID: DefaultImageID, Name: DefaultImageName, OwnerAlias: "amazon", OwnerID: "898082745236", CreationDate: "2025-08-15T10:00:00.000Z", Architecture: "x86_64", RootDeviceName: "/dev/sda1"},
		{ID: "ami-0d1b5e00000000a64", Name: "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20250901", OwnerAlias: "amazon", OwnerID: "898082745236", CreationDate: "2025-09-01T10:00:00.000Z", Architecture: "arm64", RootDeviceName: "/dev/sda1"},
		{ID: "ami-0badc0ffee0000001", Name: "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20991231", OwnerID: "111122223333", CreationDate: "2099-12-31T10:00:00.000Z", Architecture: "x86_64", RootDeviceName: "/dev/sda1"},
		{ID: "ami-0ubuntu0000000001", Name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250801", OwnerID: "099720109477", CreationDate: "2025-08-01T10:00:00.000Z", Architecture: "x86_64", RootDeviceName: "/dev/sda1"},
	}
}

// Image is one AMI. An empty Region means every region.
type Image struct {
	ID             string `json:"id"`
	Region         string `json:"region,omitempty"`
	Name           string `json:"name"`
	OwnerAlias     string `json:"owner_alias,omitempty"`
	OwnerID        string `json:"owner_id"`
	CreationDate   string `json:"creation_date"`
	Architecture   string `json:"architecture"`
	RootDeviceName string `json:"root_device_name"`
}

// Instance is a snapshot of one fake instance and of what RunInstances asked.
type Instance struct {
	ID                string            `json:"id"`
	Region            string            `json:"region"`
	Zone              string            `json:"zone"`
	InstanceType      string            `json:"instance_type"`
	ImageID           string            `json:"image_id"`
	State             string            `json:"state"`
	StateReason       string            `json:"state_reason,omitempty"`
	ClientToken       string            `json:"client_token,omitempty"`
	LaunchTime        time.Time         `json:"launch_time"`
	Spot              bool              `json:"spot"`
	SpotMaxPrice      string            `json:"spot_max_price,omitempty"`
	SpotType          string            `json:"spot_type,omitempty"`
	SpotInterruption  string            `json:"spot_interruption,omitempty"`
	HTTPTokens        string            `json:"http_tokens"`
	KeyName           string            `json:"key_name,omitempty"`
	SecurityGroupIDs  []string          `json:"security_group_ids"`
	SubnetID          string            `json:"subnet_id"`
	VpcID             string            `json:"vpc_id"`
	RootDeviceName    string            `json:"root_device_name"`
	RootVolumeID      string            `json:"root_volume_id"`
	RootVolumeSizeGB  int               `json:"root_volume_size_gb,omitempty"`
	RootVolumeType    string            `json:"root_volume_type,omitempty"`
	UserData          string            `json:"user_data,omitempty"` // decoded
	PublicIP          string            `json:"public_ip,omitempty"`
	PrivateIP         string            `json:"private_ip"`
	Tags              map[string]string `json:"tags"`
	VolumeTags        map[string]string `json:"volume_tags"`
	NetworkIfaceTags  map[string]string `json:"network_interface_tags,omitempty"`
	SpotRequestTags   map[string]string `json:"spot_request_tags,omitempty"`
	RunInstancesCalls int               `json:"run_instances_calls"` // calls that returned this instance
}

// SecurityGroup is a snapshot of one fake security group.
type SecurityGroup struct {
	ID          string            `json:"id"`
	Region      string            `json:"region"`
	VpcID       string            `json:"vpc_id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Ingress     []Rule            `json:"ingress"`
	Tags        map[string]string `json:"tags"`
}

// Rule is one ingress rule: a protocol and port range from one CIDR.
type Rule struct {
	Protocol string `json:"protocol"`
	FromPort int    `json:"from_port"`
	ToPort   int    `json:"to_port"`
	CIDR     string `json:"cidr"`
}

// KeyPair is a snapshot of one fake key pair.
type KeyPair struct {
	ID          string            `json:"id"`
	Region      string            `json:"region"`
	Name        string            `json:"name"`
	Fingerprint string            `json:"fingerprint"`
	PublicKey   string            `json:"public_key"`
	Tags        map[string]string `json:"tags"`
}

// Subnet is one subnet of the fake's default VPC (one per zone).
type Subnet struct {
	ID                  string `json:"id"`
	Region              string `json:"region"`
	Zone                string `json:"zone"`
	VpcID               string `json:"vpc_id"`
	CIDR                string `json:"cidr"`
	MapPublicIPOnLaunch bool   `json:"map_public_ip_on_launch"`
}

// Call is one API request the fake answered (or is holding).
type Call struct {
	Seq       int       `json:"seq"`
	Action    string    `json:"action"`
	Region    string    `json:"region"`
	Time      time.Time `json:"time"`
	Code      string    `json:"code,omitempty"` // error code, empty on success
	RequestID string    `json:"request_id"`
	// InstanceID is the instance RunInstances created or returned.
	InstanceID string `json:"instance_id,omitempty"`
	// Role is the assumed role whose temporary credentials signed the call.
	Role string `json:"role,omitempty"`
	// Held is true while the response is withheld (Faults.HoldRunInstances).
	Held bool `json:"held,omitempty"`
}

// Faults are the failures the fake injects. Counts go down as they are used.
type Faults struct {
	// Throttle fails the next Throttle calls (of ThrottleAction, or any
	// action when empty) with RequestLimitExceeded, HTTP 503.
	Throttle       int    `json:"throttle,omitempty"`
	ThrottleAction string `json:"throttle_action,omitempty"`
	// ServerErrors fails the next ServerErrors calls (of ServerErrorAction, or
	// any action) with InternalError, HTTP 500.
	ServerErrors      int    `json:"server_errors,omitempty"`
	ServerErrorAction string `json:"server_error_action,omitempty"`
	// Capacity rejects matching RunInstances calls.
	Capacity []CapacityFault `json:"capacity,omitempty"`
	// NotFoundPolls makes every instance created while it is set answer
	// InvalidInstanceID.NotFound to that many DescribeInstances calls that
	// name it, and be left out of filtered listings until then (EC2's
	// eventual consistency right after RunInstances).
	NotFoundPolls int `json:"not_found_polls,omitempty"`
	// GroupInUse fails the next GroupInUse DeleteSecurityGroup calls with
	// DependencyViolation even when no live instance uses the group, as EC2
	// does for a while after termination (network interfaces detach late).
	GroupInUse int `json:"group_in_use,omitempty"`
	// HoldRunInstances withholds RunInstances responses after the instance
	// was created, until Release is called or the client goes away: what a
	// client killed right after sending RunInstances experiences.
	HoldRunInstances bool `json:"hold_run_instances,omitempty"`
}

// CapacityFault rejects RunInstances for a zone, instance type and market.
type CapacityFault struct {
	Zone         string `json:"zone,omitempty"`          // empty: any zone
	InstanceType string `json:"instance_type,omitempty"` // empty: any type
	Market       string `json:"market,omitempty"`        // "spot", "on-demand" or empty for both
	// Code is the EC2 error code; default InsufficientInstanceCapacity.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Count is how many calls it rejects; 0 means every call.
	Count int `json:"count,omitempty"`
}

// Fake is an in-memory EC2 endpoint. It is an http.Handler; Start serves it
// on a loopback port. All methods are safe for concurrent use.
type Fake struct {
	cfg Config
	mux *http.ServeMux

	mu        sync.Mutex
	seq       int
	instances []*instance // creation order
	tokens    map[string]tokenEntry
	groups    []*securityGroup
	keys      []*keyPair
	subnets   []Subnet
	vpcs      map[string]string      // region -> default VPC id
	issued    map[string]issuedCreds // temporary access key id -> credentials
	faults    Faults
	publicIPs []string
	defaultIP string // public IP when the queue is empty; "" picks from 203.0.113.0/24
	calls     []Call
	offerings map[string]map[string][]string // region -> type -> zones; see Config.Offerings
	spotHist  []SpotPrice
	changed   chan struct{} // closed and replaced on every new call
	release   chan struct{} // closed by Release
}

type tokenEntry struct {
	paramsHash string
	instanceID string
	reservID   string
}

type instance struct {
	Instance
	reservationID string
	pollsLeft     int
	notFoundLeft  int
	publicOnStart bool // stopped with a public IP: gets a new one on start
}

type securityGroup struct{ SecurityGroup }

type keyPair struct {
	KeyPair
	created time.Time
}

// New returns a Fake with cfg; it does not listen anywhere (see Start).
func New(cfg Config) *Fake {
	if cfg.Zones == nil {
		cfg.Zones = DefaultZones()
	}
	if cfg.Images == nil {
		cfg.Images = DefaultImages()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := &Fake{
		cfg:     cfg,
		tokens:  map[string]tokenEntry{},
		vpcs:    map[string]string{},
		issued:  map[string]issuedCreds{},
		changed: make(chan struct{}),
		release: make(chan struct{}),
	}
	f.offerings = cloneOfferings(cfg.Offerings)
	f.spotHist = slices.Clone(cfg.SpotPriceHistory)
	regions := make([]string, 0, len(cfg.Zones))
	for r := range cfg.Zones {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for ri, r := range regions {
		vpc := "vpc-0" + shortHash("vpc/"+r, 16)
		f.vpcs[r] = vpc
		f.groups = append(f.groups, &securityGroup{SecurityGroup{
			ID: "sg-0" + shortHash("sg-default/"+r, 16), Region: r, VpcID: vpc, Name: "default",
			Description: "default VPC security group", Tags: map[string]string{},
		}})
		for zi, z := range cfg.Zones[r] {
			f.subnets = append(f.subnets, Subnet{
				ID: "subnet-0" + shortHash("subnet/"+z, 16), Region: r, Zone: z, VpcID: vpc,
				CIDR: fmt.Sprintf("172.%d.%d.0/20", 31-ri, zi*16), MapPublicIPOnLaunch: true,
			})
		}
	}
	f.mux = http.NewServeMux()
	f.mux.HandleFunc("POST /{$}", f.serveAPI)
	f.registerAdmin(f.mux)
	return f
}

// ServeHTTP serves the EC2 API at / and the admin API under /admin/.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// Server is a Fake listening on a loopback port.
type Server struct {
	*Fake
	// URL is the endpoint to give the SDK, e.g. http://127.0.0.1:41234.
	URL string
	srv *http.Server
	ln  net.Listener

	connMu sync.Mutex
	fresh  map[net.Conn]bool // connections that have not sent a request yet
}

// Start serves a new Fake on 127.0.0.1 at a free port (addr "" ) or at addr,
// which must be a loopback address.
func Start(cfg Config, addr string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parsing listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("listen address %q is not a loopback IP address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	f := New(cfg)
	s := &Server{Fake: f, URL: "http://" + ln.Addr().String(), ln: ln, fresh: map[net.Conn]bool{}}
	s.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second, ConnState: s.trackConn}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// trackConn remembers connections a client opened but has not used yet
// (an HTTP client racing two requests often dials a spare one).
func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if state == http.StateNew {
		s.fresh[c] = true
	} else {
		delete(s.fresh, c)
	}
}

// Close stops the server, releasing any held RunInstances responses. Unused
// connections are closed at once (Shutdown alone waits 5s for them).
func (s *Server) Close() error {
	s.Release()
	s.connMu.Lock()
	for c := range s.fresh {
		_ = c.Close()
	}
	s.connMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

// Instances returns every instance in creation order, terminated ones included.
func (f *Fake) Instances() []Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Instance, 0, len(f.instances))
	for _, in := range f.instances {
		out = append(out, in.snapshot())
	}
	return out
}

// Instance returns one instance by id.
func (f *Fake) Instance(id string) (Instance, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.findInstance(id)
	if in == nil {
		return Instance{}, false
	}
	return in.snapshot(), true
}

// LiveInstances returns the instances that are not shutting-down or terminated.
func (f *Fake) LiveInstances() []Instance {
	var out []Instance
	for _, in := range f.Instances() {
		if in.State == "pending" || in.State == "running" || in.State == "stopping" || in.State == "stopped" {
			out = append(out, in)
		}
	}
	return out
}

// SecurityGroups returns every security group, the default ones included.
func (f *Fake) SecurityGroups() []SecurityGroup {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]SecurityGroup, 0, len(f.groups))
	for _, g := range f.groups {
		c := g.SecurityGroup
		c.Ingress = slices.Clone(c.Ingress)
		c.Tags = cloneMap(c.Tags)
		out = append(out, c)
	}
	return out
}

// KeyPairs returns every key pair.
func (f *Fake) KeyPairs() []KeyPair {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]KeyPair, 0, len(f.keys))
	for _, k := range f.keys {
		c := k.KeyPair
		c.Tags = cloneMap(c.Tags)
		out = append(out, c)
	}
	return out
}

// Subnets returns the default subnets, one per zone.
func (f *Fake) Subnets() []Subnet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subnets)
}

// Calls returns the log of API calls, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// CallCount returns how many calls of action were answered or are held
// (every action when action is empty).
func (f *Fake) CallCount(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.countLocked(action)
}

func (f *Fake) countLocked(action string) int {
	n := 0
	for _, c := range f.calls {
		if action == "" || c.Action == action {
			n++
		}
	}
	return n
}

// WaitForCalls blocks until at least n calls of action were handled (for
// RunInstances: the instance exists, even if the response is held), or ctx ends.
func (f *Fake) WaitForCalls(ctx context.Context, action string, n int) error {
	for {
		f.mu.Lock()
		got := f.countLocked(action)
		ch := f.changed
		f.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d %s calls (got %d): %w", n, action, got, ctx.Err())
		}
	}
}

// SetFaults replaces the injected faults.
func (f *Fake) SetFaults(faults Faults) {
	f.mu.Lock()
	defer f.mu.Unlock()
	faults.Capacity = slices.Clone(faults.Capacity)
	f.faults = faults
}

// Faults returns the faults still pending (counts decrease as they fire).
func (f *Fake) Faults() Faults {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.faults
	c.Capacity = slices.Clone(c.Capacity)
	return c
}

// Release lets every held RunInstances response go (and stops holding new
// ones: HoldRunInstances is cleared).
func (f *Fake) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.HoldRunInstances = false
	close(f.release)
	f.release = make(chan struct{})
}

// SetPolls changes how many DescribeInstances polls the pending and
// shutting-down states last for instances entering them from now on.
func (f *Fake) SetPolls(pending, shuttingDown int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg.PendingPolls, f.cfg.ShuttingDownPolls = pending, shuttingDown
}

// QueuePublicIPs sets the public IPs of the next instances that get one, in
// order; after that the fake picks addresses from 203.0.113.0/24.
func (f *Fake) QueuePublicIPs(ips ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publicIPs = append(f.publicIPs, ips...)
}

// SetDefaultPublicIP sets the public IP of every instance that gets one once
// the queue (QueuePublicIPs) is empty; "" restores addresses from 203.0.113.0/24.
func (f *Fake) SetDefaultPublicIP(ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.defaultIP = ip
}

// Terminate ends an instance out of band, as a spot reclaim does: it goes to
// shutting-down (then terminated after ShuttingDownPolls polls), or straight
// to terminated when immediate is true.
func (f *Fake) Terminate(id string, immediate bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.findInstance(id)
	if in == nil {
		return fmt.Errorf("instance %s: %w", id, ErrUnknown)
	}
	reason := "Client.UserInitiatedShutdown: User initiated shutdown"
	if in.Spot {
		reason = "Server.SpotInstanceTermination: Spot instance termination"
	}
	f.terminateLocked(in, reason)
	if immediate {
		in.State, in.pollsLeft = "terminated", 0
	}
	return nil
}

// Stop stops a running instance out of band, as its owner does in the
// console: it is stopped at once and loses its public IP address.
func (f *Fake) Stop(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.findInstance(id)
	if in == nil {
		return fmt.Errorf("instance %s: %w", id, ErrUnknown)
	}
	if in.State != "running" {
		return fmt.Errorf("instance %s is %s, not running", id, in.State)
	}
	in.publicOnStart = in.PublicIP != ""
	in.State, in.StateReason, in.PublicIP = "stopped", "Client.UserInitiatedShutdown: User initiated shutdown", ""
	return nil
}

// Expire drops a terminated instance from every answer, as EC2 does about an
// hour after termination.
func (f *Fake) Expire(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.findInstance(id)
	if in == nil {
		return fmt.Errorf("instance %s: %w", id, ErrUnknown)
	}
	if in.State != "terminated" {
		return fmt.Errorf("instance %s is %s, not terminated", id, in.State)
	}
	f.instances = slices.DeleteFunc(f.instances, func(x *instance) bool { return x == in })
	return nil
}

// ErrUnknown is returned by hooks given an id the fake does not know.
var ErrUnknown = errors.New("unknown to the fake")

func (f *Fake) terminateLocked(in *instance, reason string) {
	switch in.State {
	case "shutting-down", "terminated":
		return
	}
	in.State, in.StateReason, in.pollsLeft = "shutting-down", reason, f.cfg.ShuttingDownPolls
}

func (f *Fake) findInstance(id string) *instance {
	for _, in := range f.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func (in *instance) snapshot() Instance {
	c := in.Instance
	c.SecurityGroupIDs = slices.Clone(c.SecurityGroupIDs)
	c.Tags = cloneMap(c.Tags)
	c.VolumeTags = cloneMap(c.VolumeTags)
	c.NetworkIfaceTags = cloneMap(c.NetworkIfaceTags)
	c.SpotRequestTags = cloneMap(c.SpotRequestTags)
	return c
}

// poll advances a transitional state by one DescribeInstances poll.
func (in *instance) poll() {
	switch in.State {
	case "pending":
		if in.pollsLeft > 0 {
			in.pollsLeft--
			return
		}
		in.State = "running"
	case "shutting-down":
		if in.pollsLeft > 0 {
			in.pollsLeft--
			return
		}
		in.State = "terminated"
	}
}

func (f *Fake) nextID(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-0%016x", prefix, 0xfa4e000000+f.seq)
}

func shortHash(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:n]
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// readBody reads a request body of at most 1 MiB.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<20 {
		return nil, errors.New("request body larger than 1 MiB")
	}
	return b, nil
}
