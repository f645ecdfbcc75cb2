package aws

import (
	"context"
	"errors"
	"fmt"

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
