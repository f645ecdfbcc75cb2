package fakeecs

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
)

// handler is one ECS action.
type handler func(w *world, p map[string]string) (map[string]any, *apiError)

func handlerFor(action string) handler {
	switch action {
	case "RunInstances":
		return (*world).runInstances
	case "DescribeInstances":
		return (*world).describeInstances
	case "DeleteInstance":
		return (*world).deleteInstance
	case "StartInstance":
		return (*world).startInstance
	case "DescribeAvailableResource":
		return (*world).describeAvailableResource
	case "DescribeSpotPriceHistory":
		return (*world).describeSpotPriceHistory
	case "DescribeImages":
		return (*world).describeImages
	case "DescribeVSwitches":
		return (*world).describeVSwitches
	case "CreateSecurityGroup":
		return (*world).createSecurityGroup
	case "AuthorizeSecurityGroup":
		return (*world).authorizeSecurityGroup
	case "DeleteSecurityGroup":
		return (*world).deleteSecurityGroup
	case "ImportKeyPair":
		return (*world).importKeyPair
	case "DeleteKeyPairs":
		return (*world).deleteKeyPairs
	case "TagResources":
		return (*world).tagResources
	case "UntagResources":
		return (*world).untagResources
	}
	return nil
}

// isCommonParam reports parameters that are not part of an operation's
// identity for ClientToken checks (signing and protocol parameters).
func isCommonParam(k string) bool {
	switch k {
	case "Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
		"SignatureNonce", "SignatureType", "Timestamp", "SecurityToken", "BearerToken":
		return true
	}
	return false
}

func paramHash(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		if !isCommonParam(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, p[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func readTags(p map[string]string) map[string]string {
	tags := map[string]string{}
	for _, t := range indexed(p, "Tag", "Key", "Value") {
		if t["Key"] != "" {
			tags[t["Key"]] = t["Value"]
		}
	}
	return tags
}

// checkTags applies ECS's tag rules: at most 20, keys of 1-128 and values of
// at most 128 characters, no "aliyun" or "acs:" key prefix.
func checkTags(tags map[string]string) *apiError {
	if len(tags) > 20 {
		return errorf(http.StatusBadRequest, "InvalidTagCount", "A resource can have at most 20 tags, got %d.", len(tags))
	}
	for k, v := range tags {
		if len(k) > 128 || strings.HasPrefix(k, "aliyun") || strings.HasPrefix(k, "acs:") || strings.Contains(k, "http://") || strings.Contains(k, "https://") {
			return errorf(http.StatusBadRequest, "InvalidTagKey.Malformed", "The specified tag key %q is not valid.", k)
		}
		if len(v) > 128 || strings.Contains(v, "http://") || strings.Contains(v, "https://") {
			return errorf(http.StatusBadRequest, "InvalidTagValue.Malformed", "The specified tag value of %q is not valid.", k)
		}
	}
	return nil
}

func tagList(tags map[string]string) []map[string]string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]map[string]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, map[string]string{"TagKey": k, "TagValue": tags[k]})
	}
	return out
}

