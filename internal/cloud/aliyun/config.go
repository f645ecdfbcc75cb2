package aliyun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
)

// Environment variables read by New (and only there).
const (
	EnvAccessKeyID     = "ALIBABA_CLOUD_ACCESS_KEY_ID"
	EnvAccessKeySecret = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
	EnvSecurityToken   = "ALIBABA_CLOUD_SECURITY_TOKEN"
	EnvProfile         = "ALIBABA_CLOUD_PROFILE"
	EnvRegion          = "ALIBABA_CLOUD_REGION_ID"
	EnvECSRAMRole      = "ALIBABA_CLOUD_ECS_METADATA"
)

// Config configures the ECS backend. Only Region and some form of credentials
// are required; the zero value of every other field means its default.
type Config struct {
	// Region is the default region (e.g. cn-hangzhou): where candidates
	// without a region land, and where plain instance ids are looked up.
	Region string

	// AccessKeyID and AccessKeySecret (plus SecurityToken for STS
	// credentials) are static credentials; they win over everything else.
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
	// Profile names a profile of the aliyun CLI configuration file
	// (ProfileFile, default ~/.aliyun/config.json). Modes AK, StsToken,
	// EcsRamRole and RamRoleArn are supported.
	Profile     string
	ProfileFile string
	// RAMRole is the name of the RAM role attached to the ECS instance that
	// runs Terraform; credentials come from the instance metadata service.
	RAMRole string

	// Endpoint overrides the ECS endpoint: a host name (HTTPS) or a URL such
	// as http://127.0.0.1:PORT (tests, private endpoints).
	Endpoint string

	// PollInterval is the first delay between DescribeInstances polls while
	// waiting; it grows (x1.5) up to MaxPollInterval. Defaults 5s and 30s.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// NotFoundTimeout is how long a freshly created instance may stay
	// invisible to DescribeInstances (ECS is eventually consistent) before
	// Create decides it is gone. Default 30s.
	NotFoundTimeout time.Duration
	// CleanupTimeout bounds how long Delete retries removing the managed
	// security group while ECS still reports it in use (DependencyViolation).
	// Default 5m.
	CleanupTimeout time.Duration
	// RetryBaseDelay is the first backoff after throttling or a 5xx;
	// it doubles per retry up to 20s. Default 1s.
	RetryBaseDelay time.Duration
	// MaxRetries bounds the retries of one API call. Default 8.
	MaxRetries int
	// PublicBandwidthMbps is InternetMaxBandwidthOut for instances with a
	// public IP (pay by traffic). Default 100.
	PublicBandwidthMbps int
	// Transport is the base HTTP transport; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// Backend is the Alibaba Cloud ECS implementation of cloud.Backend. It is safe
// for concurrent use: every operation builds its own SDK client.
type Backend struct {
	region     string
	creds      credentials.CredentialsProvider
	credSource string
	domain     string // empty: the SDK's endpoint resolution for the region
	scheme     string // "HTTPS" or "HTTP"
	transport  http.RoundTripper

	poll            time.Duration
	maxPoll         time.Duration
	notFoundTimeout time.Duration
	cleanupTimeout  time.Duration
	retryBase       time.Duration
	maxRetries      int
	bandwidth       int
}

// New returns a backend configured from cfg, with credentials and region
// falling back to the process environment (see NewWithEnv).
func New(ctx context.Context, cfg Config) (*Backend, error) {
	return NewWithEnv(ctx, cfg, os.Getenv)
}

// NewWithEnv is New with an explicit environment lookup, the only place the
// backend reads the environment. Credentials are taken from the first of:
// cfg.AccessKeyID/AccessKeySecret[/SecurityToken]; cfg.Profile; cfg.RAMRole;
// ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET[/ALIBABA_CLOUD_SECURITY_TOKEN];
// ALIBABA_CLOUD_PROFILE or the current profile of the aliyun CLI file when it
// exists; ALIBABA_CLOUD_ECS_METADATA (an ECS RAM role name). The region is
// cfg.Region or ALIBABA_CLOUD_REGION_ID. No API call is made.
func NewWithEnv(_ context.Context, cfg Config, getenv func(string) string) (*Backend, error) {
	region := cfg.Region
	if region == "" {
		region = getenv(EnvRegion)
	}
	if region == "" {
		return nil, fmt.Errorf("missing Alibaba Cloud region: set region or %s", EnvRegion)
	}
	if err := ValidateRegion(region); err != nil {
		return nil, err
	}
	creds, source, err := resolveCredentials(cfg, getenv)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		region:          region,
		creds:           creds,
		credSource:      source,
		scheme:          "HTTPS",
		transport:       cfg.Transport,
		poll:            orDuration(cfg.PollInterval, 5*time.Second),
		notFoundTimeout: orDuration(cfg.NotFoundTimeout, 30*time.Second),
		cleanupTimeout:  orDuration(cfg.CleanupTimeout, 5*time.Minute),
		retryBase:       orDuration(cfg.RetryBaseDelay, time.Second),
		maxRetries:      cfg.MaxRetries,
		bandwidth:       cfg.PublicBandwidthMbps,
	}
	b.maxPoll = max(orDuration(cfg.MaxPollInterval, 30*time.Second), b.poll)
	if b.maxRetries <= 0 {
		b.maxRetries = 8
	}
	if b.bandwidth <= 0 {
		b.bandwidth = 100
	}
	if b.transport == nil {
		b.transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if cfg.Endpoint != "" {
		b.domain, b.scheme, err = parseEndpoint(cfg.Endpoint)
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Region is the backend's default region.
func (b *Backend) Region() string { return b.region }

// CredentialSource says where the credentials came from ("config", "env",
// "profile NAME", "ram role NAME"), for logs; it never contains secrets.
func (b *Backend) CredentialSource() string { return b.credSource }

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func parseEndpoint(s string) (domain, scheme string, err error) {
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, "/?#") {
			return "", "", fmt.Errorf("invalid ECS endpoint %q: want a host name or a URL", s)
		}
		return s, "HTTPS", nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("invalid ECS endpoint %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("invalid ECS endpoint %q: scheme must be http or https", s)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", "", fmt.Errorf("invalid ECS endpoint %q: want scheme://host[:port] without a path", s)
	}
	return u.Host, strings.ToUpper(u.Scheme), nil
}

func resolveCredentials(cfg Config, getenv func(string) string) (credentials.CredentialsProvider, string, error) {
	switch {
	case cfg.AccessKeyID != "" || cfg.AccessKeySecret != "":
		if cfg.AccessKeyID == "" || cfg.AccessKeySecret == "" {
			return nil, "", errors.New("incomplete Alibaba Cloud credentials: access key id and access key secret must both be set")
		}
		return staticProvider(cfg.AccessKeyID, cfg.AccessKeySecret, cfg.SecurityToken), "config", nil
	case cfg.Profile != "":
		return profileProvider(profilePath(cfg.ProfileFile, getenv), cfg.Profile)
	case cfg.RAMRole != "":
		return ramRoleProvider(cfg.RAMRole)
	}
	if id, secret := getenv(EnvAccessKeyID), getenv(EnvAccessKeySecret); id != "" || secret != "" {
		if id == "" || secret == "" {
			return nil, "", fmt.Errorf("incomplete Alibaba Cloud credentials in the environment: set both %s and %s", EnvAccessKeyID, EnvAccessKeySecret)
		}
		return staticProvider(id, secret, getenv(EnvSecurityToken)), "env", nil
	}
	path := profilePath(cfg.ProfileFile, getenv)
	if name := getenv(EnvProfile); name != "" {
		return profileProvider(path, name)
	}
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return profileProvider(path, "")
		}
	}
	if role := getenv(EnvECSRAMRole); role != "" {
		return ramRoleProvider(role)
	}
	return nil, "", fmt.Errorf("no Alibaba Cloud credentials: set access_key_id and access_key_secret (or %s and %s), a profile of the aliyun CLI (%s), or an ECS RAM role",
		EnvAccessKeyID, EnvAccessKeySecret, EnvProfile)
}

