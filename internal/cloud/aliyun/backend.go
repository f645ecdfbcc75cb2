package aliyun

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// CloudName is the backend's name in HCL.
const CloudName = "aliyun"

// maxGenerations bounds how many ClientToken generations Create steps through
// for one candidate when earlier tokens belong to released instances.
const maxGenerations = 16

var (
	_ cloud.Backend = (*Backend)(nil)
	_ cloud.Tagger  = (*Backend)(nil)
)

// Name implements cloud.Backend.
func (b *Backend) Name() string { return CloudName }

// Create implements cloud.Backend. It first adopts a live instance that
// carries the spec's idempotency key (a crashed earlier Create), then asks
// DescribeAvailableResource which candidates have stock, and tries the rest in
// order with RunInstances and a ClientToken per candidate, moving on after
// capacity errors. It returns once the instance is Running. An empty
// IdempotencyKey disables both adoption and ClientTokens.
func (b *Backend) Create(ctx context.Context, spec cloud.Spec) (*cloud.Instance, error) {
	if len(spec.Candidates) == 0 {
		return nil, fmt.Errorf("creating ECS instance %q: no candidates", spec.Name)
	}
	run := &createRun{b: b, spec: spec, regions: map[string]*regionRun{}}
	cands := make([]cloud.Candidate, len(spec.Candidates))
	for i, c := range spec.Candidates {
		if c.Region == "" {
			c.Region = b.region
		}
		if c.InstanceType == "" {
			return nil, fmt.Errorf("creating ECS instance %q: candidate %d has no instance type", spec.Name, i+1)
		}
		if err := ValidateZone(c.Region, c.Zone); err != nil {
			return nil, fmt.Errorf("creating ECS instance %q: %w", spec.Name, err)
		}
		cands[i] = c
	}

	if spec.IdempotencyKey != "" {
		inst, err := run.adopt(ctx, cands)
		if err != nil || inst != nil {
			return inst, err
		}
	}

	var attempts []cloud.Attempt
	for _, cand := range cands {
		inst, att, err := run.try(ctx, cand)
		attempts = append(attempts, att)
		if err == nil {
			inst.Attempts = attempts
			run.cleanup(ctx, cand.Region)
			return inst, nil
		}
		if att.Code != "" && isCapacityError(att.Code) {
			continue
		}
		run.cleanup(ctx, "")
		return nil, fmt.Errorf("creating ECS instance %q (%s): %w", spec.Name, cand, err)
	}
	run.cleanup(ctx, "")
	return nil, &cloud.AttemptsError{Cloud: CloudName, Attempts: attempts}
}

// instanceClient splits a Hadron instance id into region and ECS id and
// returns the region's client.
func (b *Backend) instanceClient(ctx context.Context, id string) (region, ecsID string, c *ecs.Client, err error) {
	if region, ecsID, err = b.parseID(id); err != nil {
		return "", "", nil, err
	}
	c, err = b.client(ctx, region)
	return region, ecsID, c, err
}

// Get implements cloud.Backend.
func (b *Backend) Get(ctx context.Context, id string) (*cloud.Instance, error) {
	region, ecsID, c, err := b.instanceClient(ctx, id)
	if err != nil {
		return nil, err
	}
	in, err := b.findInstanceByID(ctx, c, region, ecsID)
	if err != nil {
		return nil, err
	}
	if isGone(in) {
		return nil, fmt.Errorf("ECS instance %s is %s: %w", id, goneReason(in), cloud.ErrNotFound)
	}
	return b.toInstance(in), nil
}

func goneReason(in *ecs.Instance) string {
	if in.Status == "Deleted" {
		return "deleted"
	}
	return "being reclaimed (spot)"
}

// Delete implements cloud.Backend: DeleteInstance with Force, wait until it
// is gone, then remove the managed security group and key pair unless
// another live instance still uses them.
func (b *Backend) Delete(ctx context.Context, id string) error {
	region, ecsID, c, err := b.instanceClient(ctx, id)
	if err != nil {
		return err
	}
	in, err := b.findInstanceByID(ctx, c, region, ecsID)
	if errors.Is(err, cloud.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting ECS instance %s: %w", id, err)
	}
	managed := b.toInstance(in)
	if in.Status != "Deleted" {
		_, err = call(ctx, b, "DeleteInstance", func() (*ecs.DeleteInstanceResponse, error) {
			req := ecs.CreateDeleteInstanceRequest()
			req.RegionId = region
			req.InstanceId = ecsID
			req.Force = "true"
			req.TerminateSubscription = "true"
			return c.DeleteInstance(req)
		}, func(e *APIError) bool { return strings.HasPrefix(e.Code, "IncorrectInstanceStatus") })
		var apiErr *APIError
		if errors.As(err, &apiErr) && isNotFoundCode(apiErr.Code) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("deleting ECS instance %s: %w", id, err)
		}
	}
	if err := b.waitInstanceDeleted(ctx, c, region, ecsID); err != nil {
		return fmt.Errorf("deleting ECS instance %s: %w", id, err)
	}
	if err := b.removeManaged(ctx, c, region, ecsID, managed.ManagedSecurityGroupID, managed.ManagedKeyName); err != nil {
		return fmt.Errorf("deleting ECS instance %s: %w", id, err)
	}
	return nil
}

