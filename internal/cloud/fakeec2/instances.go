package fakeec2

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

type xmlInstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func stateOf(name string) xmlInstanceState {
	codes := map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
	return xmlInstanceState{Code: codes[name], Name: name}
}

type xmlGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName,omitempty"`
}

type xmlStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xmlEbs struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlBlockDevice struct {
	DeviceName string `xml:"deviceName"`
	Ebs        xmlEbs `xml:"ebs"`
}

type xmlInstance struct {
	InstanceID     string           `xml:"instanceId"`
	ImageID        string           `xml:"imageId"`
	State          xmlInstanceState `xml:"instanceState"`
	PrivateDNSName string           `xml:"privateDnsName"`
	DNSName        string           `xml:"dnsName"`
	KeyName        string           `xml:"keyName,omitempty"`
	AmiLaunchIndex int              `xml:"amiLaunchIndex"`
	InstanceType   string           `xml:"instanceType"`
	LaunchTime     string           `xml:"launchTime"`
	Placement      struct {
		AvailabilityZone string `xml:"availabilityZone"`
		Tenancy          string `xml:"tenancy"`
	} `xml:"placement"`
	SubnetID            string           `xml:"subnetId,omitempty"`
	VpcID               string           `xml:"vpcId,omitempty"`
	PrivateIPAddress    string           `xml:"privateIpAddress,omitempty"`
	IPAddress           string           `xml:"ipAddress,omitempty"`
	StateReason         *xmlStateReason  `xml:"stateReason,omitempty"`
	Architecture        string           `xml:"architecture"`
	RootDeviceType      string           `xml:"rootDeviceType"`
	RootDeviceName      string           `xml:"rootDeviceName"`
	Groups              []xmlGroup       `xml:"groupSet>item"`
	InstanceLifecycle   string           `xml:"instanceLifecycle,omitempty"`
	SpotInstanceRequest string           `xml:"spotInstanceRequestId,omitempty"`
	BlockDevices        []xmlBlockDevice `xml:"blockDeviceMapping>item"`
	ClientToken         string           `xml:"clientToken,omitempty"`
	Tags                []xmlTag         `xml:"tagSet>item"`
	MetadataOptions     struct {
		State        string `xml:"state"`
		HTTPTokens   string `xml:"httpTokens"`
		HopLimit     int    `xml:"httpPutResponseHopLimit"`
		HTTPEndpoint string `xml:"httpEndpoint"`
	} `xml:"metadataOptions"`
}

func (f *Fake) xmlInstance(in *instance) xmlInstance {
	x := xmlInstance{
		InstanceID: in.ID, ImageID: in.ImageID, State: stateOf(in.State), KeyName: in.KeyName,
		InstanceType: in.InstanceType, LaunchTime: in.LaunchTime.UTC().Format("2006-01-02T15:04:05.000Z"),
		SubnetID: in.SubnetID, VpcID: in.VpcID, PrivateIPAddress: in.PrivateIP,
		PrivateDNSName: "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".ec2.internal",
		Architecture:   "x86_64", RootDeviceType: "ebs", RootDeviceName: in.RootDeviceName,
		ClientToken: in.ClientToken, Tags: xmlTags(in.Tags),
	}
	x.Placement.AvailabilityZone, x.Placement.Tenancy = in.Zone, "default"
	if in.State != "terminated" && in.State != "shutting-down" {
		x.IPAddress = in.PublicIP
	}
	if in.StateReason != "" {
		code, msg, _ := strings.Cut(in.StateReason, ": ")
		x.StateReason = &xmlStateReason{Code: code, Message: msg}
	}
	for _, g := range in.SecurityGroupIDs {
		name := ""
		if sg := f.findGroup(in.Region, g); sg != nil {
			name = sg.Name
		}
		x.Groups = append(x.Groups, xmlGroup{GroupID: g, GroupName: name})
	}
	if in.Spot {
		x.InstanceLifecycle = "spot"
		x.SpotInstanceRequest = "sir-" + in.ID[2:10]
	}
	if in.State != "terminated" {
		x.BlockDevices = []xmlBlockDevice{{DeviceName: in.RootDeviceName,
			Ebs: xmlEbs{VolumeID: in.RootVolumeID, Status: "attached", DeleteOnTermination: true}}}
	}
	x.MetadataOptions.State, x.MetadataOptions.HTTPTokens = "applied", in.HTTPTokens
	x.MetadataOptions.HopLimit, x.MetadataOptions.HTTPEndpoint = 2, "enabled"
	return x
}

