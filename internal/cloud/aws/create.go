package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// MaxGenerations bounds how many client-token generations Create steps
// through (each one a terminated instance of an earlier create of the same
// resource) before giving up.
const MaxGenerations = 64

// ClientTokenLength is the length of the ClientToken sent to RunInstances
// (EC2 accepts up to 64 ASCII characters).
const ClientTokenLength = 64

// Create launches one instance from spec, trying spec.Candidates in order,
// and waits until it runs. See cloud.Backend.
//
// Before launching anything it looks for a live instance tagged with
// spec.IdempotencyKey in the candidates' regions (left by a create that was
// interrupted after RunInstances) and adopts it. Each RunInstances carries
// cloud.ClientToken(key, candidate, generation): a token whose instance is
// already shutting down or terminated steps to the next generation.
//
// When an instance was launched but waiting for it failed (ctx ended, it
// stopped), Create returns both the instance and the error, so that the
// caller can record the id and destroy it later.
func (b *Backend) Create(ctx context.Context, spec cloud.Spec) (*cloud.Instance, error) {
	if err := validateSpec(spec); err != nil {
		return nil, fmt.Errorf("creating EC2 instance (%s): %w", spec.Name, err)
	}
	l := &launcher{b: b, spec: spec, regions: map[string]*regionPrep{}}

	if in, region, cand, err := l.findAdoptable(ctx); err != nil {
		return nil, fmt.Errorf("creating EC2 instance (%s): %w", spec.Name, err)
	} else if in != nil {
		id := awssdk.ToString(in.InstanceId)
		attempts := []cloud.Attempt{{Candidate: cand, Message: "adopted " + id + ", launched by an earlier interrupted create"}}
		return l.finish(ctx, region, id, in, attempts)
	}

	var attempts []cloud.Attempt
	for _, cand := range spec.Candidates {
		region := cand.Region
		if region == "" {
			region = b.cfg.Region
		}
		prep, err := l.prepare(ctx, region)
		if err != nil {
			return nil, l.fail(ctx, fmt.Errorf("creating EC2 instance (%s): %w", spec.Name, err), true)
		}
		in, att, err := l.run(ctx, cand, region, prep)
		attempts = append(attempts, att)
		if err != nil {
			if isCapacityCode(att.Code) {
				continue
			}
			// The cloud answered with an error code: nothing was launched and
			// the managed resources can go. Otherwise (transport error, ctx)
			// an instance may exist; keep them for the retry.
			return nil, l.fail(ctx, fmt.Errorf("creating EC2 instance (%s) in %s: %w", spec.Name, cand, err), att.Code != "")
		}
		id := awssdk.ToString(in.InstanceId)
		inst, err := l.finish(ctx, region, id, in, attempts)
		if err != nil && errors.Is(err, errUnexpectedState) && inst != nil && gone(inst.State) {
			// Terminated while launching (e.g. spot capacity vanished):
			// record it and move on.
			attempts[len(attempts)-1].Code = codeInstanceTerminatedRun
			attempts[len(attempts)-1].Message = fmt.Sprintf("instance %s went %s while launching: %v", id, inst.State, err)
			continue
		}
		if err == nil {
			l.cleanupOtherRegions(ctx, region)
		}
		return inst, err
	}
	return nil, l.fail(ctx, &cloud.AttemptsError{Cloud: CloudName, Attempts: attempts}, true)
}

// finish waits for instance id to run and maps it.
func (l *launcher) finish(ctx context.Context, region, id string, launched *types.Instance, attempts []cloud.Attempt) (*cloud.Instance, error) {
	running, err := l.b.waitInstanceRunning(ctx, l.b.client(region), id)
	if running == nil {
		running = launched
	}
	inst := toInstance(region, running)
	inst.Attempts = attempts
	if err != nil {
		return inst, fmt.Errorf("creating EC2 instance (%s): %w", l.spec.Name, err)
	}
	return inst, nil
}