var _ cloud.Starter = (*Backend)(nil)

// Start implements cloud.Starter: StartInstance, then wait until Running.
func (b *Backend) Start(ctx context.Context, id string) (*cloud.Instance, error) {
	region, ecsID, c, err := b.instanceClient(ctx, id)
	if err != nil {
		return nil, err
	}
	_, err = call(ctx, b, "StartInstance", func() (*ecs.StartInstanceResponse, error) {
		req := ecs.CreateStartInstanceRequest()
		req.InstanceId = ecsID
		return c.StartInstance(req)
	})
	if err != nil {
		return nil, fmt.Errorf("starting ECS instance %s: %w", id, err)
	}
	in, err := b.waitInstanceRunning(ctx, c, region, ecsID)
	if err != nil {
		return nil, fmt.Errorf("starting ECS instance %s: %w", id, err)
	}
	return b.toInstance(in), nil
}

var _ cloud.ManagedRemover = (*Backend)(nil)

// RemoveManaged implements cloud.ManagedRemover.
func (b *Backend) RemoveManaged(ctx context.Context, id, sgID, keyName string) error {
	region, ecsID, c, err := b.instanceClient(ctx, id)
	if err != nil {
		return err
	}
	if err := b.removeManaged(ctx, c, region, ecsID, sgID, keyName); err != nil {
		return fmt.Errorf("cleaning up after ECS instance %s: %w", id, err)
	}
	return nil
}

// removeManaged deletes the security group and key pair Hadron made for
// instance owner, each unless another live instance still uses it.
func (b *Backend) removeManaged(ctx context.Context, c *ecs.Client, region, owner, sgID, keyName string) error {
	if sgID != "" {
		if err := b.deleteSecurityGroup(ctx, c, region, sgID, owner, true); err != nil {
			return fmt.Errorf("managed security group: %w", err)
		}
	}
	if keyName != "" {
		if err := b.deleteKeyPair(ctx, c, region, keyName, owner); err != nil {
			return fmt.Errorf("managed key pair: %w", err)
		}
	}
	return nil
}

// SetTags implements cloud.Tagger: the instance's tags become
// cloud.Tags of its name, idempotency key and tags, in place.
func (b *Backend) SetTags(ctx context.Context, id string, tags map[string]string) error {
	region, ecsID, c, err := b.instanceClient(ctx, id)
	if err != nil {
		return err
	}
	in, err := b.findInstanceByID(ctx, c, region, ecsID)
	if err != nil {
		return fmt.Errorf("tagging ECS instance %s: %w", id, err)
	}
	cur := b.toInstance(in)
	want := cloud.Tags(cloud.Spec{Name: cur.Name, IdempotencyKey: cur.Tags[tagIdemKey], Tags: tags})
	var add []ecs.TagResourcesTag
	for _, k := range sortedKeys(want) {
		if v, ok := cur.Tags[k]; !ok || v != want[k] {
			add = append(add, ecs.TagResourcesTag{Key: k, Value: want[k]})
		}
	}
	var remove []string
	for _, k := range sortedKeys(cur.Tags) {
		if _, ok := want[k]; !ok {
			remove = append(remove, k)
		}
	}
	if len(remove) > 0 {
		_, err := call(ctx, b, "UntagResources", func() (*ecs.UntagResourcesResponse, error) {
			req := ecs.CreateUntagResourcesRequest()
			req.RegionId = region
			req.ResourceType = "instance"
			req.ResourceId = &[]string{ecsID}
			req.TagKey = &remove
			return c.UntagResources(req)
		})
		if err != nil {
			return fmt.Errorf("tagging ECS instance %s: %w", id, err)
		}
	}
	if len(add) > 0 {
		_, err := call(ctx, b, "TagResources", func() (*ecs.TagResourcesResponse, error) {
			req := ecs.CreateTagResourcesRequest()
			req.RegionId = region
			req.ResourceType = "instance"
			req.ResourceId = &[]string{ecsID}
			req.Tag = &add
			return c.TagResources(req)
		})
		if err != nil {
			return fmt.Errorf("tagging ECS instance %s: %w", id, err)
		}
	}
	return nil
}

