package fakeecs

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Instance is a snapshot of one fake instance.
type Instance struct {
	ID                      string            `json:"id"`
	Region                  string            `json:"region"`
	Zone                    string            `json:"zone"`
	InstanceType            string            `json:"instance_type"`
	Status                  string            `json:"status"` // Pending, Starting, Running, Stopped, Stopping, Deleted
	Name                    string            `json:"name"`
	ImageID                 string            `json:"image_id"`
	VpcID                   string            `json:"vpc_id"`
	VSwitchID               string            `json:"vswitch_id"`
	SecurityGroupIDs        []string          `json:"security_group_ids"`
	KeyPairName             string            `json:"key_pair_name,omitempty"`
	PublicIP                string            `json:"public_ip,omitempty"`
	PrivateIP               string            `json:"private_ip"`
	SpotStrategy            string            `json:"spot_strategy"`
	SpotPriceLimit          float64           `json:"spot_price_limit,omitempty"`
	InternetMaxBandwidthOut int               `json:"internet_max_bandwidth_out"`
	SystemDiskSize          int               `json:"system_disk_size,omitempty"`
	SystemDiskCategory      string            `json:"system_disk_category,omitempty"`
	UserData                string            `json:"user_data,omitempty"` // decoded
	ClientToken             string            `json:"client_token,omitempty"`
	Tags                    map[string]string `json:"tags"`
	CreationTime            time.Time         `json:"creation_time"`
	// Reclaimed marks a spot instance being recycled (lock reason Recycling).
	Reclaimed bool `json:"reclaimed,omitempty"`
	// Released instances are gone: DescribeInstances no longer lists them.
	Released bool `json:"released,omitempty"`
}

// SecurityGroup is a snapshot of one fake security group.
type SecurityGroup struct {
	ID     string            `json:"id"`
	Region string            `json:"region"`
	VpcID  string            `json:"vpc_id"`
	Name   string            `json:"name"`
	Tags   map[string]string `json:"tags"`
	Rules  []Rule            `json:"rules"`
}

// Rule is one ingress rule of a security group.
type Rule struct {
	Protocol   string `json:"protocol"`   // tcp, udp, icmp, all
	PortRange  string `json:"port_range"` // "22/22"
	SourceCIDR string `json:"source_cidr"`
	Policy     string `json:"policy"` // accept, drop
}

// KeyPair is a snapshot of one fake key pair.
type KeyPair struct {
	Region      string            `json:"region"`
	Name        string            `json:"name"`
	Fingerprint string            `json:"fingerprint"`
	PublicKey   string            `json:"public_key"`
	Tags        map[string]string `json:"tags"`
}

// VSwitch is one fake vSwitch.
type VSwitch struct {
	ID        string `json:"id"`
	Region    string `json:"region"`
	Zone      string `json:"zone"`
	VpcID     string `json:"vpc_id"`
	CIDR      string `json:"cidr"`
	IsDefault bool   `json:"is_default"`
}

type image struct {
	ID, Name, OSName, Platform, Arch string
	Created                          time.Time
}

type stockKey struct{ region, zone, typ string }

type tokenRecord struct {
	hash string
	ids  []string
}

type instance struct {
	Instance
	steps  int // DescribeInstances seen in the current state
	hidden int // DescribeInstances still to miss it
}

// world is the fake cloud's state; every method locks mu.
type world struct {
	mu    sync.Mutex
	opts  Options
	zones map[string][]string

	vpcs      map[string]string // region -> default VPC id
	vswitches map[string]*VSwitch
	images    []image

	instances map[string]*instance
	order     []string
	tokens    map[string]tokenRecord // region|token
	sgs       map[string]*SecurityGroup
	sgTokens  map[string]string   // region|token -> sg id
	keyPairs  map[string]*KeyPair // region|name

	stock     map[stockKey]bool
	runErrors map[stockKey]string
	injected  map[string][]string // action -> error codes to return next
	hideNew   int
	nextIPs   []string
	offerings map[string]map[string][]string // region -> type -> zones; see SetOfferings
	spotHist  []SpotPrice
	currency  string

	nonces                           map[string]bool
	reqN, idN, ipN, privN, sgN, vswN int
}