func validateSpec(spec cloud.Spec) error {
	if spec.IdempotencyKey == "" {
		return errors.New("spec has no idempotency key")
	}
	if len(spec.Candidates) == 0 {
		return errors.New("spec has no candidates")
	}
	for i, c := range spec.Candidates {
		if c.InstanceType == "" {
			return fmt.Errorf("candidate %d has no instance type", i)
		}
	}
	for _, c := range spec.AllowedCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("allowed CIDR %q: %w", c, err)
		}
	}
	if spec.RuntimePort < 0 || spec.RuntimePort > 65535 {
		return fmt.Errorf("runtime port %d out of range", spec.RuntimePort)
	}
	if spec.SpotMaxPrice < 0 {
		return fmt.Errorf("spot max price %v is negative", spec.SpotMaxPrice)
	}
	return nil
}

// launcher holds one Create's state: per-region preparation (image, managed
// security group and key pair), reused across that region's candidates.
type launcher struct {
	b       *Backend
	spec    cloud.Spec
	regions map[string]*regionPrep
	order   []string
}

type regionPrep struct {
	image      Image
	groups     []string
	keyName    string
	managedSG  string // id, when Hadron manages it
	managedKey string // name, when Hadron manages it
}

// findAdoptable returns a pending or running instance tagged with the
// spec's idempotency key, in the candidates' regions.
func (l *launcher) findAdoptable(ctx context.Context) (*types.Instance, string, cloud.Candidate, error) {
	seen := map[string]bool{}
	for _, cand := range l.spec.Candidates {
		region := cand.Region
		if region == "" {
			region = l.b.cfg.Region
		}
		if seen[region] {
			continue
		}
		seen[region] = true
		found, err := findInstances(ctx, l.b.client(region),
			filter("tag:"+TagIdempotencyKey, keyTagValue(l.spec.IdempotencyKey)),
			filter("instance-state-name", statePending, stateRunning))
		if err != nil {
			return nil, "", cloud.Candidate{}, err
		}
		if len(found) == 0 {
			continue
		}
		sort.Slice(found, func(i, j int) bool {
			return awssdk.ToTime(found[i].LaunchTime).Before(awssdk.ToTime(found[j].LaunchTime))
		})
		in := found[0]
		return &in, region, candidateOf(l.spec.Candidates, region, &in), nil
	}
	return nil, "", cloud.Candidate{}, nil
}

// candidateOf returns the candidate in would have come from.
func candidateOf(cands []cloud.Candidate, region string, in *types.Instance) cloud.Candidate {
	zone := ""
	if in.Placement != nil {
		zone = awssdk.ToString(in.Placement.AvailabilityZone)
	}
	spot := in.InstanceLifecycle == types.InstanceLifecycleTypeSpot
	for _, c := range cands {
		r := c.Region
		if r == "" {
			r = region
		}
		if r == region && (c.Zone == "" || c.Zone == zone) && c.InstanceType == string(in.InstanceType) && c.Spot == spot {
			return c
		}
	}
	return cloud.Candidate{Region: region, Zone: zone, InstanceType: string(in.InstanceType), Spot: spot}
}

// prepare finds the image and ensures the managed security group and key
// pair of region, once per Create.
func (l *launcher) prepare(ctx context.Context, region string) (*regionPrep, error) {
	if p, ok := l.regions[region]; ok {
		return p, nil
	}
	c := l.b.client(region)
	p := &regionPrep{}
	var err error
	if l.spec.ImageID != "" {
		p.image, err = lookupImage(ctx, c, l.spec.ImageID)
	} else {
		p.image, err = defaultImage(ctx, c)
	}
	if err != nil {
		return nil, fmt.Errorf("in %s: %w", region, err)
	}
	// Register before creating anything, so that fail cleans up what exists.
	l.regions[region] = p
	l.order = append(l.order, region)
	if len(l.spec.SecurityGroupIDs) > 0 {
		p.groups = l.spec.SecurityGroupIDs
	} else {
		id, err := ensureSecurityGroup(ctx, c, l.spec)
		if id != "" {
			p.managedSG, p.groups = id, []string{id}
		}
		if err != nil {
			return nil, fmt.Errorf("in %s: %w", region, err)
		}
	}
	switch {
	case l.spec.KeyName != "":
		p.keyName = l.spec.KeyName
	case l.spec.SSHPublicKey != "":
		name, err := ensureKeyPair(ctx, c, l.spec)
		if err != nil {
			return nil, fmt.Errorf("in %s: %w", region, err)
		}
		p.keyName, p.managedKey = name, name
	}
	return p, nil
}

