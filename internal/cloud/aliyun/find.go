package aliyun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// Tags Hadron keeps on an instance for its own bookkeeping; they are not
// reported in cloud.Instance.Tags.
const (
	tagManagedSG  = "hadron:managed-security-group"
	tagManagedKey = "hadron:managed-key-pair"
	tagIdemKey    = "hadron:idempotency-key"
)

// errGone marks an instance that vanished (released, deleted, reclaimed)
// while Create waited for it.
var errGone = errors.New("instance is gone")

// findInstanceByID returns the instance, or an error wrapping
// cloud.ErrNotFound when ECS does not list it.
func (b *Backend) findInstanceByID(ctx context.Context, c *ecs.Client, region, id string) (*ecs.Instance, error) {
	ids, _ := json.Marshal([]string{id})
	resp, err := call(ctx, b, "DescribeInstances", func() (*ecs.DescribeInstancesResponse, error) {
		req := ecs.CreateDescribeInstancesRequest()
		req.RegionId = region
		req.InstanceIds = string(ids)
		return c.DescribeInstances(req)
	})
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && isNotFoundCode(apiErr.Code) {
			return nil, fmt.Errorf("ECS instance %s in %s: %w", id, region, cloud.ErrNotFound)
		}
		return nil, fmt.Errorf("reading ECS instance %s: %w", id, err)
	}
	for i := range resp.Instances.Instance {
		if resp.Instances.Instance[i].InstanceId == id {
			return &resp.Instances.Instance[i], nil
		}
	}
	return nil, fmt.Errorf("ECS instance %s in %s: %w", id, region, cloud.ErrNotFound)
}

// findInstancesByTag lists the instances of a region carrying tag key=value.
func (b *Backend) findInstancesByTag(ctx context.Context, c *ecs.Client, region, key, value string) ([]ecs.Instance, error) {
	var out []ecs.Instance
	for page := 1; ; page++ {
		resp, err := call(ctx, b, "DescribeInstances", func() (*ecs.DescribeInstancesResponse, error) {
			req := ecs.CreateDescribeInstancesRequest()
			req.RegionId = region
			req.Tag = &[]ecs.DescribeInstancesTag{{Key: key, Value: value}}
			req.PageSize = "100"
			req.PageNumber = requests.NewInteger(page)
			return c.DescribeInstances(req)
		})
		if err != nil {
			return nil, fmt.Errorf("listing ECS instances tagged %s in %s: %w", key, region, err)
		}
		out = append(out, resp.Instances.Instance...)
		if len(resp.Instances.Instance) == 0 || len(out) >= resp.TotalCount {
			return out, nil
		}
	}
}

// isGone reports an instance that counts as not found: deleted, or a spot
// instance being reclaimed.
func isGone(in *ecs.Instance) bool {
	if in.Status == "Deleted" {
		return true
	}
	for _, l := range in.OperationLocks.LockReason {
		if l.LockReason == "Recycling" {
			return true
		}
	}
	return false
}

// instanceState maps ECS statuses to cloud.Instance states.
func instanceState(status string) string {
	switch status {
	case "Pending", "Starting":
		return "pending"
	case "Running":
		return "running"
	case "Stopping":
		return "stopping"
	case "Stopped":
		return "stopped"
	case "Deleted":
		return "terminated"
	}
	return strings.ToLower(status)
}

// waitInstanceRunning polls until the instance runs. A not-found instance is
// tolerated for notFoundTimeout (eventual consistency after RunInstances);
// after that, or when it is Deleted or reclaimed, the error wraps errGone.
func (b *Backend) waitInstanceRunning(ctx context.Context, c *ecs.Client, region, id string) (*ecs.Instance, error) {
	start := time.Now()
	delay := b.poll
	for {
		in, err := b.findInstanceByID(ctx, c, region, id)
		switch {
		case errors.Is(err, cloud.ErrNotFound):
			if time.Since(start) >= b.notFoundTimeout {
				return nil, fmt.Errorf("ECS instance %s not found %s after it was created: %w", id, b.notFoundTimeout, errGone)
			}
		case err != nil:
			return nil, err
		case isGone(in):
			return nil, fmt.Errorf("ECS instance %s is %s: %w", id, in.Status, errGone)
		case in.Status == "Running":
			return in, nil
		case in.Status == "Stopping" || in.Status == "Stopped":
			return nil, fmt.Errorf("ECS instance %s is %s while waiting for it to run", id, in.Status)
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("waiting for ECS instance %s to run: %w", id, err)
		}
		delay = min(delay*3/2, b.maxPoll)
	}
}

