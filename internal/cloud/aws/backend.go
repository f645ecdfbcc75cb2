package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// CloudName is the backend's name in HCL.
const CloudName = "aws"

// Defaults for the zero values of Config.
const (
	DefaultPollInterval     = 5 * time.Second
	DefaultMaxPollInterval  = 20 * time.Second
	DefaultNotFoundTimeout  = 2 * time.Minute
	DefaultCleanupTimeout   = 5 * time.Minute
	DefaultRetryMaxAttempts = 10
	DefaultRetryMaxBackoff  = 20 * time.Second
)

// Config is how to reach EC2. Credentials come from the SDK's standard chain
// (environment, shared config and credentials files, SSO, container and
// instance roles) unless AccessKey and SecretKey are set.
type Config struct {
	// Region is the default region: the one used by Get and Delete, and by
	// candidates that name no region. Empty: the SDK's chain (AWS_REGION,
	// the profile's region).
	Region string
	// Profile selects a shared config profile.
	Profile string
	// AssumeRoleARN, when set, makes every call with credentials of this role,
	// assumed through STS with the base credentials.
	AssumeRoleARN string
	// AssumeRoleSessionName defaults to "hadron".
	AssumeRoleSessionName string
	// AssumeRoleExternalID is passed to AssumeRole when set.
	AssumeRoleExternalID string
	// EC2Endpoint overrides the EC2 endpoint URL (private endpoints, tests).
	EC2Endpoint string
	// STSEndpoint overrides the STS endpoint used to assume a role.
	STSEndpoint string
	// AccessKey, SecretKey and the optional SessionToken are static
	// credentials replacing the standard chain.
	AccessKey    string
	SecretKey    string
	SessionToken string

	// PollInterval is the first wait between DescribeInstances polls while
	// waiting for a state; it backs off (x1.5) up to MaxPollInterval.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// NotFoundTimeout bounds how long InvalidInstanceID.NotFound is taken for
	// eventual consistency right after RunInstances.
	NotFoundTimeout time.Duration
	// CleanupTimeout bounds retrying the deletion of a managed security group
	// that EC2 still reports in use (DependencyViolation) after termination.
	CleanupTimeout time.Duration
	// RetryMaxAttempts and RetryMaxBackoff tune the SDK's retryer for
	// throttling and 5xx answers.
	RetryMaxAttempts int
	RetryMaxBackoff  time.Duration
	// HTTPClient replaces the SDK's HTTP client when set.
	HTTPClient *http.Client
}

// Backend is the EC2 cloud.Backend. It is safe for concurrent use.
type Backend struct {
	cfg    Config
	awsCfg awssdk.Config

	clients *clientCache // shared with backends made by WithRegion
}

// clientCache holds one EC2 client per region.
type clientCache struct {
	mu      sync.Mutex
	clients map[string]*ec2.Client
}

var _ cloud.Backend = (*Backend)(nil)

// New loads credentials and region as the SDK does, applies cfg's overrides
// and returns the backend. It makes no network call.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxPollInterval <= 0 {
		cfg.MaxPollInterval = max(DefaultMaxPollInterval, cfg.PollInterval)
	}
	if cfg.NotFoundTimeout <= 0 {
		cfg.NotFoundTimeout = DefaultNotFoundTimeout
	}
	if cfg.CleanupTimeout <= 0 {
		cfg.CleanupTimeout = DefaultCleanupTimeout
	}
	if cfg.RetryMaxAttempts <= 0 {
		cfg.RetryMaxAttempts = DefaultRetryMaxAttempts
	}
	if cfg.RetryMaxBackoff <= 0 {
		cfg.RetryMaxBackoff = DefaultRetryMaxBackoff
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("configuring AWS credentials: access key and secret key must be set together")
	}

	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
	}
	opts = append(opts, config.WithRetryer(func() awssdk.Retryer { return newRetryer(cfg) }))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("loading AWS configuration: no region: set region in the aws block or AWS_REGION")
	}
	if cfg.AssumeRoleARN != "" {
		stsClient := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
			if cfg.STSEndpoint != "" {
				o.BaseEndpoint = awssdk.String(cfg.STSEndpoint)
			}
		})
		provider := stscreds.NewAssumeRoleProvider(stsClient, cfg.AssumeRoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = cfg.AssumeRoleSessionName
			if o.RoleSessionName == "" {
				o.RoleSessionName = "hadron"
			}
			if cfg.AssumeRoleExternalID != "" {
				o.ExternalID = awssdk.String(cfg.AssumeRoleExternalID)
			}
		})
		awsCfg.Credentials = awssdk.NewCredentialsCache(provider)
	}
	cfg.Region = awsCfg.Region
	return &Backend{cfg: cfg, awsCfg: awsCfg, clients: &clientCache{clients: map[string]*ec2.Client{}}}, nil
}

// newRetryer is the SDK's standard retryer without the client-side retry
// quota, with capacity errors made non-retryable (EC2 answers
// InsufficientInstanceCapacity with HTTP 500, which the SDK would otherwise
// retry: moving on to the next candidate is better).
func newRetryer(cfg Config) awssdk.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = cfg.RetryMaxAttempts
		o.MaxBackoff = cfg.RetryMaxBackoff
		o.RateLimiter = ratelimit.None
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) awssdk.Ternary {
			if isCapacityCode(errorCode(err)) {
				return awssdk.FalseTernary
			}
			return awssdk.UnknownTernary
		})}, o.Retryables...)
	})
}

// Name returns "aws".
func (b *Backend) Name() string { return CloudName }

// Region is the backend's default region.
func (b *Backend) Region() string { return b.cfg.Region }

// WithRegion returns a backend sharing b's credentials and settings whose
// default region (for Get and Delete) is region. Use it to reach an instance
// recorded in another region than the provider's.
func (b *Backend) WithRegion(region string) *Backend {
	if region == "" || region == b.cfg.Region {
		return b
	}
	cfg := b.cfg
	cfg.Region = region
	return &Backend{cfg: cfg, awsCfg: b.awsCfg, clients: b.clients}
}

// client returns the EC2 client of region ("" is the default region).
func (b *Backend) client(region string) *ec2.Client {
	if region == "" {
		region = b.cfg.Region
	}
	b.clients.mu.Lock()
	defer b.clients.mu.Unlock()
	if c, ok := b.clients.clients[region]; ok {
		return c
	}
	c := ec2.NewFromConfig(b.awsCfg, func(o *ec2.Options) {
		o.Region = region
		if b.cfg.EC2Endpoint != "" {
			o.BaseEndpoint = awssdk.String(b.cfg.EC2Endpoint)
		}
	})
	b.clients.clients[region] = c
	return c
}