func staticProvider(id, secret, token string) credentials.CredentialsProvider {
	if token != "" {
		return credentials.NewStaticSTSCredentialsProvider(id, secret, token)
	}
	return credentials.NewStaticAKCredentialsProvider(id, secret)
}

func ramRoleProvider(role string) (credentials.CredentialsProvider, string, error) {
	p, err := credentials.NewECSRAMRoleCredentialsProviderBuilder().WithRoleName(role).Build()
	if err != nil {
		return nil, "", fmt.Errorf("configuring ECS RAM role %q credentials: %w", role, err)
	}
	return p, "ram role " + role, nil
}

func profilePath(file string, getenv func(string) string) string {
	if file != "" {
		return file
	}
	home := getenv("HOME")
	if home == "" {
		home = getenv("USERPROFILE")
	}
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".aliyun", "config.json")
}

// cliProfile is one profile of the aliyun CLI configuration file.
type cliProfile struct {
	Name            string `json:"name"`
	Mode            string `json:"mode"`
	AccessKeyID     string `json:"access_key_id"`
	AccessKeySecret string `json:"access_key_secret"`
	StsToken        string `json:"sts_token"`
	RAMRoleName     string `json:"ram_role_name"`
	RAMRoleARN      string `json:"ram_role_arn"`
	RAMSessionName  string `json:"ram_session_name"`
	ExpiredSeconds  int    `json:"expired_seconds"`
	StsRegion       string `json:"sts_region"`
}

