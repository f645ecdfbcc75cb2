// Package fakeec2 is a wire-level fake of the Amazon EC2 API for tests.
//
// A Fake speaks the EC2 Query protocol (form-encoded POST with Action and
// Version, XML responses carrying a requestId, and the EC2 error document
// <Response><Errors><Error>...</Error></Errors><RequestID>...</RequestID></Response>),
// verifies AWS Signature Version 4 against the test credentials it was
// configured with, and keeps instances, security groups, key pairs, subnets and
// images in memory, per region (the region is read from the signature's
// credential scope). It is driven by the real AWS SDK, so signing, retries and
// response parsing are exercised exactly as against the real service.
//
// Instances move pending -> running -> shutting-down -> terminated as they are
// polled with DescribeInstances (Config.PendingPolls, Config.ShuttingDownPolls).
// RunInstances honours ClientToken like EC2 does: the same token with the same
// parameters returns the same reservation, even once the instance is
// terminated; the same token with other parameters fails with
// IdempotentParameterMismatch.
//
// Faults (throttling, 500s, capacity errors per zone and type, an eventual
// consistency window after create, withholding RunInstances responses) and
// test hooks (listing, out-of-band termination, call log, public IPs of the
// next instances) are available both as methods and, for a fake running as a
// separate process (cmd/fakeec2), as a JSON admin API under /admin/.
//
// DescribeInstanceTypeOfferings answers from Config.Offerings (or
// SetOfferings) per region, by default from Hadron's embedded catalog (see
// DefaultOfferings); DescribeSpotPriceHistory answers from
// Config.SpotPriceHistory (SetSpotPriceHistory), empty by default.
//
// STS AssumeRole is served at the same URL (requests signed for service sts),
// so that a backend configured to assume a role can be tested too.
//
// In a test, in process:
//
//	srv, err := fakeec2.Start(fakeec2.Config{AccessKeyID: "AKID", SecretAccessKey: "secret"}, "")
//	defer srv.Close()
//	srv.SetFaults(fakeec2.Faults{Capacity: []fakeec2.CapacityFault{{Zone: "us-east-1a"}}})
//	// point the SDK (or aws.Config.EC2Endpoint) at srv.URL with those credentials
//
// In its own process (so that it outlives a killed client):
//
//	go build -o fakeec2 ./internal/cloud/fakeec2/cmd/fakeec2
//	p, err := fakeec2.StartProcess(ctx, "./fakeec2", "-access-key", "AKID", "-secret-key", "secret")
//	defer p.Close()
//	p.SetFaults(ctx, fakeec2.Faults{HoldRunInstances: true}) // p.URL is the endpoint
//
// The fake only ever listens on the loopback interface.
package fakeec2