// fail removes the managed resources of this Create when cleanup is true,
// and returns err (joined with any cleanup error).
func (l *launcher) fail(ctx context.Context, err error, cleanup bool) error {
	if !cleanup {
		return err
	}
	var errs []error
	for _, region := range l.order {
		p := l.regions[region]
		if cerr := l.b.deleteManaged(ctx, l.b.client(region), p.managedSG, p.managedKey); cerr != nil {
			errs = append(errs, fmt.Errorf("cleaning up in %s: %w", region, cerr))
		}
	}
	if len(errs) == 0 {
		return err
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// cleanupOtherRegions removes, best effort, the managed resources prepared in
// regions other than the one the instance landed in: nothing uses them, and a
// later Create there would recreate them.
func (l *launcher) cleanupOtherRegions(ctx context.Context, landed string) {
	for _, region := range l.order {
		if region == landed {
			continue
		}
		p := l.regions[region]
		_ = l.b.deleteManaged(ctx, l.b.client(region), p.managedSG, p.managedKey)
	}
}

// run launches cand, stepping through client-token generations whose
// instances are already gone. It returns the launched instance and the attempt.
func (l *launcher) run(ctx context.Context, cand cloud.Candidate, region string, prep *regionPrep) (*types.Instance, cloud.Attempt, error) {
	c := l.b.client(region)
	shown := cand
	shown.Region = region
	for gen := 0; gen < MaxGenerations; gen++ {
		att := cloud.Attempt{Candidate: shown}
		token := cloud.ClientToken(l.spec.IdempotencyKey, cand, gen, ClientTokenLength)
		out, err := c.RunInstances(ctx, l.runInput(cand, token, prep))
		if err != nil {
			att.Code, att.Message, att.RequestID = errorCode(err), errorMessage(err), requestID(err)
			if att.Code == codeIdempotentMismatch {
				live, ferr := liveInstanceWithToken(ctx, c, token)
				if ferr != nil {
					return nil, att, ferr
				}
				if live == "" {
					continue // the token's instance is gone: next generation
				}
				return nil, att, fmt.Errorf("instance %s was launched earlier for this resource with other parameters (client token %s); terminate or import it: %w", live, token, err)
			}
			return nil, att, fmt.Errorf("running instance: %w", err)
		}
		att.RequestID, _ = awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
		if len(out.Instances) == 0 {
			return nil, att, fmt.Errorf("running instance: RunInstances returned no instance (request id %s)", att.RequestID)
		}
		in := out.Instances[0]
		if gone(instanceState(&in)) {
			continue // destroyed earlier generation: step to the next token
		}
		return &in, att, nil
	}
	return nil, cloud.Attempt{Candidate: shown, Code: "ClientTokensExhausted"},
		fmt.Errorf("running instance: the client tokens of %d generations all belong to terminated instances", MaxGenerations)
}

// liveInstanceWithToken returns the id of a not-gone instance launched with
// token, or "".
func liveInstanceWithToken(ctx context.Context, c *ec2.Client, token string) (string, error) {
	found, err := findInstances(ctx, c, filter("client-token", token))
	if err != nil {
		return "", err
	}
	for i := range found {
		if !gone(instanceState(&found[i])) {
			return awssdk.ToString(found[i].InstanceId), nil
		}
	}
	return "", nil
}

// runInput builds the RunInstances request. It must be deterministic: the
// same spec, candidate and preparation give byte-identical requests, or EC2
// answers IdempotentParameterMismatch to a retry.
func (l *launcher) runInput(cand cloud.Candidate, token string, prep *regionPrep) *ec2.RunInstancesInput {
	spec := l.spec
	tags := hadronTags(spec)
	if prep.managedSG != "" {
		tags[TagManagedSecurityGroup] = prep.managedSG
	}
	if prep.managedKey != "" {
		tags[TagManagedKeyPair] = prep.managedKey
	}
	resources := []types.ResourceType{types.ResourceTypeInstance, types.ResourceTypeVolume, types.ResourceTypeNetworkInterface}
	if cand.Spot {
		resources = append(resources, types.ResourceTypeSpotInstancesRequest)
	}
	in := &ec2.RunInstancesInput{
		ImageId:      awssdk.String(prep.image.ID),
		InstanceType: types.InstanceType(cand.InstanceType),
		MinCount:     awssdk.Int32(1),
		MaxCount:     awssdk.Int32(1),
		ClientToken:  awssdk.String(token),
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:              types.HttpTokensStateRequired,
			HttpEndpoint:            types.InstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: awssdk.Int32(2),
		},
		NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{
			DeviceIndex:              awssdk.Int32(0),
			AssociatePublicIpAddress: awssdk.Bool(spec.PublicIP),
			DeleteOnTermination:      awssdk.Bool(true),
			Groups:                   prep.groups,
		}},
		TagSpecifications: tagSpecifications(tags, resources...),
	}
	if spec.SubnetID != "" {
		in.NetworkInterfaces[0].SubnetId = awssdk.String(spec.SubnetID)
	}
	if cand.Zone != "" {
		in.Placement = &types.Placement{AvailabilityZone: awssdk.String(cand.Zone)}
	}
	if prep.keyName != "" {
		in.KeyName = awssdk.String(prep.keyName)
	}
	if spec.RootVolumeSizeGB > 0 || spec.RootVolumeType != "" {
		ebs := &types.EbsBlockDevice{DeleteOnTermination: awssdk.Bool(true)}
		if spec.RootVolumeSizeGB > 0 {
			ebs.VolumeSize = awssdk.Int32(int32(spec.RootVolumeSizeGB))
		}
		if spec.RootVolumeType != "" {
			ebs.VolumeType = types.VolumeType(spec.RootVolumeType)
		}
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: awssdk.String(prep.image.RootDeviceName), Ebs: ebs}}
	}
	if cand.Spot {
		opts := &types.SpotMarketOptions{
			SpotInstanceType:             types.SpotInstanceTypeOneTime,
			InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate,
		}
		if spec.SpotMaxPrice > 0 {
			opts.MaxPrice = awssdk.String(strconv.FormatFloat(spec.SpotMaxPrice, 'f', -1, 64))
		}
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot, SpotOptions: opts}
	}
	if spec.UserData != "" {
		in.UserData = awssdk.String(base64.StdEncoding.EncodeToString([]byte(spec.UserData)))
	}
	return in
}