type runInstancesResponse struct {
	responseBase
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

const ownerID = "123456789012"

var instanceTypePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)

// runParameters are the RunInstances parameters the fake implements; any
// other one is refused rather than silently ignored.
var runParameters = regexp.MustCompile(`^(Action|Version|ImageId|InstanceType|MinCount|MaxCount|ClientToken|KeyName|SubnetId|UserData|` +
	`SecurityGroupId\.\d+|Placement\.AvailabilityZone|` +
	`NetworkInterface\.\d+\.(DeviceIndex|SubnetId|SecurityGroupId\.\d+|AssociatePublicIpAddress|DeleteOnTermination)|` +
	`MetadataOptions\.(HttpTokens|HttpEndpoint|HttpPutResponseHopLimit|InstanceMetadataTags)|` +
	`InstanceMarketOptions\.(MarketType|SpotOptions\.(MaxPrice|SpotInstanceType|InstanceInterruptionBehavior))|` +
	`BlockDeviceMapping\.\d+\.(DeviceName|Ebs\.(VolumeSize|VolumeType|DeleteOnTermination|Encrypted|Iops|Throughput))|` +
	`TagSpecification\.\d+\.(ResourceType|Tag\.\d+\.(Key|Value)))$`)

// runParams is what RunInstances asked, validated.
type runParams struct {
	imageID, instanceType, zone, subnetID, keyName string
	groups                                         []string
	publicIP                                       *bool
	httpTokens                                     string
	spot                                           bool
	spotMaxPrice, spotType, spotInterruption       string
	rootDevice                                     string
	rootSize                                       int
	rootType                                       string
	userData                                       string
	tags                                           map[string]map[string]string
}