// deleteSecurityGroup removes a Hadron-managed security group unless a live
// instance other than owner still uses it. With wait, DependencyViolation
// (the deleted instance's network interface is not released yet) is retried
// for up to the cleanup timeout.
func (b *Backend) deleteSecurityGroup(ctx context.Context, c *ecs.Client, region, sgID, owner string, wait bool) error {
	users, err := call(ctx, b, "DescribeInstances", func() (*ecs.DescribeInstancesResponse, error) {
		req := ecs.CreateDescribeInstancesRequest()
		req.RegionId = region
		req.SecurityGroupId = sgID
		req.PageSize = "100"
		return c.DescribeInstances(req)
	})
	if err != nil {
		return err
	}
	for _, in := range users.Instances.Instance {
		if in.InstanceId != owner && !isGone(&in) {
			return nil // still in use by another instance of this resource
		}
	}
	// The timeout bounds the retries, not a call in flight: every attempt
	// gets its answer, so the error says what ECS last said.
	deadline := time.Now().Add(b.cleanupTimeout)
	delay := b.poll
	for {
		_, err = call(ctx, b, "DeleteSecurityGroup", func() (*ecs.DeleteSecurityGroupResponse, error) {
			req := ecs.CreateDeleteSecurityGroupRequest()
			req.RegionId = region
			req.SecurityGroupId = sgID
			return c.DeleteSecurityGroup(req)
		})
		var apiErr *APIError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &apiErr) && strings.HasPrefix(apiErr.Code, "InvalidSecurityGroupId.NotFound"):
			return nil
		case wait && errors.As(err, &apiErr) && apiErr.Code == "DependencyViolation":
			left := time.Until(deadline)
			if left <= 0 {
				return fmt.Errorf("security group %s still in use after %s: %w (%w)", sgID, b.cleanupTimeout, err, context.DeadlineExceeded)
			}
			if serr := sleep(ctx, min(delay, left)); serr != nil {
				return fmt.Errorf("security group %s still in use: %w (%w)", sgID, err, serr)
			}
			delay = min(delay*3/2, b.maxPoll)
		default:
			return err
		}
	}
}

// deleteKeyPair removes a Hadron-managed key pair unless a live instance
// other than owner still uses it.
func (b *Backend) deleteKeyPair(ctx context.Context, c *ecs.Client, region, name, owner string) error {
	users, err := call(ctx, b, "DescribeInstances", func() (*ecs.DescribeInstancesResponse, error) {
		req := ecs.CreateDescribeInstancesRequest()
		req.RegionId = region
		req.KeyPairName = name
		req.PageSize = "100"
		return c.DescribeInstances(req)
	})
	if err != nil {
		return err
	}
	for _, in := range users.Instances.Instance {
		if in.InstanceId != owner && !isGone(&in) {
			return nil
		}
	}
	names, _ := json.Marshal([]string{name})
	_, err = call(ctx, b, "DeleteKeyPairs", func() (*ecs.DeleteKeyPairsResponse, error) {
		req := ecs.CreateDeleteKeyPairsRequest()
		req.RegionId = region
		req.KeyPairNames = string(names)
		return c.DeleteKeyPairs(req)
	})
	return err
}

// createRun is the state of one Create: per-region lookups made once, and
// the managed resources it made or reused, for cleanup.
type createRun struct {
	b       *Backend
	spec    cloud.Spec
	regions map[string]*regionRun
}

type regionRun struct {
	region  string
	c       *ecs.Client
	images  map[string]string   // instance type -> image id
	stock   map[string]stockMap // type|market -> stock by zone
	vsw     map[string]*ecs.VSwitch
	sgs     map[string]string // vpc -> managed security group id
	keyName string
}

// stockMap is DescribeAvailableResource's answer for one type and market:
// zone -> has stock; nil when the call failed (no filtering then).
type stockMap struct {
	zones     map[string]bool
	order     []string
	requestID string
}

func (r *createRun) region(ctx context.Context, region string) (*regionRun, error) {
	if rr, ok := r.regions[region]; ok {
		return rr, nil
	}
	c, err := r.b.client(ctx, region)
	if err != nil {
		return nil, err
	}
	rr := &regionRun{region: region, c: c, images: map[string]string{}, stock: map[string]stockMap{},
		vsw: map[string]*ecs.VSwitch{}, sgs: map[string]string{}}
	r.regions[region] = rr
	return rr, nil
}

