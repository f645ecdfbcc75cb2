// Package aliyun is the Alibaba Cloud ECS backend of Hadron, built on the
// official Go SDK (github.com/aliyun/alibaba-cloud-sdk-go/services/ecs); SDK
// types never leave this package.
//
// Create is stock-aware and idempotent: it adopts a live instance that already
// carries the spec's idempotency key (a crashed earlier apply), skips
// candidates that DescribeAvailableResource reports without stock, and calls
// RunInstances with a ClientToken derived from the idempotency key and the
// candidate (cloud.ClientToken), stepping to the next token generation only
// when the token's instance has been released. NoStock, quota and
// unsupported-type errors move on to the next candidate; when every candidate
// fails the error is a *cloud.AttemptsError with each attempt's request id.
// Throttling, 5xx and transport errors are retried with exponential backoff;
// every wait honours the context.
//
// Instances in the backend's region are identified by their ECS id (i-...);
// instances in other regions by "REGION/i-...". Hadron-managed security
// groups and key pairs are recorded as instance tags and removed by Delete.
//
// Backend implements catalog.Live for plan-time refinement of the GPU
// catalog: Offerings from one DescribeAvailableResource call per region (the
// zones with stock of each type, pay-as-you-go), SpotPrices from
// DescribeSpotPriceHistory (the latest vpc/linux price per type and zone).
// Prices are in the account's currency; Hadron does not convert them, so on
// a China-site account (CNY) SpotPrices fails with ErrNotUSD and the plan
// keeps the catalog's estimates with a warning.
//
// Tests run against the wire-level fake in internal/cloud/fakeecs through the
// real SDK.
package aliyun