// waitInstanceDeleted polls until the instance is no longer listed, or is
// listed as Deleted.
func (b *Backend) waitInstanceDeleted(ctx context.Context, c *ecs.Client, region, id string) error {
	delay := b.poll
	for {
		in, err := b.findInstanceByID(ctx, c, region, id)
		switch {
		case errors.Is(err, cloud.ErrNotFound):
			return nil
		case err != nil:
			return err
		case in.Status == "Deleted":
			return nil
		}
		if err := sleep(ctx, delay); err != nil {
			return fmt.Errorf("waiting for ECS instance %s to be deleted: %w", id, err)
		}
		delay = min(delay*3/2, b.maxPoll)
	}
}

// toInstance maps an ECS instance to the cloud-independent view.
func (b *Backend) toInstance(in *ecs.Instance) *cloud.Instance {
	out := &cloud.Instance{
		ID:           b.qualifyID(in.RegionId, in.InstanceId),
		Cloud:        CloudName,
		Region:       in.RegionId,
		Zone:         in.ZoneId,
		InstanceType: in.InstanceType,
		ImageID:      in.ImageId,
		State:        instanceState(in.Status),
		Spot:         in.SpotStrategy != "" && in.SpotStrategy != "NoSpot",
		Tags:         map[string]string{},
	}
	if isGone(in) {
		out.State = "terminated"
	}
	for _, t := range in.Tags.Tag {
		k, v := t.TagKey, t.TagValue
		if k == "" {
			k, v = t.Key, t.Value
		}
		switch k {
		case tagManagedSG:
			out.ManagedSecurityGroupID = v
		case tagManagedKey:
			out.ManagedKeyName = v
		default:
			out.Tags[k] = v
		}
	}
	out.Name = out.Tags["Name"]
	if out.Name == "" {
		out.Name = in.InstanceName
	}
	if len(in.PublicIpAddress.IpAddress) > 0 {
		out.PublicIP = in.PublicIpAddress.IpAddress[0]
	} else if in.EipAddress.IpAddress != "" {
		out.PublicIP = in.EipAddress.IpAddress
	}
	if ips := in.VpcAttributes.PrivateIpAddress.IpAddress; len(ips) > 0 {
		out.PrivateIP = ips[0]
	} else if ips := in.InnerIpAddress.IpAddress; len(ips) > 0 {
		out.PrivateIP = ips[0]
	}
	for _, layout := range []string{"2006-01-02T15:04Z", time.RFC3339, "2006-01-02T15:04:05Z"} {
		if t, err := time.Parse(layout, in.CreationTime); err == nil {
			out.LaunchTime = t
			break
		}
	}
	return out
}

// qualifyID returns the id Hadron hands out: the plain ECS id in the
// backend's region, "region/id" elsewhere.
func (b *Backend) qualifyID(region, id string) string {
	if region == "" || region == b.region {
		return id
	}
	return region + "/" + id
}

// parseID splits an id from qualifyID (or a user's import id).
func (b *Backend) parseID(id string) (region, ecsID string, err error) {
	region, ecsID = b.region, id
	if r, rest, ok := strings.Cut(id, "/"); ok {
		region, ecsID = r, rest
		if err := ValidateRegion(region); err != nil {
			return "", "", fmt.Errorf("instance id %q: %w", id, err)
		}
	}
	if !strings.HasPrefix(ecsID, "i-") || strings.ContainsAny(ecsID, "/ ") {
		return "", "", fmt.Errorf("instance id %q is not an ECS instance id (want i-... or REGION/i-...)", id)
	}
	return region, ecsID, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