// adopt finds a live instance tagged with the spec's idempotency key in the
// candidates' regions: an earlier Create that crashed after RunInstances.
func (r *createRun) adopt(ctx context.Context, cands []cloud.Candidate) (*cloud.Instance, error) {
	seen := map[string]bool{}
	for _, cand := range cands {
		if seen[cand.Region] {
			continue
		}
		seen[cand.Region] = true
		rr, err := r.region(ctx, cand.Region)
		if err != nil {
			return nil, err
		}
		found, err := r.b.findInstancesByTag(ctx, rr.c, cand.Region, tagIdemKey, idemTagValue(r.spec.IdempotencyKey))
		if err != nil {
			return nil, fmt.Errorf("creating ECS instance %q: %w", r.spec.Name, err)
		}
		for _, in := range found {
			switch in.Status {
			case "Pending", "Starting", "Running":
			default:
				continue
			}
			if isGone(&in) {
				continue
			}
			running, err := r.b.waitInstanceRunning(ctx, rr.c, cand.Region, in.InstanceId)
			if errors.Is(err, errGone) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("creating ECS instance %q: adopting %s: %w", r.spec.Name, in.InstanceId, err)
			}
			inst := r.b.toInstance(running)
			matched := cloud.Candidate{Region: inst.Region, Zone: inst.Zone, InstanceType: inst.InstanceType, Spot: inst.Spot}
			for _, c := range cands {
				if c.Region == inst.Region && (c.Zone == "" || c.Zone == inst.Zone) && c.InstanceType == inst.InstanceType && c.Spot == inst.Spot {
					matched = c
					break
				}
			}
			inst.Attempts = []cloud.Attempt{{Candidate: matched}}
			return inst, nil
		}
	}
	return nil, nil
}

// tags are the tags of everything this run creates: cloud.Tags, with an
// idempotency key too long for an ECS tag value (128) replaced by its digest.
func (r *createRun) tags() map[string]string {
	t := cloud.Tags(r.spec)
	if v, ok := t[tagIdemKey]; ok {
		t[tagIdemKey] = idemTagValue(v)
	}
	return t
}

func idemTagValue(key string) string {
	if len(key) <= 128 {
		return key
	}
	return "sha256:" + digest(64, "idempotency-key", key)
}

// skip is a candidate that cannot be tried, recorded as an attempt.
type skip struct {
	code, message, requestID string
}

func (s *skip) Error() string { return s.code + ": " + s.message }

// Attempt codes Hadron itself records.
const (
	codeNoStock             = "NoStock"
	codeVSwitchZoneMismatch = "Hadron.VSwitchZoneMismatch"
	codeNoDefaultVSwitch    = "Hadron.NoDefaultVSwitch"
)

// try launches one candidate. The attempt is always filled in; err is nil on
// success.
func (r *createRun) try(ctx context.Context, cand cloud.Candidate) (*cloud.Instance, cloud.Attempt, error) {
	att := cloud.Attempt{Candidate: cand}
	fail := func(err error) (*cloud.Instance, cloud.Attempt, error) {
		var s *skip
		var apiErr *APIError
		switch {
		case errors.As(err, &s):
			att.Code, att.Message, att.RequestID = s.code, s.message, s.requestID
		case errors.As(err, &apiErr):
			att.Code, att.Message, att.RequestID = apiErr.Code, apiErr.Message, apiErr.RequestID
		default:
			att.Code, att.Message = "Error", err.Error()
		}
		return nil, att, err
	}
	rr, err := r.region(ctx, cand.Region)
	if err != nil {
		return fail(err)
	}
	zone, err := r.placement(ctx, rr, cand)
	if err != nil {
		return fail(err)
	}
	vsw, err := r.vswitch(ctx, rr, zone)
	if err != nil {
		return fail(err)
	}
	image, err := r.image(ctx, rr, cand.InstanceType)
	if err != nil {
		return fail(err)
	}
	sgIDs := r.spec.SecurityGroupIDs
	managedSG := ""
	if len(sgIDs) == 0 {
		if managedSG, err = r.securityGroup(ctx, rr, vsw.VpcId); err != nil {
			return fail(err)
		}
		sgIDs = []string{managedSG}
	}
	keyName := r.spec.KeyName
	managedKey := ""
	if keyName == "" && r.spec.SSHPublicKey != "" {
		if managedKey, err = r.keyPair(ctx, rr); err != nil {
			return fail(err)
		}
		keyName = managedKey
	}
	tags := r.tags()
	if managedSG != "" {
		tags[tagManagedSG] = managedSG
	}
	if managedKey != "" {
		tags[tagManagedKey] = managedKey
	}

	for gen := 0; gen < maxGenerations; gen++ {
		token := ""
		if r.spec.IdempotencyKey != "" {
			token = cloud.ClientToken(r.spec.IdempotencyKey, cand, gen, 64)
		}
		resp, err := call(ctx, r.b, "RunInstances", func() (*ecs.RunInstancesResponse, error) {
			return rr.c.RunInstances(r.runRequest(cand, zone, vsw.VSwitchId, image, sgIDs, keyName, tags, token))
		})
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Code == "IdempotentParameterMismatch" && token != "" {
			// The token was spent on an earlier instance with other parameters
			// (for example its managed security group was deleted with it);
			// adopt found no live instance of this key, so step past it.
			continue
		}
		if err != nil {
			return fail(err)
		}
		if len(resp.InstanceIdSets.InstanceIdSet) == 0 {
			return fail(fmt.Errorf("ECS RunInstances returned no instance id (request id %s)", resp.RequestId))
		}
		id := resp.InstanceIdSets.InstanceIdSet[0]
		in, err := r.b.waitInstanceRunning(ctx, rr.c, cand.Region, id)
		if errors.Is(err, errGone) && token != "" {
			continue // this token's instance was released: next generation
		}
		if err != nil {
			return fail(err)
		}
		att.RequestID = resp.RequestId
		return r.b.toInstance(in), att, nil
	}
	return fail(fmt.Errorf("ECS instances of the first %d client tokens for %s are all gone", maxGenerations, cand))
}