func (w *world) runInstances(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	reply := func(ids []string) map[string]any {
		return map[string]any{"InstanceIdSets": map[string]any{"InstanceIdSet": ids}, "OrderId": "", "TradePrice": 0}
	}
	token := p["ClientToken"]
	hash := paramHash(p)
	if token != "" {
		if rec, ok := w.tokens[region+"|"+token]; ok {
			if rec.hash != hash {
				return nil, errorf(http.StatusBadRequest, "IdempotentParameterMismatch", "The specified parameters are different from before.")
			}
			return reply(rec.ids), nil
		}
	}
	typ := p["InstanceType"]
	if typ == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"InstanceType\" that is mandatory for processing this request is not supplied.")
	}
	if !strings.HasPrefix(typ, "ecs.") {
		return nil, errorf(http.StatusBadRequest, "InvalidInstanceType.ValueUnauthorized", "The specified InstanceType %q does not exist or is not authorized.", typ)
	}
	if a := p["Amount"]; a != "" && a != "1" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameter.Amount", "fakeecs creates one instance per call, got Amount=%s", a)
	}
	vsw := w.vswitches[p["VSwitchId"]]
	if p["VSwitchId"] == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"VSwitchId\" that is mandatory for processing this request is not supplied.")
	}
	if vsw == nil || vsw.Region != region {
		return nil, errorf(http.StatusNotFound, "InvalidVSwitchId.NotFound", "Specified virtual switch %q does not exist.", p["VSwitchId"])
	}
	zone := p["ZoneId"]
	if zone == "" {
		zone = vsw.Zone
	}
	if zone != vsw.Zone {
		return nil, errorf(http.StatusBadRequest, "InvalidParameter.Mismatch", "Specified virtual switch is not in the specified zone %s.", zone)
	}
	img := p["ImageId"]
	found := false
	for _, im := range w.images {
		found = found || im.ID == img
	}
	if !found {
		return nil, errorf(http.StatusNotFound, "InvalidImageId.NotFound", "The specified ImageId %q does not exist.", img)
	}
	var sgIDs []string
	if id := p["SecurityGroupId"]; id != "" {
		sgIDs = append(sgIDs, id)
	}
	for _, v := range indexed(p, "SecurityGroupIds") {
		sgIDs = append(sgIDs, v[""])
	}
	if len(sgIDs) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"SecurityGroupId\" that is mandatory for processing this request is not supplied.")
	}
	for _, id := range sgIDs {
		sg := w.sgs[id]
		if sg == nil || sg.Region != region {
			return nil, errorf(http.StatusNotFound, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId %q does not exist.", id)
		}
		if sg.VpcID != vsw.VpcID {
			return nil, errorf(http.StatusBadRequest, "InvalidSecurityGroupId.NotInSameVpc", "The security group %s and the vswitch %s are not in the same VPC.", id, vsw.ID)
		}
	}
	if kp := p["KeyPairName"]; kp != "" && w.keyPairs[region+"|"+kp] == nil {
		return nil, errorf(http.StatusNotFound, "InvalidKeyPairName.NotFound", "The specified KeyPairName %q does not exist.", kp)
	}
	spot := p["SpotStrategy"]
	var limit float64
	switch spot {
	case "", "NoSpot":
		spot = "NoSpot"
	case "SpotAsPriceGo":
	case "SpotWithPriceLimit":
		if _, err := fmt.Sscanf(p["SpotPriceLimit"], "%g", &limit); err != nil || limit <= 0 {
			return nil, errorf(http.StatusBadRequest, "InvalidSpotPriceLimit.Malformed", "SpotPriceLimit must be positive with SpotWithPriceLimit, got %q.", p["SpotPriceLimit"])
		}
	default:
		return nil, errorf(http.StatusBadRequest, "InvalidSpotStrategy", "The specified SpotStrategy %q is not valid.", spot)
	}
	diskCat := p["SystemDisk.Category"]
	switch diskCat {
	case "", "cloud_essd", "cloud_ssd", "cloud_efficiency", "cloud_auto", "cloud_essd_entry":
	default:
		return nil, errorf(http.StatusBadRequest, "InvalidSystemDiskCategory.ValueNotSupported", "The specified system disk category %q is not supported.", diskCat)
	}
	diskSize := 0
	if s := p["SystemDisk.Size"]; s != "" {
		if _, err := fmt.Sscanf(s, "%d", &diskSize); err != nil || diskSize < 20 || diskSize > 2048 {
			return nil, errorf(http.StatusBadRequest, "InvalidSystemDiskSize.ValueNotSupported", "The system disk size %q is not in [20, 2048].", s)
		}
	}
	userData := ""
	if ud := p["UserData"]; ud != "" {
		b, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "InvalidUserData.Base64FormatInvalid", "The specified UserData is not valid base64.")
		}
		userData = string(b)
	}
	bw := 0
	if s := p["InternetMaxBandwidthOut"]; s != "" {
		if _, err := fmt.Sscanf(s, "%d", &bw); err != nil || bw < 0 {
			return nil, errorf(http.StatusBadRequest, "InvalidInternetMaxBandwidthOut.Malformed", "InternetMaxBandwidthOut %q is not valid.", s)
		}
	}
	tags := readTags(p)
	if aerr := checkTags(tags); aerr != nil {
		return nil, aerr
	}
	if !w.inStock(region, zone, typ) {
		return nil, errorf(http.StatusForbidden, "OperationDenied.NoStock", "The requested resource is sold out in the specified zone; try other types of resources or other regions and zones.")
	}
	if code := w.runError(region, zone, typ); code != "" {
		return nil, &apiError{Status: statusForCode(code), Code: code, Message: fmt.Sprintf("fakeecs: %s for %s in %s", code, typ, zone)}
	}

	w.idN++
	id := fmt.Sprintf("i-%s%018x", regionCode(region), w.idN)
	w.privN++
	inst := &instance{hidden: w.hideNew, Instance: Instance{
		ID: id, Region: region, Zone: zone, InstanceType: typ, Status: "Pending",
		Name: p["InstanceName"], ImageID: img, VpcID: vsw.VpcID, VSwitchID: vsw.ID,
		SecurityGroupIDs: sgIDs, KeyPairName: p["KeyPairName"],
		PrivateIP:    privateIP(vsw.CIDR, w.privN),
		SpotStrategy: spot, SpotPriceLimit: limit, InternetMaxBandwidthOut: bw,
		SystemDiskSize: diskSize, SystemDiskCategory: diskCat, UserData: userData,
		ClientToken: token, Tags: tags, CreationTime: w.opts.Now().UTC(),
	}}
	if bw > 0 {
		if len(w.nextIPs) > 0 {
			inst.PublicIP = w.nextIPs[0]
			w.nextIPs = w.nextIPs[1:]
		} else {
			w.ipN++
			inst.PublicIP = fmt.Sprintf("203.0.113.%d", w.ipN%250+1)
		}
	}
	if w.opts.Instant {
		inst.Status = "Running"
	}
	w.instances[id] = inst
	w.order = append(w.order, id)
	if token != "" {
		w.tokens[region+"|"+token] = tokenRecord{hash: hash, ids: []string{id}}
	}
	return reply([]string{id}), nil
}