func (f *Fake) runInstances(req *request) (response, *apiError) {
	form := req.form
	for k := range form {
		if !runParameters.MatchString(k) {
			return nil, badRequest("InvalidParameter", "The parameter %s is not supported by this fake EC2 endpoint", k)
		}
	}
	if form.Get("MinCount") != "1" || form.Get("MaxCount") != "1" {
		return nil, badRequest("InvalidParameterValue", "this fake launches exactly one instance per call (MinCount=MaxCount=1)")
	}
	token := form.Get("ClientToken")
	if len(token) > 64 {
		return nil, badRequest("InvalidParameterValue", "ClientToken is longer than 64 characters")
	}
	phash := paramsHash(form)
	if token != "" {
		if e, ok := f.tokens[req.region+"/"+token]; ok {
			if e.paramsHash != phash {
				return nil, badRequest("IdempotentParameterMismatch",
					"Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
			}
			in := f.findInstance(e.instanceID)
			in.RunInstancesCalls++
			return &runInstancesResponse{ReservationID: e.reservID, OwnerID: ownerID,
				Instances: []xmlInstance{f.xmlInstance(in)}}, nil
		}
	}
	p, aerr := f.validateRun(req)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := f.capacityFault(p); aerr != nil {
		return nil, aerr
	}

	in := &instance{Instance: Instance{
		ID: f.nextID("i"), Region: req.region, Zone: p.zone, InstanceType: p.instanceType, ImageID: p.imageID,
		State: "pending", ClientToken: token, LaunchTime: f.cfg.Now().UTC().Truncate(1e6),
		Spot: p.spot, SpotMaxPrice: p.spotMaxPrice, SpotType: p.spotType, SpotInterruption: p.spotInterruption,
		HTTPTokens: p.httpTokens, KeyName: p.keyName, SecurityGroupIDs: p.groups, SubnetID: p.subnetID,
		RootDeviceName: p.rootDevice, RootVolumeSizeGB: p.rootSize, RootVolumeType: p.rootType,
		UserData: p.userData, RunInstancesCalls: 1,
		Tags: p.tags["instance"], VolumeTags: p.tags["volume"], NetworkIfaceTags: p.tags["network-interface"],
		SpotRequestTags: p.tags["spot-instances-request"],
	}, pollsLeft: f.cfg.PendingPolls, notFoundLeft: f.faults.NotFoundPolls}
	in.reservationID = f.nextID("r")
	in.RootVolumeID = f.nextID("vol")
	sn := f.findSubnet(req.region, p.subnetID)
	in.VpcID = sn.VpcID
	in.PrivateIP = privateIP(sn.CIDR, f.seq)
	if (p.publicIP == nil && sn.MapPublicIPOnLaunch) || (p.publicIP != nil && *p.publicIP) {
		in.PublicIP = f.nextPublicIP()
	}
	for _, m := range []*map[string]string{&in.Tags, &in.VolumeTags, &in.NetworkIfaceTags, &in.SpotRequestTags} {
		if *m == nil {
			*m = map[string]string{}
		}
	}
	f.instances = append(f.instances, in)
	if token != "" {
		f.tokens[req.region+"/"+token] = tokenEntry{paramsHash: phash, instanceID: in.ID, reservID: in.reservationID}
	}
	return &runInstancesResponse{ReservationID: in.reservationID, OwnerID: ownerID,
		Instances: []xmlInstance{f.xmlInstance(in)}}, nil
}

func privateIP(cidr string, n int) string {
	base, _, _ := strings.Cut(cidr, "/")
	parts := strings.Split(base, ".")
	return fmt.Sprintf("%s.%s.%s.%d", parts[0], parts[1], parts[2], 4+n%250)
}

// paramsHash identifies a RunInstances request's parameters, ClientToken aside.
func paramsHash(form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		if k != "ClientToken" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + strings.Join(form[k], ",") + "\x00")
	}
	return shortHash(b.String(), 64)
}