func newWorld(opts Options) *world {
	w := &world{
		opts:      opts,
		zones:     opts.Zones,
		vpcs:      map[string]string{},
		vswitches: map[string]*VSwitch{},
		instances: map[string]*instance{},
		tokens:    map[string]tokenRecord{},
		sgs:       map[string]*SecurityGroup{},
		sgTokens:  map[string]string{},
		keyPairs:  map[string]*KeyPair{},
		stock:     map[stockKey]bool{},
		runErrors: map[stockKey]string{},
		injected:  map[string][]string{},
		nonces:    map[string]bool{},
		offerings: map[string]map[string][]string{},
		spotHist:  slices.Clone(opts.SpotPriceHistory),
		currency:  opts.Currency,
	}
	if w.currency == "" {
		w.currency = DefaultCurrency
	}
	for r, m := range opts.Offerings {
		c := map[string][]string{}
		for t, zs := range m {
			c[t] = slices.Clone(zs)
		}
		w.offerings[r] = c
	}
	regions := make([]string, 0, len(w.zones))
	for r := range w.zones {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for ri, r := range regions {
		w.vpcs[r] = fmt.Sprintf("vpc-%s%012d", regionCode(r), ri+1)
		for zi, z := range w.zones[r] {
			w.vswN++
			id := fmt.Sprintf("vsw-%s%012d", regionCode(r), w.vswN)
			w.vswitches[id] = &VSwitch{ID: id, Region: r, Zone: z, VpcID: w.vpcs[r], CIDR: fmt.Sprintf("172.16.%d.0/24", zi), IsDefault: true}
		}
	}
	day := func(s string) time.Time { t, _ := time.Parse("20060102", s); return t.Add(6 * time.Hour) }
	w.images = []image{
		{"ubuntu_24_04_x64_20G_alibase_20250113.vhd", "ubuntu_24_04_x64_20G_alibase_20250113.vhd", "Ubuntu  24.04 64位", "Ubuntu", "x86_64", day("20250113")},
		{"ubuntu_24_04_x64_20G_alibase_20241115.vhd", "ubuntu_24_04_x64_20G_alibase_20241115.vhd", "Ubuntu  24.04 64位", "Ubuntu", "x86_64", day("20241115")},
		{"ubuntu_22_04_x64_20G_alibase_20250117.vhd", "ubuntu_22_04_x64_20G_alibase_20250117.vhd", "Ubuntu  22.04 64位", "Ubuntu", "x86_64", day("20250117")},
		{"ubuntu_24_04_arm64_20G_alibase_20250120.vhd", "ubuntu_24_04_arm64_20G_alibase_20250120.vhd", "Ubuntu  24.04 64位 ARM版", "Ubuntu", "arm64", day("20250120")},
		{"aliyun_3_x64_20G_alibase_20250117.vhd", "aliyun_3_x64_20G_alibase_20250117.vhd", "Alibaba Cloud Linux  3.2104 LTS 64位", "Aliyun", "x86_64", day("20250117")},
		{"centos_7_9_x64_20G_alibase_20240628.vhd", "centos_7_9_x64_20G_alibase_20240628.vhd", "CentOS  7.9 64位", "CentOS", "x86_64", day("20240628")},
	}
	return w
}

// regionCode is the two-letter prefix ECS puts in resource ids per region.
func regionCode(region string) string {
	switch region {
	case "cn-hangzhou":
		return "bp"
	case "cn-shanghai":
		return "uf"
	case "cn-beijing":
		return "2z"
	case "cn-shenzhen":
		return "wz"
	case "ap-southeast-1":
		return "t4"
	}
	return "zz"
}

func (w *world) newRequestID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reqN++
	return fmt.Sprintf("FA4E0C5B-%04X-4E65-8A11-%012X", w.reqN>>16&0xffff, w.reqN)
}

func (w *world) useNonce(n string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nonces[n] {
		return false
	}
	w.nonces[n] = true
	return true
}

func (w *world) takeInjected(action string) *apiError {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, key := range []string{action, ""} {
		if q := w.injected[key]; len(q) > 0 {
			code := q[0]
			w.injected[key] = q[1:]
			msg := "fakeecs injected " + code
			switch {
			case strings.HasPrefix(code, "Throttling"):
				msg = "Request was denied due to user flow control."
			case code == "ServiceUnavailable":
				msg = "The request has failed due to a temporary failure of the server."
			case code == "InternalError":
				msg = "The request processing has failed due to some unknown error, exception or failure."
			}
			return &apiError{Status: statusForCode(code), Code: code, Message: msg}
		}
	}
	return nil
}

func (w *world) checkRegion(p map[string]string) (string, *apiError) {
	r := p["RegionId"]
	if r == "" {
		return "", errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"RegionId\" that is mandatory for processing this request is not supplied.")
	}
	if _, ok := w.zones[r]; !ok {
		return "", errorf(http.StatusNotFound, "InvalidRegionId.NotFound", "The specified RegionId %q does not exist.", r)
	}
	return r, nil
}

func (w *world) regionOfZone(zone string) string {
	for r, zs := range w.zones {
		for _, z := range zs {
			if z == zone {
				return r
			}
		}
	}
	return ""
}

func (w *world) inStock(region, zone, typ string) bool {
	for _, k := range []stockKey{{region, zone, typ}, {region, zone, ""}, {region, "", typ}, {region, "", ""}, {"", "", typ}} {
		if v, ok := w.stock[k]; ok {
			return v
		}
	}
	return true
}

func (w *world) runError(region, zone, typ string) string {
	if ok, _ := w.offered(region, zone, typ); !ok {
		return "InvalidInstanceType.NotSupported"
	}
	for _, k := range []stockKey{{region, zone, typ}, {region, zone, ""}, {region, "", typ}} {
		if c, ok := w.runErrors[k]; ok {
			return c
		}
	}
	return ""
}
