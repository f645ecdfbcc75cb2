package aws

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// Get returns instance id of the backend's region. A terminated or
// shutting-down instance (a reclaimed spot instance, say) or an unknown id
// gives an error wrapping cloud.ErrNotFound.
func (b *Backend) Get(ctx context.Context, id string) (*cloud.Instance, error) {
	in, err := findInstanceByID(ctx, b.client(""), id)
	if err != nil {
		return nil, err
	}
	if state := instanceState(in); gone(state) {
		return nil, fmt.Errorf("EC2 instance (%s) is %s%s: %w", id, state, stateReason(in), cloud.ErrNotFound)
	}
	return toInstance(b.cfg.Region, in), nil
}

// Delete terminates instance id, waits until it is terminated, then removes
// the security group and key pair Hadron created for it (read from the
// instance's hadron:managed-sg and hadron:managed-key tags). An unknown or
// already terminated instance is success (its managed resources are still
// removed when the instance is visible).
func (b *Backend) Delete(ctx context.Context, id string) error {
	c := b.client("")
	in, err := findInstanceByID(ctx, c, id)
	if errors.Is(err, cloud.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting EC2 instance (%s): %w", id, err)
	}
	if instanceState(in) != stateTerminated {
		_, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		if err != nil && errorCode(err) != codeInstanceNotFound {
			return fmt.Errorf("terminating EC2 instance (%s): %w", id, err)
		}
		if err := b.waitInstanceTerminated(ctx, c, id); err != nil {
			return fmt.Errorf("deleting EC2 instance (%s): %w", id, err)
		}
	}
	managed := toInstance(b.cfg.Region, in)
	if err := b.deleteManaged(ctx, c, managed.ManagedSecurityGroupID, managed.ManagedKeyName); err != nil {
		return fmt.Errorf("deleting EC2 instance (%s): %w", id, err)
	}
	return nil
}

var _ cloud.Starter = (*Backend)(nil)

// Start implements cloud.Starter.
func (b *Backend) Start(ctx context.Context, id string) (*cloud.Instance, error) {
	c := b.client("")
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		if errorCode(err) == codeInstanceNotFound {
			return nil, fmt.Errorf("starting EC2 instance (%s): %w: %w", id, cloud.ErrNotFound, err)
		}
		return nil, fmt.Errorf("starting EC2 instance (%s): %w", id, err)
	}
	in, err := b.waitInstanceRunning(ctx, c, id)
	if err != nil {
		return nil, fmt.Errorf("starting EC2 instance (%s): %w", id, err)
	}
	return toInstance(b.cfg.Region, in), nil
}

var _ cloud.ManagedRemover = (*Backend)(nil)

// RemoveManaged implements cloud.ManagedRemover.
func (b *Backend) RemoveManaged(ctx context.Context, id, groupID, keyName string) error {
	if err := b.deleteManaged(ctx, b.client(""), groupID, keyName); err != nil {
		return fmt.Errorf("cleaning up after EC2 instance (%s): %w", id, err)
	}
	return nil
}

var _ cloud.Tagger = (*Backend)(nil)

// SetTags implements cloud.Tagger: it makes tags the instance's tags (and its
// volumes'), removing other tags except the ones Hadron manages itself
// (hadron:idempotency-key, hadron:managed-sg, hadron:managed-key) and aws: tags.
func (b *Backend) SetTags(ctx context.Context, id string, tags map[string]string) error {
	c := b.client("")
	in, err := findInstanceByID(ctx, c, id)
	if err != nil {
		return fmt.Errorf("tagging EC2 instance (%s): %w", id, err)
	}
	if state := instanceState(in); gone(state) {
		return fmt.Errorf("tagging EC2 instance (%s): it is %s: %w", id, state, cloud.ErrNotFound)
	}
	resources := []string{id}
	for _, bd := range in.BlockDeviceMappings {
		if bd.Ebs != nil && bd.Ebs.VolumeId != nil {
			resources = append(resources, *bd.Ebs.VolumeId)
		}
	}
	var remove []types.Tag
	for _, t := range in.Tags {
		k := awssdk.ToString(t.Key)
		if _, keep := tags[k]; keep || internalTag(k) {
			continue
		}
		remove = append(remove, types.Tag{Key: awssdk.String(k)})
	}
	sort.Slice(remove, func(i, j int) bool { return *remove[i].Key < *remove[j].Key })
	if len(remove) > 0 {
		if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: resources, Tags: remove}); err != nil {
			return fmt.Errorf("removing tags from EC2 instance (%s): %w", id, err)
		}
	}
	if len(tags) > 0 {
		specs := tagSpecifications(tags, types.ResourceTypeInstance)
		if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: resources, Tags: specs[0].Tags}); err != nil {
			return fmt.Errorf("tagging EC2 instance (%s): %w", id, err)
		}
	}
	return nil
}

func internalTag(k string) bool {
	switch k {
	case TagIdempotencyKey, TagManagedSecurityGroup, TagManagedKeyPair:
		return true
	}
	return strings.HasPrefix(k, "aws:")
}