// tagSpecifications tags each resource type with tags, sorted by key so that
// requests are deterministic.
func tagSpecifications(tags map[string]string, resources ...types.ResourceType) []types.TagSpecification {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	list := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		list = append(list, types.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
	}
	out := make([]types.TagSpecification, 0, len(resources))
	for _, r := range resources {
		out = append(out, types.TagSpecification{ResourceType: r, Tags: list})
	}
	return out
}

// toInstance maps an EC2 instance of region.
func toInstance(region string, in *types.Instance) *cloud.Instance {
	ci := &cloud.Instance{
		ID:           awssdk.ToString(in.InstanceId),
		Cloud:        CloudName,
		Region:       region,
		InstanceType: string(in.InstanceType),
		State:        instanceState(in),
		Spot:         in.InstanceLifecycle == types.InstanceLifecycleTypeSpot,
		PublicIP:     awssdk.ToString(in.PublicIpAddress),
		PrivateIP:    awssdk.ToString(in.PrivateIpAddress),
		LaunchTime:   awssdk.ToTime(in.LaunchTime),
		ImageID:      awssdk.ToString(in.ImageId),
		Tags:         make(map[string]string, len(in.Tags)),
	}
	if in.Placement != nil {
		ci.Zone = awssdk.ToString(in.Placement.AvailabilityZone)
	}
	for _, t := range in.Tags {
		ci.Tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
		switch awssdk.ToString(t.Key) {
		case "Name":
			ci.Name = awssdk.ToString(t.Value)
		case TagManagedSecurityGroup:
			ci.ManagedSecurityGroupID = awssdk.ToString(t.Value)
		case TagManagedKeyPair:
			ci.ManagedKeyName = awssdk.ToString(t.Value)
		}
	}
	return ci
}
