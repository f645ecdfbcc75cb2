package fakeec2

import (
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

func (f *Fake) findSubnet(region, id string) *Subnet {
	for i := range f.subnets {
		if f.subnets[i].Region == region && f.subnets[i].ID == id {
			return &f.subnets[i]
		}
	}
	return nil
}

func (f *Fake) findGroup(region, id string) *securityGroup {
	for _, g := range f.groups {
		if g.Region == region && g.ID == id {
			return g
		}
	}
	return nil
}

func (f *Fake) findKey(region, name string) *keyPair {
	for _, k := range f.keys {
		if k.Region == region && k.Name == name {
			return k
		}
	}
	return nil
}

func (f *Fake) findImage(region, id string) *Image {
	for i, img := range f.cfg.Images {
		if img.ID == id && (img.Region == "" || img.Region == region) {
			return &f.cfg.Images[i]
		}
	}
	return nil
}

// --- subnets ----------------------------------------------------------------

type xmlSubnet struct {
	SubnetID            string `xml:"subnetId"`
	State               string `xml:"state"`
	VpcID               string `xml:"vpcId"`
	CidrBlock           string `xml:"cidrBlock"`
	AvailabilityZone    string `xml:"availabilityZone"`
	DefaultForAz        bool   `xml:"defaultForAz"`
	MapPublicIPOnLaunch bool   `xml:"mapPublicIpOnLaunch"`
	OwnerID             string `xml:"ownerId"`
}

type describeSubnetsResponse struct {
	responseBase
	Subnets []xmlSubnet `xml:"subnetSet>item"`
}

func (f *Fake) describeSubnets(req *request) (response, *apiError) {
	ids := list(req.form, "SubnetId")
	for _, id := range ids {
		if f.findSubnet(req.region, id) == nil {
			return nil, badRequest("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	res := &describeSubnetsResponse{}
	for _, sn := range f.subnets {
		if sn.Region != req.region || (len(ids) > 0 && !contains(ids, sn.ID)) {
			continue
		}
		ok := true
		for _, fl := range filters(req.form) {
			var v string
			switch fl.name {
			case "vpc-id":
				v = sn.VpcID
			case "availability-zone":
				v = sn.Zone
			case "subnet-id":
				v = sn.ID
			case "default-for-az":
				v = "true"
			default:
				return nil, badRequest("InvalidParameterValue", "The filter '%s' is invalid", fl.name)
			}
			ok = ok && matchAny(fl.values, v)
		}
		if ok {
			res.Subnets = append(res.Subnets, xmlSubnet{SubnetID: sn.ID, State: "available", VpcID: sn.VpcID,
				CidrBlock: sn.CIDR, AvailabilityZone: sn.Zone, DefaultForAz: true,
				MapPublicIPOnLaunch: sn.MapPublicIPOnLaunch, OwnerID: ownerID})
		}
	}
	return res, nil
}

// --- security groups ----------------------------------------------------------

type createSecurityGroupResponse struct {
	responseBase
	GroupID string   `xml:"groupId"`
	Tags    []xmlTag `xml:"tagSet>item"`
}

func (f *Fake) createSecurityGroup(req *request) (response, *apiError) {
	name, desc := req.form.Get("GroupName"), req.form.Get("GroupDescription")
	if name == "" {
		return nil, badRequest("MissingParameter", "The request must contain the parameter GroupName")
	}
	if desc == "" {
		return nil, badRequest("MissingParameter", "The request must contain the parameter GroupDescription")
	}
	if name == "default" || strings.HasPrefix(name, "sg-") || len(name) > 255 || !groupText(name) {
		return nil, badRequest("InvalidParameterValue", "Invalid security group name %q", name)
	}
	if len(desc) > 255 || !groupText(desc) {
		return nil, badRequest("InvalidParameterValue", "Invalid security group description %q: characters allowed are a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*", desc)
	}
	vpc := req.form.Get("VpcId")
	if vpc == "" {
		vpc = f.vpcs[req.region]
	} else if vpc != f.vpcs[req.region] {
		return nil, badRequest("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpc)
	}
	for _, g := range f.groups {
		if g.Region == req.region && g.VpcID == vpc && g.Name == name {
			return nil, badRequest("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpc)
		}
	}
	tags, aerr := tagSpecs(req.form)
	if aerr != nil {
		return nil, aerr
	}
	for rt := range tags {
		if rt != "security-group" {
			return nil, badRequest("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	t := tags["security-group"]
	if t == nil {
		t = map[string]string{}
	}
	g := &securityGroup{SecurityGroup{ID: f.nextID("sg"), Region: req.region, VpcID: vpc, Name: name, Description: desc, Tags: t}}
	f.groups = append(f.groups, g)
	return &createSecurityGroupResponse{GroupID: g.ID, Tags: xmlTags(t)}, nil
}

// groupText reports whether s uses only the characters EC2 accepts in VPC
// security group names and descriptions.
func groupText(s string) bool {
	const extra = " ._-:/()#,@[]+=&;{}!$*"
	for _, r := range s {
		if !((r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}

type xmlIPRange struct {
	CidrIP string `xml:"cidrIp"`
}

type xmlIPv6Range struct {
	CidrIPv6 string `xml:"cidrIpv6"`
}

type xmlIPPermission struct {
	IPProtocol string         `xml:"ipProtocol"`
	FromPort   int            `xml:"fromPort"`
	ToPort     int            `xml:"toPort"`
	IPRanges   []xmlIPRange   `xml:"ipRanges>item"`
	IPv6Ranges []xmlIPv6Range `xml:"ipv6Ranges>item"`
}

type xmlSecurityGroup struct {
	OwnerID     string            `xml:"ownerId"`
	GroupID     string            `xml:"groupId"`
	GroupName   string            `xml:"groupName"`
	Description string            `xml:"groupDescription"`
	VpcID       string            `xml:"vpcId"`
	Ingress     []xmlIPPermission `xml:"ipPermissions>item"`
	Egress      []xmlIPPermission `xml:"ipPermissionsEgress>item"`
	Tags        []xmlTag          `xml:"tagSet>item"`
}

type describeSecurityGroupsResponse struct {
	responseBase
	Groups []xmlSecurityGroup `xml:"securityGroupInfo>item"`
}

func (f *Fake) describeSecurityGroups(req *request) (response, *apiError) {
	ids, names := list(req.form, "GroupId"), list(req.form, "GroupName")
	for _, id := range ids {
		if f.findGroup(req.region, id) == nil {
			return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
	}
	res := &describeSecurityGroupsResponse{}
	for _, g := range f.groups {
		if g.Region != req.region || (len(ids) > 0 && !contains(ids, g.ID)) || (len(names) > 0 && !contains(names, g.Name)) {
			continue
		}
		ok := true
		for _, fl := range filters(req.form) {
			if m, isTag := matchTags(fl, g.Tags); isTag {
				ok = ok && m
				continue
			}
			var v string
			switch fl.name {
			case "group-name":
				v = g.Name
			case "group-id":
				v = g.ID
			case "vpc-id":
				v = g.VpcID
			default:
				return nil, badRequest("InvalidParameterValue", "The filter '%s' is invalid", fl.name)
			}
			ok = ok && matchAny(fl.values, v)
		}
		if ok {
			res.Groups = append(res.Groups, xmlGroupOf(g))
		}
	}
	if len(names) > 0 && len(res.Groups) == 0 {
		return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", names[0], f.vpcs[req.region])
	}
	return res, nil
}

func xmlGroupOf(g *securityGroup) xmlSecurityGroup {
	x := xmlSecurityGroup{OwnerID: ownerID, GroupID: g.ID, GroupName: g.Name, Description: g.Description,
		VpcID: g.VpcID, Tags: xmlTags(g.Tags),
		Egress: []xmlIPPermission{{IPProtocol: "-1", IPRanges: []xmlIPRange{{CidrIP: "0.0.0.0/0"}}}}}
	type key struct {
		proto    string
		from, to int
	}
	idx := map[key]int{}
	for _, r := range g.Ingress {
		k := key{r.Protocol, r.FromPort, r.ToPort}
		i, ok := idx[k]
		if !ok {
			i = len(x.Ingress)
			idx[k] = i
			x.Ingress = append(x.Ingress, xmlIPPermission{IPProtocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort})
		}
		if strings.Contains(r.CIDR, ":") {
			x.Ingress[i].IPv6Ranges = append(x.Ingress[i].IPv6Ranges, xmlIPv6Range{CidrIPv6: r.CIDR})
		} else {
			x.Ingress[i].IPRanges = append(x.Ingress[i].IPRanges, xmlIPRange{CidrIP: r.CIDR})
		}
	}
	return x
}

type returnResponse struct {
	responseBase
	Return bool `xml:"return"`
}

func (f *Fake) authorizeSecurityGroupIngress(req *request) (response, *apiError) {
	g := f.findGroup(req.region, req.form.Get("GroupId"))
	if g == nil {
		return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist", req.form.Get("GroupId"))
	}
	var rules []Rule
	for i := 1; i <= count(req.form, "IpPermissions"); i++ {
		p := "IpPermissions." + strconv.Itoa(i)
		proto := req.form.Get(p + ".IpProtocol")
		if proto != "tcp" && proto != "udp" && proto != "icmp" && proto != "-1" {
			return nil, badRequest("InvalidParameterValue", "Invalid value '%s' for IP protocol", proto)
		}
		from, err1 := strconv.Atoi(req.form.Get(p + ".FromPort"))
		to, err2 := strconv.Atoi(req.form.Get(p + ".ToPort"))
		if proto != "-1" && (err1 != nil || err2 != nil || from < 0 || to > 65535 || from > to) {
			return nil, badRequest("InvalidParameterValue", "Invalid port range for permission %d", i)
		}
		var cidrs []string
		for j := 1; j <= count(req.form, p+".IpRanges"); j++ {
			cidrs = append(cidrs, req.form.Get(p+".IpRanges."+strconv.Itoa(j)+".CidrIp"))
		}
		for j := 1; j <= count(req.form, p+".Ipv6Ranges"); j++ {
			cidrs = append(cidrs, req.form.Get(p+".Ipv6Ranges."+strconv.Itoa(j)+".CidrIpv6"))
		}
		if len(cidrs) == 0 {
			return nil, badRequest("InvalidParameterValue", "permission %d names no CIDR (the fake supports CIDR sources only)", i)
		}
		for _, c := range cidrs {
			pfx, err := netip.ParsePrefix(c)
			if err != nil || pfx.Masked() != pfx {
				return nil, badRequest("InvalidParameterValue", "CIDR block %s is malformed", c)
			}
			rules = append(rules, Rule{Protocol: proto, FromPort: from, ToPort: to, CIDR: c})
		}
	}
	if len(rules) == 0 {
		return nil, badRequest("MissingParameter", "No IpPermissions given")
	}
	for _, r := range rules {
		for _, have := range g.Ingress {
			if have == r {
				return nil, badRequest("InvalidPermission.Duplicate",
					"the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists", r.CIDR, strings.ToUpper(r.Protocol), r.FromPort, r.ToPort)
			}
		}
	}
	g.Ingress = append(g.Ingress, rules...)
	return &returnResponse{Return: true}, nil
}

func (f *Fake) deleteSecurityGroup(req *request) (response, *apiError) {
	id := req.form.Get("GroupId")
	g := f.findGroup(req.region, id)
	if g == nil {
		return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	if g.Name == "default" {
		return nil, badRequest("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", id)
	}
	for _, in := range f.instances {
		if in.State != "terminated" && contains(in.SecurityGroupIDs, id) {
			return nil, badRequest("DependencyViolation", "resource %s has a dependent object", id)
		}
	}
	if f.faults.GroupInUse > 0 {
		f.faults.GroupInUse--
		return nil, badRequest("DependencyViolation", "resource %s has a dependent object", id)
	}
	for i, have := range f.groups {
		if have == g {
			f.groups = append(f.groups[:i], f.groups[i+1:]...)
			break
		}
	}
	return &returnResponse{Return: true}, nil
}

// --- key pairs ----------------------------------------------------------------

type importKeyPairResponse struct {
	responseBase
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyName        string   `xml:"keyName"`
	KeyPairID      string   `xml:"keyPairId"`
	Tags           []xmlTag `xml:"tagSet>item"`
}

func (f *Fake) importKeyPair(req *request) (response, *apiError) {
	name := req.form.Get("KeyName")
	if name == "" || len(name) > 255 {
		return nil, badRequest("InvalidParameterValue", "Invalid key name %q", name)
	}
	raw, err := base64.StdEncoding.DecodeString(req.form.Get("PublicKeyMaterial"))
	if err != nil {
		return nil, badRequest("InvalidParameterValue", "Value for parameter PublicKeyMaterial is invalid: not base64")
	}
	fields := strings.Fields(string(raw))
	if len(fields) < 2 || !(strings.HasPrefix(fields[0], "ssh-") || strings.HasPrefix(fields[0], "ecdsa-")) {
		return nil, badRequest("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return nil, badRequest("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
	}
	if f.findKey(req.region, name) != nil {
		return nil, badRequest("InvalidKeyPair.Duplicate", "The keypair already exists")
	}
	tags, aerr := tagSpecs(req.form)
	if aerr != nil {
		return nil, aerr
	}
	for rt := range tags {
		if rt != "key-pair" {
			return nil, badRequest("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	t := tags["key-pair"]
	if t == nil {
		t = map[string]string{}
	}
	sum := md5.Sum(blob)
	fp := make([]string, len(sum))
	for i, b := range sum {
		fp[i] = fmt.Sprintf("%02x", b)
	}
	k := &keyPair{KeyPair: KeyPair{ID: f.nextID("key"), Region: req.region, Name: name,
		Fingerprint: strings.Join(fp, ":"), PublicKey: string(raw), Tags: t}, created: f.cfg.Now()}
	f.keys = append(f.keys, k)
	return &importKeyPairResponse{KeyFingerprint: k.Fingerprint, KeyName: k.Name, KeyPairID: k.ID, Tags: xmlTags(t)}, nil
}

type xmlKeyPair struct {
	KeyPairID      string   `xml:"keyPairId"`
	KeyName        string   `xml:"keyName"`
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyType        string   `xml:"keyType"`
	CreateTime     string   `xml:"createTime"`
	Tags           []xmlTag `xml:"tagSet>item"`
}

type describeKeyPairsResponse struct {
	responseBase
	Keys []xmlKeyPair `xml:"keySet>item"`
}

func (f *Fake) describeKeyPairs(req *request) (response, *apiError) {
	names := list(req.form, "KeyName")
	for _, n := range names {
		if f.findKey(req.region, n) == nil {
			return nil, badRequest("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", n)
		}
	}
	res := &describeKeyPairsResponse{}
	for _, k := range f.keys {
		if k.Region != req.region || (len(names) > 0 && !contains(names, k.Name)) {
			continue
		}
		ok := true
		for _, fl := range filters(req.form) {
			if m, isTag := matchTags(fl, k.Tags); isTag {
				ok = ok && m
				continue
			}
			if fl.name != "key-name" {
				return nil, badRequest("InvalidParameterValue", "The filter '%s' is invalid", fl.name)
			}
			ok = ok && matchAny(fl.values, k.Name)
		}
		if ok {
			kt := "rsa"
			if strings.HasPrefix(k.PublicKey, "ssh-ed25519") {
				kt = "ed25519"
			}
			res.Keys = append(res.Keys, xmlKeyPair{KeyPairID: k.ID, KeyName: k.Name, KeyFingerprint: k.Fingerprint,
				KeyType: kt, CreateTime: k.created.UTC().Format("2006-01-02T15:04:05.000Z"), Tags: xmlTags(k.Tags)})
		}
	}
	return res, nil
}

type deleteKeyPairResponse struct {
	responseBase
	Return    bool   `xml:"return"`
	KeyPairID string `xml:"keyPairId,omitempty"`
}

// deleteKeyPair succeeds for unknown keys, as EC2 does.
func (f *Fake) deleteKeyPair(req *request) (response, *apiError) {
	name, id := req.form.Get("KeyName"), req.form.Get("KeyPairId")
	if name == "" && id == "" {
		return nil, badRequest("MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
	}
	res := &deleteKeyPairResponse{Return: true}
	for i, k := range f.keys {
		if k.Region == req.region && ((name != "" && k.Name == name) || (id != "" && k.ID == id)) {
			res.KeyPairID = k.ID
			f.keys = append(f.keys[:i], f.keys[i+1:]...)
			break
		}
	}
	return res, nil
}

// --- images -------------------------------------------------------------------

type xmlImage struct {
	ImageID        string `xml:"imageId"`
	ImageLocation  string `xml:"imageLocation"`
	ImageState     string `xml:"imageState"`
	OwnerID        string `xml:"imageOwnerId"`
	OwnerAlias     string `xml:"imageOwnerAlias,omitempty"`
	CreationDate   string `xml:"creationDate"`
	IsPublic       bool   `xml:"isPublic"`
	Architecture   string `xml:"architecture"`
	ImageType      string `xml:"imageType"`
	Name           string `xml:"name"`
	RootDeviceType string `xml:"rootDeviceType"`
	RootDeviceName string `xml:"rootDeviceName"`
	Virtualization string `xml:"virtualizationType"`
}

type describeImagesResponse struct {
	responseBase
	Images []xmlImage `xml:"imagesSet>item"`
}

func (f *Fake) describeImages(req *request) (response, *apiError) {
	ids, owners := list(req.form, "ImageId"), list(req.form, "Owner")
	var out []Image
	for _, img := range f.cfg.Images {
		if img.Region != "" && img.Region != req.region {
			continue
		}
		if len(ids) > 0 && !contains(ids, img.ID) {
			continue
		}
		if len(owners) > 0 && !contains(owners, img.OwnerID) && !(img.OwnerAlias != "" && contains(owners, img.OwnerAlias)) {
			continue
		}
		ok := true
		for _, fl := range filters(req.form) {
			var v string
			switch fl.name {
			case "name":
				v = img.Name
			case "state":
				v = "available"
			case "architecture":
				v = img.Architecture
			case "owner-alias":
				v = img.OwnerAlias
			case "image-id":
				v = img.ID
			case "is-public":
				v = "true"
			case "root-device-type":
				v = "ebs"
			case "virtualization-type":
				v = "hvm"
			default:
				return nil, badRequest("InvalidParameterValue", "The filter '%s' is invalid", fl.name)
			}
			ok = ok && matchAny(fl.values, v)
		}
		if ok {
			out = append(out, img)
		}
	}
	for _, id := range ids {
		found := false
		for _, img := range out {
			found = found || img.ID == id
		}
		if !found && len(owners) == 0 && len(filters(req.form)) == 0 {
			return nil, badRequest("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	res := &describeImagesResponse{}
	for _, img := range out {
		res.Images = append(res.Images, xmlImage{ImageID: img.ID, ImageLocation: img.OwnerAlias + "/" + img.Name,
			ImageState: "available", OwnerID: img.OwnerID, OwnerAlias: img.OwnerAlias, CreationDate: img.CreationDate,
			IsPublic: true, Architecture: img.Architecture, ImageType: "machine", Name: img.Name,
			RootDeviceType: "ebs", RootDeviceName: img.RootDeviceName, Virtualization: "hvm"})
	}
	return res, nil
}