func privateIP(cidr string, n int) string {
	ip, _, err := net.ParseCIDR(cidr)
	if err != nil {
		return "172.16.0.10"
	}
	v4 := ip.To4()
	return fmt.Sprintf("%d.%d.%d.%d", v4[0], v4[1], v4[2], 10+n%240)
}

// advance moves an instance one step along its lifecycle after a describe.
func (w *world) advance(in *instance) {
	in.steps++
	if in.steps < w.opts.StepsPerState {
		return
	}
	in.steps = 0
	switch in.Status {
	case "Pending":
		in.Status = "Starting"
	case "Starting":
		in.Status = "Running"
	case "Stopping":
		in.Status = "Deleted"
	case "Deleted":
		in.Released = true
	}
}

func instanceJSON(in *instance) map[string]any {
	pub := []string{}
	if in.PublicIP != "" {
		pub = append(pub, in.PublicIP)
	}
	locks := []map[string]string{}
	if in.Reclaimed {
		locks = append(locks, map[string]string{"LockReason": "Recycling", "LockMsg": "The spot instance is being reclaimed."})
	}
	isSpot := in.SpotStrategy != "NoSpot"
	return map[string]any{
		"InstanceId":              in.ID,
		"InstanceName":            in.Name,
		"HostName":                "iZ" + strings.TrimPrefix(in.ID, "i-") + "Z",
		"RegionId":                in.Region,
		"ZoneId":                  in.Zone,
		"InstanceType":            in.InstanceType,
		"InstanceTypeFamily":      family(in.InstanceType),
		"Status":                  in.Status,
		"ImageId":                 in.ImageID,
		"OSType":                  "linux",
		"InstanceChargeType":      "PostPaid",
		"InternetChargeType":      "PayByTraffic",
		"InternetMaxBandwidthOut": in.InternetMaxBandwidthOut,
		"InstanceNetworkType":     "vpc",
		"IoOptimized":             true,
		"IsSpot":                  isSpot,
		"SpotStrategy":            in.SpotStrategy,
		"SpotPriceLimit":          in.SpotPriceLimit,
		"KeyPairName":             in.KeyPairName,
		"CreationTime":            in.CreationTime.Format("2006-01-02T15:04Z"),
		"PublicIpAddress":         map[string]any{"IpAddress": pub},
		"InnerIpAddress":          map[string]any{"IpAddress": []string{}},
		"EipAddress":              map[string]any{"IpAddress": "", "AllocationId": ""},
		"VpcAttributes": map[string]any{
			"VpcId": in.VpcID, "VSwitchId": in.VSwitchID, "NatIpAddress": "",
			"PrivateIpAddress": map[string]any{"IpAddress": []string{in.PrivateIP}},
		},
		"SecurityGroupIds": map[string]any{"SecurityGroupId": in.SecurityGroupIDs},
		"Tags":             map[string]any{"Tag": tagList(in.Tags)},
		"OperationLocks":   map[string]any{"LockReason": locks},
	}
}