func (f *Fake) validateRun(req *request) (runParams, *apiError) {
	form, region := req.form, req.region
	p := runParams{imageID: form.Get("ImageId"), instanceType: form.Get("InstanceType")}
	if p.imageID == "" {
		return p, badRequest("MissingParameter", "The request must contain the parameter ImageId")
	}
	if !strings.HasPrefix(p.imageID, "ami-") {
		return p, badRequest("InvalidAMIID.Malformed", "Invalid id: %q (expecting \"ami-...\")", p.imageID)
	}
	img := f.findImage(region, p.imageID)
	if img == nil {
		return p, badRequest("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", p.imageID)
	}
	p.rootDevice = img.RootDeviceName
	if p.instanceType == "" {
		return p, badRequest("MissingParameter", "The request must contain the parameter InstanceType")
	}
	if !instanceTypePattern.MatchString(p.instanceType) {
		return p, badRequest("InvalidParameterValue", "Invalid value '%s' for InstanceType.", p.instanceType)
	}

	// Network: instance-level or through NetworkInterface.1, not both.
	p.subnetID = form.Get("SubnetId")
	p.groups = list(form, "SecurityGroupId")
	if count(form, "NetworkInterface") > 0 {
		if p.subnetID != "" {
			return p, badRequest("InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request")
		}
		if len(p.groups) > 0 {
			return p, badRequest("InvalidParameterCombination", "Network interfaces and an instance-level security groups may not be specified on the same request")
		}
		if count(form, "NetworkInterface") > 1 || form.Get("NetworkInterface.1.DeviceIndex") != "0" {
			return p, badRequest("InvalidParameterValue", "this fake supports one network interface with DeviceIndex 0")
		}
		p.subnetID = form.Get("NetworkInterface.1.SubnetId")
		p.groups = list(form, "NetworkInterface.1.SecurityGroupId")
		if v := form.Get("NetworkInterface.1.AssociatePublicIpAddress"); v != "" {
			b := v == "true"
			p.publicIP = &b
		}
	}

	zones := f.cfg.Zones[region]
	p.zone = form.Get("Placement.AvailabilityZone")
	if p.zone != "" && !contains(zones, p.zone) {
		return p, badRequest("InvalidParameterValue", "Invalid availability zone: [%s]", p.zone)
	}
	if p.subnetID != "" {
		sn := f.findSubnet(region, p.subnetID)
		if sn == nil {
			return p, badRequest("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", p.subnetID)
		}
		if p.zone != "" && p.zone != sn.Zone {
			return p, badRequest("InvalidParameterValue", "Subnet %s is in %s, not in the requested availability zone %s", sn.ID, sn.Zone, p.zone)
		}
		p.zone = sn.Zone
	} else {
		if p.zone == "" {
			// Like EC2, pick a zone that has capacity when none is asked for.
			p.zone = zones[0]
			for _, z := range zones {
				try := p
				try.zone = z
				if !f.hasCapacityFault(try) {
					p.zone = z
					break
				}
			}
		}
		for _, sn := range f.subnets {
			if sn.Region == region && sn.Zone == p.zone {
				p.subnetID = sn.ID
			}
		}
	}
	vpc := f.findSubnet(region, p.subnetID).VpcID
	if len(p.groups) == 0 {
		for _, g := range f.groups {
			if g.Region == region && g.VpcID == vpc && g.Name == "default" {
				p.groups = []string{g.ID}
			}
		}
	}
	for _, g := range p.groups {
		sg := f.findGroup(region, g)
		if sg == nil {
			return p, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist", g)
		}
		if sg.VpcID != vpc {
			return p, badRequest("InvalidParameter", "Security group %s and subnet %s belong to different networks.", g, p.subnetID)
		}
	}
	if p.keyName = form.Get("KeyName"); p.keyName != "" && f.findKey(region, p.keyName) == nil {
		return p, badRequest("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", p.keyName)
	}

	p.httpTokens = form.Get("MetadataOptions.HttpTokens")
	switch p.httpTokens {
	case "":
		p.httpTokens = "optional"
	case "optional", "required":
	default:
		return p, badRequest("InvalidParameterValue", "Value (%s) for parameter HttpTokens is invalid", p.httpTokens)
	}

	switch mt := form.Get("InstanceMarketOptions.MarketType"); mt {
	case "":
	case "spot":
		p.spot = true
		p.spotMaxPrice = form.Get("InstanceMarketOptions.SpotOptions.MaxPrice")
		if p.spotMaxPrice != "" {
			if v, err := strconv.ParseFloat(p.spotMaxPrice, 64); err != nil || v <= 0 {
				return p, badRequest("InvalidParameterValue", "Value (%s) for parameter MaxPrice is invalid", p.spotMaxPrice)
			}
		}
		p.spotType = form.Get("InstanceMarketOptions.SpotOptions.SpotInstanceType")
		if p.spotType == "" {
			p.spotType = "one-time"
		}
		p.spotInterruption = form.Get("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior")
		if p.spotInterruption == "" {
			p.spotInterruption = "terminate"
		}
		if p.spotType == "one-time" && p.spotInterruption != "terminate" {
			return p, badRequest("InvalidParameterCombination", "One-time Spot Instances must use the terminate interruption behavior")
		}
	default:
		return p, badRequest("InvalidParameterValue", "Value (%s) for parameter MarketType is invalid", mt)
	}

	for i := 1; i <= count(form, "BlockDeviceMapping"); i++ {
		bp := "BlockDeviceMapping." + strconv.Itoa(i)
		if form.Get(bp+".DeviceName") != p.rootDevice {
			return p, badRequest("InvalidParameterValue", "this fake only accepts a mapping for the root device %s", p.rootDevice)
		}
		if v := form.Get(bp + ".Ebs.VolumeSize"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 8 || n > 16384 {
				return p, badRequest("InvalidParameterValue", "Volume size %s is invalid (8-16384 GiB for the root volume of this image)", v)
			}
			p.rootSize = n
		}
		if v := form.Get(bp + ".Ebs.VolumeType"); v != "" {
			if !contains([]string{"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"}, v) {
				return p, badRequest("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid", v)
			}
			p.rootType = v
		}
	}

	if ud := form.Get("UserData"); ud != "" {
		b, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return p, badRequest("InvalidParameterValue", "Invalid BASE64 encoding of user data")
		}
		p.userData = string(b)
	}
	tags, aerr := tagSpecs(form)
	if aerr != nil {
		return p, aerr
	}
	for rt := range tags {
		switch rt {
		case "instance", "volume", "network-interface":
		case "spot-instances-request":
			if !p.spot {
				return p, badRequest("InvalidParameterValue", "spot-instances-request tags need InstanceMarketOptions spot")
			}
		default:
			return p, badRequest("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	p.tags = tags
	return p, nil
}

func (f *Fake) hasCapacityFault(p runParams) bool {
	return f.matchCapacity(p) >= 0
}

// matchCapacity returns the index of the first capacity fault matching p, or -1.
func (f *Fake) matchCapacity(p runParams) int {
	market := "on-demand"
	if p.spot {
		market = "spot"
	}
	for i, c := range f.faults.Capacity {
		if (c.Zone != "" && c.Zone != p.zone) || (c.InstanceType != "" && c.InstanceType != p.instanceType) ||
			(c.Market != "" && c.Market != market) {
			continue
		}
		return i
	}
	return -1
}

// capacityFault returns the capacity error an injected fault gives p, if any.
func (f *Fake) capacityFault(p runParams) *apiError {
	i := f.matchCapacity(p)
	if i < 0 {
		return nil
	}
	c := &f.faults.Capacity[i]
	code, msg := c.Code, c.Message
	if code == "" {
		code = "InsufficientInstanceCapacity"
	}
	if msg == "" {
		msg = capacityMessage(code, p)
	}
	status := http.StatusBadRequest
	if code == "InsufficientInstanceCapacity" {
		status = http.StatusInternalServerError // as EC2 answers it
	}
	if c.Count > 0 {
		c.Count--
		if c.Count == 0 {
			f.faults.Capacity = append(f.faults.Capacity[:i], f.faults.Capacity[i+1:]...)
		}
	}
	return errf(status, code, "%s", msg)
}

func capacityMessage(code string, p runParams) string {
	switch code {
	case "InsufficientInstanceCapacity":
		return fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity. You can currently get %s capacity by not specifying an Availability Zone in your request or choosing other zones.", p.instanceType, p.zone, p.instanceType)
	case "Unsupported":
		return fmt.Sprintf("Your requested instance type (%s) is not supported in your requested Availability Zone (%s).", p.instanceType, p.zone)
	case "InstanceLimitExceeded":
		return fmt.Sprintf("You have requested more instances (1) than your current instance limit of 0 allows for the specified instance type (%s).", p.instanceType)
	case "VcpuLimitExceeded":
		return "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to."
	case "SpotMaxPriceTooLow":
		return fmt.Sprintf("Your Spot request price of %s is lower than the minimum required Spot request fulfillment price.", p.spotMaxPrice)
	case "MaxSpotInstanceCountExceeded":
		return "Max spot instance count exceeded"
	}
	return code
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

type describeInstancesResponse struct {
	responseBase
	Reservations []xmlReservation `xml:"reservationSet>item"`
}

func (f *Fake) describeInstances(req *request) (response, *apiError) {
	ids := list(req.form, "InstanceId")
	fls := filters(req.form)
	var selected []*instance
	if len(ids) > 0 {
		for _, id := range ids {
			if !strings.HasPrefix(id, "i-") {
				return nil, badRequest("InvalidInstanceID.Malformed", "Invalid id: %q", id)
			}
			in := f.findInstance(id)
			if in == nil || in.Region != req.region {
				return nil, badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
			}
			if in.notFoundLeft > 0 {
				in.notFoundLeft--
				return nil, badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
			}
			selected = append(selected, in)
		}
	} else {
		for _, in := range f.instances {
			if in.Region == req.region && in.notFoundLeft == 0 {
				selected = append(selected, in)
			}
		}
	}
	res := &describeInstancesResponse{}
	for _, in := range selected {
		in.poll()
		ok, aerr := instanceMatches(in, fls)
		if aerr != nil {
			return nil, aerr
		}
		if ok {
			res.Reservations = append(res.Reservations, xmlReservation{ReservationID: in.reservationID,
				OwnerID: ownerID, Instances: []xmlInstance{f.xmlInstance(in)}})
		}
	}
	return res, nil
}

func instanceMatches(in *instance, fls []filter) (bool, *apiError) {
	for _, fl := range fls {
		if m, ok := matchTags(fl, in.Tags); ok {
			if !m {
				return false, nil
			}
			continue
		}
		var v string
		switch fl.name {
		case "instance-state-name":
			v = in.State
		case "client-token":
			v = in.ClientToken
		case "availability-zone":
			v = in.Zone
		case "instance-type":
			v = in.InstanceType
		case "instance-id":
			v = in.ID
		case "subnet-id":
			v = in.SubnetID
		default:
			return false, badRequest("InvalidParameterValue", "The filter '%s' is invalid", fl.name)
		}
		if !matchAny(fl.values, v) {
			return false, nil
		}
	}
	return true, nil
}

type xmlStateChange struct {
	InstanceID    string           `xml:"instanceId"`
	CurrentState  xmlInstanceState `xml:"currentState"`
	PreviousState xmlInstanceState `xml:"previousState"`
}

// stateChangeResponse answers TerminateInstances and StartInstances.
type stateChangeResponse struct {
	responseBase
	Instances []xmlStateChange `xml:"instancesSet>item"`
}

func (f *Fake) terminateInstances(req *request) (response, *apiError) {
	targets, aerr := f.targetInstances(req)
	if aerr != nil {
		return nil, aerr
	}
	res := &stateChangeResponse{}
	for _, in := range targets {
		prev := in.State
		f.terminateLocked(in, "Client.UserInitiatedShutdown: User initiated shutdown")
		res.Instances = append(res.Instances, xmlStateChange{InstanceID: in.ID, CurrentState: stateOf(in.State), PreviousState: stateOf(prev)})
	}
	return res, nil
}

// targetInstances returns the instances a request's InstanceId.N name.
func (f *Fake) targetInstances(req *request) ([]*instance, *apiError) {
	ids := list(req.form, "InstanceId")
	if len(ids) == 0 {
		return nil, badRequest("MissingParameter", "The request must contain the parameter InstanceId")
	}
	var targets []*instance
	for _, id := range ids {
		in := f.findInstance(id)
		if in == nil || in.Region != req.region {
			return nil, badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		targets = append(targets, in)
	}
	return targets, nil
}

// startInstances starts stopped instances: pending for PendingPolls polls,
// then running, with a new public IP where they had one.
func (f *Fake) startInstances(req *request) (response, *apiError) {
	targets, aerr := f.targetInstances(req)
	if aerr != nil {
		return nil, aerr
	}
	for _, in := range targets {
		if in.State != "stopped" && in.State != "pending" && in.State != "running" {
			return nil, badRequest("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", in.ID)
		}
	}
	res := &stateChangeResponse{}
	for _, in := range targets {
		prev := in.State
		if in.State == "stopped" {
			in.State, in.StateReason, in.pollsLeft = "pending", "", f.cfg.PendingPolls
			if in.publicOnStart {
				in.PublicIP = f.nextPublicIP()
			}
		}
		res.Instances = append(res.Instances, xmlStateChange{InstanceID: in.ID, CurrentState: stateOf(in.State), PreviousState: stateOf(prev)})
	}
	return res, nil
}

// nextPublicIP is the public address the next instance that gets one gets.
func (f *Fake) nextPublicIP() string {
	switch {
	case len(f.publicIPs) > 0:
		ip := f.publicIPs[0]
		f.publicIPs = f.publicIPs[1:]
		return ip
	case f.defaultIP != "":
		return f.defaultIP
	default:
		return fmt.Sprintf("203.0.113.%d", 1+f.seq%254)
	}
}