func (r *createRun) runRequest(cand cloud.Candidate, zone, vswID, image string, sgIDs []string, keyName string, tags map[string]string, token string) *ecs.RunInstancesRequest {
	spec := r.spec
	req := ecs.CreateRunInstancesRequest()
	req.RegionId = cand.Region
	req.ZoneId = zone
	req.InstanceType = cand.InstanceType
	req.ImageId = image
	req.VSwitchId = vswID
	req.SecurityGroupIds = &sgIDs
	req.KeyPairName = keyName
	req.ClientToken = token
	req.Amount = "1"
	req.InstanceChargeType = "PostPaid"
	req.InstanceName = instanceName(spec.Name)
	req.Description = "Created by Hadron"
	req.SystemDiskCategory = spec.RootVolumeType
	if req.SystemDiskCategory == "" {
		req.SystemDiskCategory = "cloud_essd"
	}
	if spec.RootVolumeSizeGB > 0 {
		req.SystemDiskSize = fmt.Sprint(spec.RootVolumeSizeGB)
	}
	if spec.PublicIP {
		req.InternetMaxBandwidthOut = requests.NewInteger(r.b.bandwidth)
		req.InternetChargeType = "PayByTraffic"
	}
	if spec.UserData != "" {
		req.UserData = base64.StdEncoding.EncodeToString([]byte(spec.UserData))
	}
	switch {
	case !cand.Spot:
		req.SpotStrategy = "NoSpot"
	case spec.SpotMaxPrice > 0:
		req.SpotStrategy = "SpotWithPriceLimit"
		req.SpotPriceLimit = requests.NewFloat(spec.SpotMaxPrice)
	default:
		req.SpotStrategy = "SpotAsPriceGo"
	}
	keys := sortedKeys(tags) // a stable order keeps retried requests identical
	t := make([]ecs.RunInstancesTag, 0, len(keys))
	for _, k := range keys {
		t = append(t, ecs.RunInstancesTag{Key: k, Value: tags[k]})
	}
	req.Tag = &t
	return req
}

// instanceName makes a valid ECS instance name (2-128 characters, starting
// with a letter; letters, digits, '.', '_', '-', ':') from the user's name.
func instanceName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == ':':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := b.String()
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		s = "hadron-" + s
	}
	if len(s) < 2 {
		s += "-0"
	}
	if len(s) > 128 {
		s = s[:128]
	}
	return s
}

// cleanup removes the managed security groups and key pairs this run made or
// reused in regions other than keep ("" = all regions) when no instance
// landed there. It is best effort and skipped when ctx is done: a retried
// Create reuses them.
func (r *createRun) cleanup(ctx context.Context, keep string) {
	if ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for region, rr := range r.regions {
		if region == keep {
			continue
		}
		for _, sg := range rr.sgs {
			_ = r.b.deleteSecurityGroup(ctx, rr.c, region, sg, "", false)
		}
		if rr.keyName != "" {
			_ = r.b.deleteKeyPair(ctx, rr.c, region, rr.keyName, "")
		}
	}
}