func profileProvider(path, name string) (credentials.CredentialsProvider, string, error) {
	if path == "" {
		return nil, "", errors.New("reading aliyun CLI profile: no home directory to find ~/.aliyun/config.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading aliyun CLI profile file: %w", err)
	}
	var conf struct {
		Current  string       `json:"current"`
		Profiles []cliProfile `json:"profiles"`
	}
	if err := json.Unmarshal(raw, &conf); err != nil {
		return nil, "", fmt.Errorf("reading aliyun CLI profile file %s: %w", path, err)
	}
	if name == "" {
		name = conf.Current
	}
	if name == "" {
		name = "default"
	}
	var p *cliProfile
	for i := range conf.Profiles {
		if conf.Profiles[i].Name == name {
			p = &conf.Profiles[i]
		}
	}
	if p == nil {
		return nil, "", fmt.Errorf("aliyun CLI profile %q not found in %s", name, path)
	}
	source := "profile " + name
	switch p.Mode {
	case "", "AK":
		if p.AccessKeyID == "" || p.AccessKeySecret == "" {
			return nil, "", fmt.Errorf("aliyun CLI profile %q: access_key_id and access_key_secret are required in mode AK", name)
		}
		return staticProvider(p.AccessKeyID, p.AccessKeySecret, ""), source, nil
	case "StsToken":
		if p.AccessKeyID == "" || p.AccessKeySecret == "" || p.StsToken == "" {
			return nil, "", fmt.Errorf("aliyun CLI profile %q: access_key_id, access_key_secret and sts_token are required in mode StsToken", name)
		}
		return staticProvider(p.AccessKeyID, p.AccessKeySecret, p.StsToken), source, nil
	case "EcsRamRole":
		if p.RAMRoleName == "" {
			return nil, "", fmt.Errorf("aliyun CLI profile %q: ram_role_name is required in mode EcsRamRole", name)
		}
		prov, _, err := ramRoleProvider(p.RAMRoleName)
		return prov, source, err
	case "RamRoleArn":
		if p.AccessKeyID == "" || p.AccessKeySecret == "" || p.RAMRoleARN == "" {
			return nil, "", fmt.Errorf("aliyun CLI profile %q: access_key_id, access_key_secret and ram_role_arn are required in mode RamRoleArn", name)
		}
		session := p.RAMSessionName
		if session == "" {
			session = "hadron"
		}
		builder := credentials.NewRAMRoleARNCredentialsProviderBuilder().
			WithCredentialsProvider(staticProvider(p.AccessKeyID, p.AccessKeySecret, p.StsToken)).
			WithRoleArn(p.RAMRoleARN).WithRoleSessionName(session).WithStsRegion(p.StsRegion)
		if p.ExpiredSeconds > 0 {
			builder = builder.WithDurationSeconds(p.ExpiredSeconds)
		}
		prov, err := builder.Build()
		if err != nil {
			return nil, "", fmt.Errorf("aliyun CLI profile %q: %w", name, err)
		}
		return prov, source, nil
	default:
		return nil, "", fmt.Errorf("aliyun CLI profile %q: mode %q is not supported (AK, StsToken, EcsRamRole, RamRoleArn)", name, p.Mode)
	}
}
