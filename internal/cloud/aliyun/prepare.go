package aliyun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

func market(spot bool) string {
	if spot {
		return "spot"
	}
	return "on-demand"
}

// stockFor asks DescribeAvailableResource once per region, type and market
// which zones have stock. A failed call yields a nil map: no filtering.
func (r *createRun) stockFor(ctx context.Context, rr *regionRun, typ string, spot bool) stockMap {
	key := typ + "|" + market(spot)
	if s, ok := rr.stock[key]; ok {
		return s
	}
	resp, err := call(ctx, r.b, "DescribeAvailableResource", func() (*ecs.DescribeAvailableResourceResponse, error) {
		req := ecs.CreateDescribeAvailableResourceRequest()
		req.RegionId = rr.region
		req.DestinationResource = "InstanceType"
		req.InstanceType = typ
		req.InstanceChargeType = "PostPaid"
		req.SpotStrategy = "NoSpot"
		if spot {
			req.SpotStrategy = "SpotAsPriceGo"
		}
		return rr.c.DescribeAvailableResource(req)
	})
	var s stockMap
	if err == nil {
		s = stockMap{zones: map[string]bool{}, requestID: resp.RequestId}
		for _, z := range resp.AvailableZones.AvailableZone {
			has := false
			if z.Status == "Available" {
				for _, res := range z.AvailableResources.AvailableResource {
					for _, sr := range res.SupportedResources.SupportedResource {
						if sr.Value == typ && sr.Status == "Available" {
							has = true
						}
					}
				}
			}
			s.zones[z.ZoneId] = has
			s.order = append(s.order, z.ZoneId)
		}
		sort.Strings(s.order)
	}
	rr.stock[key] = s
	return s
}

// placement returns the zone to launch a candidate in, or a *skip with code
// NoStock when DescribeAvailableResource reports no stock there. A candidate
// without a zone gets the vSwitch's zone (when SubnetID is set) or the first
// zone with stock.
func (r *createRun) placement(ctx context.Context, rr *regionRun, cand cloud.Candidate) (string, error) {
	stock := r.stockFor(ctx, rr, cand.InstanceType, cand.Spot)
	zone := cand.Zone
	if zone == "" && r.spec.SubnetID != "" {
		vsw, err := r.vswitch(ctx, rr, "")
		if err != nil {
			return "", err
		}
		zone = vsw.ZoneId
	}
	if zone != "" {
		if stock.zones != nil && !stock.zones[zone] {
			return "", &skip{code: codeNoStock, requestID: stock.requestID,
				message: fmt.Sprintf("DescribeAvailableResource reports no %s stock of %s in %s", market(cand.Spot), cand.InstanceType, zone)}
		}
		return zone, nil
	}
	if stock.zones == nil {
		return "", nil // unknown stock: the default vSwitch lookup picks a zone
	}
	for _, z := range stock.order {
		if stock.zones[z] {
			return z, nil
		}
	}
	return "", &skip{code: codeNoStock, requestID: stock.requestID,
		message: fmt.Sprintf("DescribeAvailableResource reports no %s stock of %s in any zone of %s", market(cand.Spot), cand.InstanceType, rr.region)}
}