func family(typ string) string {
	parts := strings.SplitN(typ, ".", 3)
	if len(parts) < 2 {
		return typ
	}
	return parts[0] + "." + strings.SplitN(parts[1], "-", 2)[0]
}

func pageParams(p map[string]string, def int) (page, size int) {
	page, size = 1, def
	if s := p["PageNumber"]; s != "" {
		fmt.Sscanf(s, "%d", &page)
	}
	if s := p["PageSize"]; s != "" {
		fmt.Sscanf(s, "%d", &size)
	}
	if page < 1 {
		page = 1
	}
	if size < 1 || size > 100 {
		size = def
	}
	return page, size
}

func (w *world) describeInstances(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	ids, err := parseJSONList(p["InstanceIds"])
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "InvalidInstanceIds.Malformed", "The specified parameter InstanceIds is not valid: %v", err)
	}
	if len(ids) > 100 {
		return nil, errorf(http.StatusBadRequest, "InvalidInstanceIds.Malformed", "At most 100 instance ids, got %d.", len(ids))
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	tagFilter := readTags(p)
	var matched []*instance
	for _, id := range w.order {
		in := w.instances[id]
		if in.Released || in.Region != region || (len(want) > 0 && !want[id]) {
			continue
		}
		if z := p["ZoneId"]; z != "" && in.Zone != z {
			continue
		}
		if st := p["Status"]; st != "" && in.Status != st {
			continue
		}
		if sg := p["SecurityGroupId"]; sg != "" && !slices.Contains(in.SecurityGroupIDs, sg) {
			continue
		}
		if kp := p["KeyPairName"]; kp != "" && in.KeyPairName != kp {
			continue
		}
		ok := true
		for k, v := range tagFilter {
			if got, has := in.Tags[k]; !has || (v != "" && got != v) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		if in.hidden > 0 {
			in.hidden--
			continue
		}
		matched = append(matched, in)
	}
	page, size := pageParams(p, 10)
	start := min((page-1)*size, len(matched))
	end := min(start+size, len(matched))
	out := make([]map[string]any, 0, end-start)
	for _, in := range matched[start:end] {
		out = append(out, instanceJSON(in))
		w.advance(in)
	}
	return map[string]any{
		"Instances":  map[string]any{"Instance": out},
		"TotalCount": len(matched), "PageNumber": page, "PageSize": size, "NextToken": "",
	}, nil
}

// startInstance starts a Stopped instance: Starting, then Running.
func (w *world) startInstance(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in, aerr := w.instanceParam(p)
	if aerr != nil {
		return nil, aerr
	}
	if in.Status != "Stopped" {
		return nil, errorf(http.StatusForbidden, "IncorrectInstanceStatus", "The current status of the resource does not support this operation: %s.", in.Status)
	}
	in.Status, in.steps = "Starting", 0
	if w.opts.Instant {
		in.Status = "Running"
	}
	return map[string]any{}, nil
}

// instanceParam returns the live instance named by InstanceId (in RegionId
// when given). The caller holds w.mu.
func (w *world) instanceParam(p map[string]string) (*instance, *apiError) {
	id := p["InstanceId"]
	if id == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"InstanceId\" that is mandatory for processing this request is not supplied.")
	}
	in := w.instances[id]
	if in == nil || in.Released || (p["RegionId"] != "" && in.Region != p["RegionId"]) {
		return nil, errorf(http.StatusNotFound, "InvalidInstanceId.NotFound", "The specified InstanceId %q does not exist.", id)
	}
	return in, nil
}

