// Package aws is Hadron's Amazon EC2 backend (cloud.Backend) on the AWS SDK
// for Go v2. SDK types never leave this package.
//
// What it gets right, where GPU users of other tools get hurt:
//   - RunInstances always carries a ClientToken derived from the spec's
//     idempotency key, the candidate and a generation, so a create retried
//     after a crash finds the instance instead of launching a second one; a
//     token whose instance was already terminated (an earlier destroy) steps
//     to the next generation, deterministically.
//   - Capacity and limit errors move on to the next candidate; when every
//     candidate fails, *cloud.AttemptsError lists each attempt with its error
//     code and request id.
//   - Throttling and 5xx answers are retried by the SDK's standard retryer
//     (capacity errors are not, they move on at once); InvalidInstanceID.NotFound
//     right after launch is tolerated for a bounded time.
//   - Get reports terminated and shutting-down instances (a reclaimed spot
//     instance) as cloud.ErrNotFound, and Delete treats them as done.
//   - IMDSv2 is required; instance, volumes and network interface are tagged;
//     a managed security group (SSH and the runtime port from the allowed CIDRs
//     only) and a managed key pair are created when none are given and deleted
//     with the instance.
//   - Backend implements catalog.Live for plan-time refinement of the GPU
//     catalog: Offerings from DescribeInstanceTypeOfferings (availability
//     zones), SpotPrices from DescribeSpotPriceHistory (the latest Linux/UNIX
//     price per type and zone); these lookups try twice at most.
package aws

// Tests point a backend at the wire-level fake in internal/cloud/fakeec2:
//
//	srv, _ := fakeec2.Start(fakeec2.Config{AccessKeyID: "AKID", SecretAccessKey: "secret"}, "")
//	defer srv.Close()
//	b, _ := aws.New(ctx, aws.Config{
//		Region: "us-east-1", EC2Endpoint: srv.URL, AccessKey: "AKID", SecretKey: "secret",
//		PollInterval: time.Millisecond, RetryMaxBackoff: time.Millisecond,
//	})