// vswitch returns the spec's vSwitch (which must be in zone, when zone is
// set) or the default vSwitch of zone (of the region when zone is empty).
func (r *createRun) vswitch(ctx context.Context, rr *regionRun, zone string) (*ecs.VSwitch, error) {
	key := "default|" + zone
	if r.spec.SubnetID != "" {
		key = "id|" + r.spec.SubnetID
	}
	v, ok := rr.vsw[key]
	if !ok {
		resp, err := call(ctx, r.b, "DescribeVSwitches", func() (*ecs.DescribeVSwitchesResponse, error) {
			req := ecs.CreateDescribeVSwitchesRequest()
			req.RegionId = rr.region
			req.PageSize = "50"
			if r.spec.SubnetID != "" {
				req.VSwitchId = r.spec.SubnetID
			} else {
				req.IsDefault = "true"
				req.ZoneId = zone
			}
			return rr.c.DescribeVSwitches(req)
		})
		if err != nil {
			return nil, fmt.Errorf("looking up vSwitch in %s: %w", rr.region, err)
		}
		list := resp.VSwitches.VSwitch
		sort.Slice(list, func(i, j int) bool { return list[i].ZoneId < list[j].ZoneId })
		for i := range list {
			if r.spec.SubnetID == "" || list[i].VSwitchId == r.spec.SubnetID {
				v = &list[i]
				break
			}
		}
		if v == nil && r.spec.SubnetID != "" {
			return nil, fmt.Errorf("vSwitch %s not found in %s (request id %s)", r.spec.SubnetID, rr.region, resp.RequestId)
		}
		if v == nil {
			where := zone
			if where == "" {
				where = rr.region
			}
			return nil, &skip{code: codeNoDefaultVSwitch, requestID: resp.RequestId,
				message: fmt.Sprintf("no default vSwitch in %s; create one or set the vSwitch (subnet) id", where)}
		}
		rr.vsw[key] = v
	}
	if zone != "" && v.ZoneId != zone {
		return nil, &skip{code: codeVSwitchZoneMismatch, message: fmt.Sprintf("vSwitch %s is in %s, not %s", v.VSwitchId, v.ZoneId, zone)}
	}
	return v, nil
}

var ubuntuRE = regexp.MustCompile(`^ubuntu_(\d+)_(\d+)_x64`)

// image returns spec.ImageID, or the newest current Ubuntu LTS system image
// for the instance type (DescribeImages).
func (r *createRun) image(ctx context.Context, rr *regionRun, typ string) (string, error) {
	if r.spec.ImageID != "" {
		return r.spec.ImageID, nil
	}
	if id, ok := rr.images[typ]; ok {
		return id, nil
	}
	// System images are listed and filtered here (as the alicloud provider's
	// name_regex does) rather than trusting ImageName's fuzzy matching.
	var images []ecs.Image
	requestID := ""
	for page := 1; page <= 20; page++ {
		resp, err := call(ctx, r.b, "DescribeImages", func() (*ecs.DescribeImagesResponse, error) {
			req := ecs.CreateDescribeImagesRequest()
			req.RegionId = rr.region
			req.ImageOwnerAlias = "system"
			req.OSType = "linux"
			req.Architecture = "x86_64"
			req.Status = "Available"
			req.InstanceType = typ
			req.PageSize = "100"
			req.PageNumber = requests.NewInteger(page)
			return rr.c.DescribeImages(req)
		})
		if err != nil {
			return "", fmt.Errorf("looking up the default Ubuntu image in %s: %w", rr.region, err)
		}
		requestID = resp.RequestId
		images = append(images, resp.Images.Image...)
		if len(resp.Images.Image) == 0 || len(images) >= resp.TotalCount {
			break
		}
	}
	id := pickUbuntu(images)
	if id == "" {
		return "", fmt.Errorf("no Ubuntu LTS system image for %s in %s (request id %s); set image_id", typ, rr.region, requestID)
	}
	rr.images[typ] = id
	return id, nil
}

// pickUbuntu chooses the highest Ubuntu LTS release (even year, .04) and,
// within it, the newest image.
func pickUbuntu(images []ecs.Image) string {
	type cand struct {
		major, minor int
		created, id  string
	}
	var best *cand
	for _, im := range images {
		m := ubuntuRE.FindStringSubmatch(im.ImageId)
		if m == nil || im.Architecture != "" && im.Architecture != "x86_64" {
			continue
		}
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		if major%2 != 0 || minor != 4 {
			continue
		}
		c := cand{major, minor, im.CreationTime, im.ImageId}
		if best == nil || c.major > best.major || c.major == best.major && (c.created > best.created || c.created == best.created && c.id > best.id) {
			best = &c
		}
	}
	if best == nil {
		return ""
	}
	return best.id
}

// digest is a short, stable hex name component derived from parts.
func digest(n int, parts ...string) string {
	h := sha256.Sum256([]byte("hadron/aliyun\x00" + strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])[:n]
}