func (w *world) deleteInstance(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in, aerr := w.instanceParam(p)
	if aerr != nil {
		return nil, aerr
	}
	switch in.Status {
	case "Stopping", "Deleted":
		return map[string]any{}, nil
	case "Stopped":
	default:
		if p["Force"] != "true" {
			return nil, errorf(http.StatusForbidden, "IncorrectInstanceStatus", "The current status of the resource does not support this operation: %s; stop it first or use Force.", in.Status)
		}
	}
	in.Status, in.steps = "Stopping", 0
	if w.opts.Instant {
		in.Status, in.Released = "Deleted", true
	}
	return map[string]any{}, nil
}

func (w *world) describeAvailableResource(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	switch p["DestinationResource"] {
	case "InstanceType", "Zone":
	case "":
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"DestinationResource\" that is mandatory for processing this request is not supplied.")
	default:
		return nil, errorf(http.StatusBadRequest, "InvalidParameter.DestinationResource", "fakeecs supports DestinationResource InstanceType and Zone, got %q.", p["DestinationResource"])
	}
	typ := p["InstanceType"]
	zones := []map[string]any{}
	for _, z := range w.zones[region] {
		if zf := p["ZoneId"]; zf != "" && zf != z {
			continue
		}
		var supported []map[string]any
		anyStock := false
		types := []string{typ}
		if typ == "" && p["DestinationResource"] == "InstanceType" {
			types = w.typesIn(region, z) // every type the zone offers
		}
		for _, t := range types {
			if t == "" {
				continue
			}
			if w.runError(region, z, t) == "InvalidInstanceType.NotSupported" {
				continue // the type is not offered in this zone at all
			}
			status, cat := "Available", "WithStock"
			if !w.inStock(region, z, t) {
				status, cat = "SoldOut", "WithoutStock"
			} else {
				anyStock = true
			}
			supported = append(supported, map[string]any{"Value": t, "Status": status, "StatusCategory": cat})
		}
		if typ != "" && len(supported) == 0 {
			continue // the type is not offered in this zone at all
		}
		zcat := "WithStock"
		if len(supported) > 0 && !anyStock {
			zcat = "WithoutStock"
		}
		zones = append(zones, map[string]any{
			"RegionId": region, "ZoneId": z, "Status": "Available", "StatusCategory": zcat,
			"AvailableResources": map[string]any{"AvailableResource": []map[string]any{{
				"Type":               "InstanceType",
				"SupportedResources": map[string]any{"SupportedResource": supported},
			}}},
		})
	}
	return map[string]any{"AvailableZones": map[string]any{"AvailableZone": zones}}, nil
}

