// Package fakeecs is a wire-level fake of the Alibaba Cloud ECS OpenAPI for
// tests. It speaks the RPC style the official Go SDK uses (query and form
// parameters, JSON bodies carrying a RequestId, errors as JSON with Code,
// Message, RequestId, HostId and Recommend and a matching HTTP status), and it
// verifies the HMAC-SHA1 signature (signature version 1.0) of every request
// against its configured credentials, so a backend tested against it exercises
// the SDK's real signing, parsing and error paths.
//
// Supported actions: RunInstances, DescribeInstances, DeleteInstance,
// DescribeAvailableResource, DescribeSpotPriceHistory, DescribeImages,
// DescribeVSwitches, CreateSecurityGroup, AuthorizeSecurityGroup,
// DeleteSecurityGroup, ImportKeyPair, DeleteKeyPairs, TagResources and
// UntagResources.
//
// Which types a region offers where is set per region with SetOfferings
// (Options.Offerings); the spot price history and its currency with
// SetSpotPriceHistory (Options.SpotPriceHistory, Options.Currency: USD by
// default, CNY for a China-site account).
//
// Instances move through Pending -> Starting -> Running when they are
// described, and Stopping -> Deleted -> released after DeleteInstance, one
// state per Options.StepsPerState DescribeInstances calls that see them, so
// tests are fast and deterministic without clocks (Options.Instant skips the
// transitional states altogether, for clients that poll slowly). RunInstances honours
// ClientToken (same token and parameters: same instance, even after it was
// released; same token with other parameters: IdempotentParameterMismatch).
//
// Faults are injected with SetStock (NoStock per region, zone and type, seen by
// both DescribeAvailableResource and RunInstances), FailRunInstances (any error
// code for one zone and type, e.g. QuotaExceed.ElasticQuota),
// InjectErrors (the next n calls of an action fail, e.g. Throttling.User or
// ServiceUnavailable with HTTP 503) and HideNewInstances (new instances are
// not found for their first n DescribeInstances). Test hooks list instances,
// release or reclaim them out of band and choose the next public IPs.
//
// Everything is also reachable over a JSON admin API under /_fake/ on the same
// listener (see Server.ServeHTTP), which cmd/fakeecs exposes for tests that
// drive a separate process. Servers only ever listen on loopback.
package fakeecs