// securityGroup creates (idempotently, by ClientToken) the managed security
// group of this resource in vpc, allowing SSH and the runtime port only from
// spec.AllowedCIDRs.
func (r *createRun) securityGroup(ctx context.Context, rr *regionRun, vpc string) (string, error) {
	if id, ok := rr.sgs[vpc]; ok {
		return id, nil
	}
	spec := r.spec
	token := digest(64, "sg", spec.IdempotencyKey, rr.region, vpc)
	tags := r.tags()
	keys := sortedKeys(tags)
	t := make([]ecs.CreateSecurityGroupTag, 0, len(keys))
	for _, k := range keys {
		t = append(t, ecs.CreateSecurityGroupTag{Key: k, Value: tags[k]})
	}
	resp, err := call(ctx, r.b, "CreateSecurityGroup", func() (*ecs.CreateSecurityGroupResponse, error) {
		req := ecs.CreateCreateSecurityGroupRequest()
		req.RegionId = rr.region
		req.VpcId = vpc
		req.SecurityGroupName = "hadron-" + digest(12, spec.IdempotencyKey, spec.Name)
		req.Description = "Hadron-managed: SSH and the node runtime from allowed CIDRs"
		req.SecurityGroupType = "normal"
		if spec.IdempotencyKey != "" {
			req.ClientToken = token
		}
		req.Tag = &t
		return rr.c.CreateSecurityGroup(req)
	})
	if err != nil {
		return "", fmt.Errorf("creating managed security group in %s: %w", rr.region, err)
	}
	sg := resp.SecurityGroupId
	rr.sgs[vpc] = sg
	ports := []int{22}
	if spec.RuntimePort > 0 && spec.RuntimePort != 22 {
		ports = append(ports, spec.RuntimePort)
	}
	for _, cidr := range spec.AllowedCIDRs {
		for _, port := range ports {
			_, err := call(ctx, r.b, "AuthorizeSecurityGroup", func() (*ecs.AuthorizeSecurityGroupResponse, error) {
				req := ecs.CreateAuthorizeSecurityGroupRequest()
				req.RegionId = rr.region
				req.SecurityGroupId = sg
				req.IpProtocol = "tcp"
				req.PortRange = fmt.Sprintf("%d/%d", port, port)
				if strings.Contains(cidr, ":") {
					req.Ipv6SourceCidrIp = cidr
				} else {
					req.SourceCidrIp = cidr
				}
				req.Policy = "accept"
				req.NicType = "intranet"
				req.Description = fmt.Sprintf("hadron: tcp %d", port)
				req.ClientToken = digest(64, "rule", token, cidr, strconv.Itoa(port))
				return rr.c.AuthorizeSecurityGroup(req)
			})
			var apiErr *APIError
			if errors.As(err, &apiErr) && apiErr.Code == "InvalidPermission.Duplicate" {
				err = nil // a retried Create already added it
			}
			if err != nil {
				return "", fmt.Errorf("authorizing tcp %d from %s on %s: %w", port, cidr, sg, err)
			}
		}
	}
	return sg, nil
}

// keyPair imports spec.SSHPublicKey as this resource's managed key pair.
func (r *createRun) keyPair(ctx context.Context, rr *regionRun) (string, error) {
	if rr.keyName != "" {
		return rr.keyName, nil
	}
	spec := r.spec
	name := "hadron-" + digest(20, "key", spec.IdempotencyKey, strings.TrimSpace(spec.SSHPublicKey))
	tags := r.tags()
	keys := sortedKeys(tags)
	t := make([]ecs.ImportKeyPairTag, 0, len(keys))
	for _, k := range keys {
		t = append(t, ecs.ImportKeyPairTag{Key: k, Value: tags[k]})
	}
	_, err := call(ctx, r.b, "ImportKeyPair", func() (*ecs.ImportKeyPairResponse, error) {
		req := ecs.CreateImportKeyPairRequest()
		req.RegionId = rr.region
		req.KeyPairName = name
		req.PublicKeyBody = strings.TrimSpace(spec.SSHPublicKey)
		req.Tag = &t
		return rr.c.ImportKeyPair(req)
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == "KeyPair.AlreadyExist" {
		err = nil // same name means same key: the name is derived from it
	}
	if err != nil {
		return "", fmt.Errorf("importing managed key pair in %s: %w", rr.region, err)
	}
	rr.keyName = name
	return name, nil
}