func (w *world) describeImages(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	var matched []map[string]any
	for _, im := range w.images {
		if v := p["ImageId"]; v != "" && v != im.ID {
			continue
		}
		if v := p["ImageOwnerAlias"]; v != "" && v != "system" {
			continue
		}
		if v := p["OSType"]; v != "" && !strings.EqualFold(v, "linux") {
			continue
		}
		if v := p["Architecture"]; v != "" && v != im.Arch {
			continue
		}
		if v := p["Status"]; v != "" && v != "Available" {
			continue
		}
		if v := p["ImageName"]; v != "" && !fuzzyMatch(v, im.Name) {
			continue
		}
		matched = append(matched, map[string]any{
			"ImageId": im.ID, "ImageName": im.Name, "OSName": im.OSName, "OSNameEn": strings.Replace(im.OSName, "位", " bit", 1),
			"Platform": im.Platform, "OSType": "linux", "Architecture": im.Arch, "ImageOwnerAlias": "system",
			"Status": "Available", "Size": 20, "IsSupportCloudinit": true, "IsSupportIoOptimized": true,
			"CreationTime": im.Created.Format("2006-01-02T15:04:05Z"), "Usage": "instance", "BootMode": "BIOS",
		})
	}
	page, size := pageParams(p, 10)
	start := min((page-1)*size, len(matched))
	end := min(start+size, len(matched))
	return map[string]any{
		"Images":     map[string]any{"Image": append([]map[string]any{}, matched[start:end]...)},
		"TotalCount": len(matched), "PageNumber": page, "PageSize": size, "RegionId": region,
	}, nil
}

// fuzzyMatch is ECS's ImageName search: a '*' wildcard pattern, or a
// case-insensitive substring.
func fuzzyMatch(pattern, name string) bool {
	if !strings.Contains(pattern, "*") {
		return strings.Contains(strings.ToLower(name), strings.ToLower(pattern))
	}
	parts := strings.Split(strings.ToLower(pattern), "*")
	rest := strings.ToLower(name)
	if !strings.HasPrefix(rest, parts[0]) {
		return false
	}
	rest = rest[len(parts[0]):]
	for i, part := range parts[1:] {
		last := i == len(parts)-2
		if last {
			return strings.HasSuffix(rest, part)
		}
		j := strings.Index(rest, part)
		if j < 0 {
			return false
		}
		rest = rest[j+len(part):]
	}
	return true
}

