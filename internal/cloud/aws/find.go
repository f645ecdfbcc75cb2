package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// Instance states.
const (
	statePending      = "pending"
	stateRunning      = "running"
	stateShuttingDown = "shutting-down"
	stateTerminated   = "terminated"
	stateStopping     = "stopping"
	stateStopped      = "stopped"
)

func instanceState(in *types.Instance) string {
	if in == nil || in.State == nil {
		return ""
	}
	return string(in.State.Name)
}

func gone(state string) bool { return state == stateShuttingDown || state == stateTerminated }

// findInstanceByID returns the instance in any state, terminated included. An
// unknown id gives an error wrapping cloud.ErrNotFound.
func findInstanceByID(ctx context.Context, c *ec2.Client, id string) (*types.Instance, error) {
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if errorCode(err) == codeInstanceNotFound {
		return nil, fmt.Errorf("describing EC2 instance (%s): %w: %w", id, cloud.ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("describing EC2 instance (%s): %w", id, err)
	}
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if awssdk.ToString(r.Instances[i].InstanceId) == id {
				return &r.Instances[i], nil
			}
		}
	}
	return nil, fmt.Errorf("describing EC2 instance (%s): %w", id, cloud.ErrNotFound)
}

// findInstances lists the instances matching filters, following pages.
func findInstances(ctx context.Context, c *ec2.Client, filters ...types.Filter) ([]types.Instance, error) {
	var out []types.Instance
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing EC2 instances: %w", err)
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: awssdk.String(name), Values: values}
}

// statusFunc refreshes an instance: it returns the instance (nil when not
// found) and its state ("" when not found).
type statusFunc func(ctx context.Context) (*types.Instance, string, error)

// statusInstance is the status function of instance id. Not-found is reported
// as state "" without error until notFoundUntil, and as an error wrapping
// cloud.ErrNotFound after it.
func statusInstance(c *ec2.Client, id string, notFoundUntil time.Time, now func() time.Time) statusFunc {
	return func(ctx context.Context) (*types.Instance, string, error) {
		in, err := findInstanceByID(ctx, c, id)
		if errors.Is(err, cloud.ErrNotFound) {
			if now().Before(notFoundUntil) {
				return nil, "", nil
			}
			return nil, "", err
		}
		if err != nil {
			return nil, "", err
		}
		return in, instanceState(in), nil
	}
}

// errUnexpectedState is wrapped when a waiter sees a state it cannot leave.
var errUnexpectedState = errors.New("unexpected state")

// waitForState polls status until it reports one of target. States in
// pending (and "", not found yet) keep it waiting; any other state fails. It
// backs off from interval to maxInterval and honours ctx.
func waitForState(ctx context.Context, status statusFunc, pending, target []string, interval, maxInterval time.Duration) (*types.Instance, error) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	wait := interval
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		in, state, err := status(ctx)
		if err != nil {
			return in, err
		}
		switch {
		case contains(target, state):
			return in, nil
		case state == "" || contains(pending, state):
		default:
			return in, fmt.Errorf("%w %q%s (waiting for %v)", errUnexpectedState, state, stateReason(in), target)
		}
		timer.Reset(wait)
		wait = min(time.Duration(float64(wait)*1.5), maxInterval)
	}
}

func stateReason(in *types.Instance) string {
	if in == nil || in.StateReason == nil {
		return ""
	}
	return fmt.Sprintf(": %s: %s", awssdk.ToString(in.StateReason.Code), awssdk.ToString(in.StateReason.Message))
}

// waitInstanceRunning waits until id runs, tolerating not-found for the
// backend's NotFoundTimeout (eventual consistency after RunInstances).
func (b *Backend) waitInstanceRunning(ctx context.Context, c *ec2.Client, id string) (*types.Instance, error) {
	status := statusInstance(c, id, time.Now().Add(b.cfg.NotFoundTimeout), time.Now)
	in, err := waitForState(ctx, status, []string{statePending}, []string{stateRunning}, b.cfg.PollInterval, b.cfg.MaxPollInterval)
	if err != nil {
		return in, fmt.Errorf("waiting for EC2 instance (%s) to run: %w", id, err)
	}
	return in, nil
}

// waitInstanceTerminated waits until id is terminated or unknown.
func (b *Backend) waitInstanceTerminated(ctx context.Context, c *ec2.Client, id string) error {
	status := func(ctx context.Context) (*types.Instance, string, error) {
		in, err := findInstanceByID(ctx, c, id)
		if errors.Is(err, cloud.ErrNotFound) {
			return nil, stateTerminated, nil
		}
		if err != nil {
			return nil, "", err
		}
		return in, instanceState(in), nil
	}
	pending := []string{statePending, stateRunning, stateStopping, stateStopped, stateShuttingDown}
	if _, err := waitForState(ctx, status, pending, []string{stateTerminated}, b.cfg.PollInterval, b.cfg.MaxPollInterval); err != nil {
		return fmt.Errorf("waiting for EC2 instance (%s) to terminate: %w", id, err)
	}
	return nil
}

// retryOnCodes calls fn until it succeeds, fails with a code not in codes,
// timeout passes or ctx ends, backing off between tries.
func (b *Backend) retryOnCodes(ctx context.Context, timeout time.Duration, codes []string, fn func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	timer := time.NewTimer(0)
	defer timer.Stop()
	wait := b.cfg.PollInterval
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		err := fn(ctx)
		if err == nil || !contains(codes, errorCode(err)) || time.Now().Add(wait).After(deadline) {
			return err
		}
		timer.Reset(wait)
		wait = min(time.Duration(float64(wait)*1.5), b.cfg.MaxPollInterval)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