func (w *world) describeVSwitches(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	ids := make([]string, 0, len(w.vswitches))
	for id := range w.vswitches {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []map[string]any
	for _, id := range ids {
		v := w.vswitches[id]
		if v.Region != region {
			continue
		}
		if f := p["VSwitchId"]; f != "" && f != v.ID {
			continue
		}
		if f := p["VpcId"]; f != "" && f != v.VpcID {
			continue
		}
		if f := p["ZoneId"]; f != "" && f != v.Zone {
			continue
		}
		if f := p["IsDefault"]; f != "" && (f == "true") != v.IsDefault {
			continue
		}
		out = append(out, map[string]any{
			"VSwitchId": v.ID, "VpcId": v.VpcID, "ZoneId": v.Zone, "CidrBlock": v.CIDR, "IsDefault": v.IsDefault,
			"Status": "Available", "VSwitchName": "", "AvailableIpAddressCount": 252,
		})
	}
	page, size := pageParams(p, 10)
	start := min((page-1)*size, len(out))
	end := min(start+size, len(out))
	return map[string]any{
		"VSwitches":  map[string]any{"VSwitch": append([]map[string]any{}, out[start:end]...)},
		"TotalCount": len(out), "PageNumber": page, "PageSize": size,
	}, nil
}

func (w *world) createSecurityGroup(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	if tok := p["ClientToken"]; tok != "" {
		if id, ok := w.sgTokens[region+"|"+tok]; ok {
			return map[string]any{"SecurityGroupId": id}, nil
		}
	}
	vpc := p["VpcId"]
	if vpc == "" || w.vpcs[region] != vpc {
		return nil, errorf(http.StatusNotFound, "InvalidVpcId.NotFound", "The specified VpcId %q does not exist.", vpc)
	}
	tags := readTags(p)
	if aerr := checkTags(tags); aerr != nil {
		return nil, aerr
	}
	w.sgN++
	id := fmt.Sprintf("sg-%s%018x", regionCode(region), w.sgN)
	w.sgs[id] = &SecurityGroup{ID: id, Region: region, VpcID: vpc, Name: p["SecurityGroupName"], Tags: tags}
	if tok := p["ClientToken"]; tok != "" {
		w.sgTokens[region+"|"+tok] = id
	}
	return map[string]any{"SecurityGroupId": id}, nil
}

func (w *world) authorizeSecurityGroup(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, aerr := w.checkRegion(p); aerr != nil {
		return nil, aerr
	}
	sg := w.sgs[p["SecurityGroupId"]]
	if sg == nil {
		return nil, errorf(http.StatusNotFound, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId %q does not exist.", p["SecurityGroupId"])
	}
	var rules []Rule
	if p["IpProtocol"] != "" {
		src := p["SourceCidrIp"]
		if src == "" {
			src = p["Ipv6SourceCidrIp"]
		}
		rules = append(rules, Rule{Protocol: p["IpProtocol"], PortRange: p["PortRange"], SourceCIDR: src, Policy: p["Policy"]})
	}
	for _, r := range indexed(p, "Permissions", "IpProtocol", "PortRange", "SourceCidrIp", "Policy") {
		rules = append(rules, Rule{Protocol: r["IpProtocol"], PortRange: r["PortRange"], SourceCIDR: r["SourceCidrIp"], Policy: r["Policy"]})
	}
	if len(rules) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"Permissions\" that is mandatory for processing this request is not supplied.")
	}
	for i := range rules {
		r := &rules[i]
		r.Protocol = strings.ToLower(r.Protocol)
		if r.Policy == "" {
			r.Policy = "accept"
		}
		switch r.Protocol {
		case "tcp", "udp", "icmp", "all":
		default:
			return nil, errorf(http.StatusBadRequest, "InvalidIpProtocol.Malformed", "The specified IpProtocol %q is not valid.", r.Protocol)
		}
		var lo, hi int
		if _, err := fmt.Sscanf(r.PortRange, "%d/%d", &lo, &hi); err != nil || lo < -1 || hi > 65535 || lo > hi {
			return nil, errorf(http.StatusBadRequest, "InvalidPortRange.Malformed", "The specified PortRange %q is not valid.", r.PortRange)
		}
		if _, _, err := net.ParseCIDR(r.SourceCIDR); err != nil {
			if net.ParseIP(r.SourceCIDR) == nil {
				return nil, errorf(http.StatusBadRequest, "InvalidSourceCidrIp.Malformed", "The specified SourceCidrIp %q is not valid.", r.SourceCIDR)
			}
		}
		for _, have := range sg.Rules {
			if have == *r {
				return nil, errorf(http.StatusBadRequest, "InvalidPermission.Duplicate", "The specified rule already exists.")
			}
		}
	}
	sg.Rules = append(sg.Rules, rules...)
	return map[string]any{}, nil
}

func (w *world) deleteSecurityGroup(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, aerr := w.checkRegion(p); aerr != nil {
		return nil, aerr
	}
	id := p["SecurityGroupId"]
	if w.sgs[id] == nil {
		return nil, errorf(http.StatusNotFound, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId %q does not exist.", id)
	}
	for _, in := range w.instances {
		if in.Released {
			continue
		}
		for _, g := range in.SecurityGroupIDs {
			if g == id {
				return nil, errorf(http.StatusForbidden, "DependencyViolation", "There is still instance(s) in the specified security group.")
			}
		}
	}
	delete(w.sgs, id)
	for k, v := range w.sgTokens {
		if v == id {
			delete(w.sgTokens, k) // a later create with the token makes a new group
		}
	}
	return map[string]any{}, nil
}

func (w *world) importKeyPair(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	name, body := p["KeyPairName"], strings.TrimSpace(p["PublicKeyBody"])
	if name == "" || body == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "KeyPairName and PublicKeyBody are mandatory.")
	}
	fields := strings.Fields(body)
	var raw []byte
	var err error
	if len(fields) >= 2 {
		raw, err = base64.StdEncoding.DecodeString(fields[1])
	}
	if len(fields) < 2 || err != nil || !(strings.HasPrefix(fields[0], "ssh-") || strings.HasPrefix(fields[0], "ecdsa-")) {
		return nil, errorf(http.StatusBadRequest, "InvalidPublicKeyBody.Malformed", "The specified PublicKeyBody is not a valid OpenSSH public key.")
	}
	if w.keyPairs[region+"|"+name] != nil {
		return nil, errorf(http.StatusBadRequest, "KeyPair.AlreadyExist", "The key pair %q already exists.", name)
	}
	sum := md5.Sum(raw)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02x", b)
	}
	tags := readTags(p)
	if aerr := checkTags(tags); aerr != nil {
		return nil, aerr
	}
	kp := &KeyPair{Region: region, Name: name, Fingerprint: strings.Join(hexes, ":"), PublicKey: body, Tags: tags}
	w.keyPairs[region+"|"+name] = kp
	return map[string]any{"KeyPairName": name, "KeyPairFingerPrint": kp.Fingerprint}, nil
}

func (w *world) deleteKeyPairs(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	names, err := parseJSONList(p["KeyPairNames"])
	if err != nil || len(names) == 0 {
		return nil, errorf(http.StatusBadRequest, "InvalidKeyPairNames.Malformed", "KeyPairNames must be a JSON array of names.")
	}
	for _, n := range names {
		delete(w.keyPairs, region+"|"+n)
	}
	return map[string]any{}, nil
}

func (w *world) taggedInstances(p map[string]string) ([]*instance, *apiError) {
	region, aerr := w.checkRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	if p["ResourceType"] != "instance" {
		return nil, errorf(http.StatusBadRequest, "InvalidResourceType.NotSupported", "fakeecs tags only instances, got %q.", p["ResourceType"])
	}
	var out []*instance
	for _, v := range indexed(p, "ResourceId") {
		in := w.instances[v[""]]
		if in == nil || in.Released || in.Region != region {
			return nil, errorf(http.StatusNotFound, "InvalidResourceId.NotFound", "The specified resource %q does not exist.", v[""])
		}
		out = append(out, in)
	}
	if len(out) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"ResourceId\" that is mandatory for processing this request is not supplied.")
	}
	return out, nil
}

func (w *world) tagResources(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ins, aerr := w.taggedInstances(p)
	if aerr != nil {
		return nil, aerr
	}
	tags := readTags(p)
	if aerr := checkTags(tags); aerr != nil {
		return nil, aerr
	}
	for _, in := range ins {
		n := len(in.Tags)
		for k := range tags {
			if _, ok := in.Tags[k]; !ok {
				n++
			}
		}
		if n > 20 {
			return nil, errorf(http.StatusBadRequest, "InvalidTagCount", "An instance can have at most 20 tags.")
		}
		for k, v := range tags {
			in.Tags[k] = v
		}
	}
	return map[string]any{}, nil
}

func (w *world) untagResources(p map[string]string) (map[string]any, *apiError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ins, aerr := w.taggedInstances(p)
	if aerr != nil {
		return nil, aerr
	}
	keys := indexed(p, "TagKey")
	for _, in := range ins {
		if p["All"] == "true" {
			in.Tags = map[string]string{}
		}
		for _, k := range keys {
			delete(in.Tags, k[""])
		}
	}
	return map[string]any{}, nil
}
