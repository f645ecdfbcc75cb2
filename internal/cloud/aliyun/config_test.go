package aliyun

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestCredentialChain checks each credential source by signing a real call
// that the fake verifies: Get of an unknown id is ErrNotFound only when the
// signature (and STS token) was accepted.
func TestCredentialChain(t *testing.T) {
	const (
		keyID, secret = "LTAI5tChainKey0000000001", "chain-secret"
		stsID, stsSec = "STS.NTchainTempKey000001", "sts-secret"
		stsToken      = "CAIS-security-token-for-test"
	)
	srv := fakeecs.Start(fakeecs.Options{Credentials: []fakeecs.Credential{
		{AccessKeyID: keyID, AccessKeySecret: secret},
		{AccessKeyID: stsID, AccessKeySecret: stsSec, SecurityToken: stsToken},
	}})
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	profiles := `{"current": "work", "profiles": [
	  {"name": "work", "mode": "AK", "access_key_id": "` + keyID + `", "access_key_secret": "` + secret + `"},
	  {"name": "sts", "mode": "StsToken", "access_key_id": "` + stsID + `", "access_key_secret": "` + stsSec + `", "sts_token": "` + stsToken + `"},
	  {"name": "stale", "mode": "AK", "access_key_id": "` + keyID + `", "access_key_secret": "wrong"},
	  {"name": "odd", "mode": "ChainableRamRoleArn"}
	]}`
	cliFile := filepath.Join(dir, ".aliyun", "config.json")
	if err := os.MkdirAll(filepath.Dir(cliFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cliFile, []byte(profiles), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		cfg        Config
		env        map[string]string
		wantSource string
		wantCode   string // API error code expected from the signed call; "" = accepted
		wantErr    string // constructor error
	}{
		{name: "config keys", cfg: Config{AccessKeyID: keyID, AccessKeySecret: secret}, wantSource: "config"},
		{name: "config keys win over env", cfg: Config{AccessKeyID: keyID, AccessKeySecret: secret},
			env: map[string]string{EnvAccessKeyID: "x", EnvAccessKeySecret: "y"}, wantSource: "config"},
		{name: "config STS", cfg: Config{AccessKeyID: stsID, AccessKeySecret: stsSec, SecurityToken: stsToken}, wantSource: "config"},
		{name: "config STS with a wrong token", cfg: Config{AccessKeyID: stsID, AccessKeySecret: stsSec, SecurityToken: "other"},
			wantSource: "config", wantCode: "InvalidSecurityToken.Mismatch"},
		{name: "env keys", env: map[string]string{EnvAccessKeyID: keyID, EnvAccessKeySecret: secret}, wantSource: "env"},
		{name: "env STS", env: map[string]string{EnvAccessKeyID: stsID, EnvAccessKeySecret: stsSec, EnvSecurityToken: stsToken}, wantSource: "env"},
		{name: "env wrong secret", env: map[string]string{EnvAccessKeyID: keyID, EnvAccessKeySecret: "nope"},
			wantSource: "env", wantCode: "SignatureDoesNotMatch"},
		{name: "named profile", cfg: Config{Profile: "sts"}, env: map[string]string{"HOME": dir}, wantSource: "profile sts"},
		{name: "profile file path", cfg: Config{Profile: "work", ProfileFile: cliFile}, wantSource: "profile work"},
		{name: "profile from env", env: map[string]string{"HOME": dir, EnvProfile: "stale"},
			wantSource: "profile stale", wantCode: "SignatureDoesNotMatch"},
		{name: "current profile of the CLI file", env: map[string]string{"HOME": dir}, wantSource: "profile work"},
		{name: "env keys win over the CLI file", env: map[string]string{"HOME": dir, EnvAccessKeyID: stsID, EnvAccessKeySecret: stsSec, EnvSecurityToken: stsToken},
			wantSource: "env"},
		{name: "unknown profile", cfg: Config{Profile: "nope"}, env: map[string]string{"HOME": dir}, wantErr: `profile "nope" not found`},
		{name: "unsupported profile mode", cfg: Config{Profile: "odd"}, env: map[string]string{"HOME": dir}, wantErr: "not supported"},
		{name: "half config keys", cfg: Config{AccessKeyID: keyID}, wantErr: "must both be set"},
		{name: "half env keys", env: map[string]string{EnvAccessKeySecret: secret}, wantErr: EnvAccessKeyID},
		{name: "nothing", env: map[string]string{"HOME": t.TempDir()}, wantErr: "no Alibaba Cloud credentials"},
		{name: "ram role", cfg: Config{RAMRole: "hadron-node"}, wantSource: "ram role hadron-node", wantCode: "skip-call"},
		{name: "ram role from env", env: map[string]string{EnvECSRAMRole: "ops"}, wantSource: "ram role ops", wantCode: "skip-call"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Region, cfg.Endpoint = "cn-hangzhou", srv.URL
			b, err := NewWithEnv(context.Background(), cfg, envMap(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewWithEnv error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewWithEnv: %v", err)
			}
			if b.CredentialSource() != tt.wantSource {
				t.Errorf("CredentialSource = %q, want %q", b.CredentialSource(), tt.wantSource)
			}
			if tt.wantCode == "skip-call" {
				return // instance metadata is not reachable in tests
			}
			_, err = b.Get(ctxT(t), "i-bp000000000000000000")
			var apiErr *APIError
			switch {
			case tt.wantCode == "" && !errors.Is(err, cloud.ErrNotFound):
				t.Errorf("signed Get: err = %v, want ErrNotFound (request accepted)", err)
			case tt.wantCode != "" && (!errors.As(err, &apiErr) || apiErr.Code != tt.wantCode):
				t.Errorf("signed Get: err = %v, want %s", err, tt.wantCode)
			}
		})
	}
}

func TestNewRegionAndEndpoint(t *testing.T) {
	keys := Config{AccessKeyID: "a", AccessKeySecret: "b"}
	tests := []struct {
		name       string
		region     string
		endpoint   string
		env        map[string]string
		wantRegion string
		wantDomain string
		wantScheme string
		wantErr    string
	}{
		{name: "region from config", region: "cn-beijing", wantRegion: "cn-beijing", wantScheme: "HTTPS"},
		{name: "region from env", env: map[string]string{EnvRegion: "ap-southeast-1"}, wantRegion: "ap-southeast-1", wantScheme: "HTTPS"},
		{name: "missing region", wantErr: "missing Alibaba Cloud region"},
		{name: "malformed region", region: "Hangzhou", wantErr: "not an Alibaba Cloud region"},
		{name: "http endpoint", region: "cn-hangzhou", endpoint: "http://127.0.0.1:8080", wantRegion: "cn-hangzhou", wantDomain: "127.0.0.1:8080", wantScheme: "HTTP"},
		{name: "host endpoint", region: "cn-hangzhou", endpoint: "ecs-vpc.cn-hangzhou.example.internal", wantRegion: "cn-hangzhou", wantDomain: "ecs-vpc.cn-hangzhou.example.internal", wantScheme: "HTTPS"},
		{name: "endpoint with path", region: "cn-hangzhou", endpoint: "https://h/x", wantErr: "without a path"},
		{name: "endpoint scheme", region: "cn-hangzhou", endpoint: "ftp://h", wantErr: "scheme must be http or https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := keys
			cfg.Region, cfg.Endpoint = tt.region, tt.endpoint
			b, err := NewWithEnv(context.Background(), cfg, envMap(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Region() != tt.wantRegion || b.domain != tt.wantDomain || b.scheme != tt.wantScheme {
				t.Errorf("region %q domain %q scheme %q, want %q %q %q", b.Region(), b.domain, b.scheme, tt.wantRegion, tt.wantDomain, tt.wantScheme)
			}
		})
	}
}

// recordingTransport answers every request with an error after noting its URL.
type recordingTransport struct{ urls chan string }

func (r recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.urls <- req.URL.String()
	return nil, errors.New("offline test transport")
}

// TestDefaultEndpoint checks that without an override the SDK resolves the
// regional ECS endpoint over HTTPS (no request leaves the process).
func TestDefaultEndpoint(t *testing.T) {
	for _, region := range []string{"cn-hangzhou", "ap-southeast-1"} {
		rt := recordingTransport{urls: make(chan string, 16)}
		b, err := NewWithEnv(context.Background(), Config{Region: region, AccessKeyID: "a", AccessKeySecret: "b",
			Transport: rt, RetryBaseDelay: time.Millisecond}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctxT(t), "i-bp000000000000000000"); err == nil {
			t.Fatalf("Get through a failing transport succeeded")
		}
		u, err := url.Parse(<-rt.urls)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "https" || !strings.HasPrefix(u.Host, "ecs") || !strings.HasSuffix(u.Host, ".aliyuncs.com") {
			t.Errorf("%s: request went to %s://%s, want https to the ECS endpoint", region, u.Scheme, u.Host)
		}
		if q := u.Query(); q.Get("Action") != "DescribeInstances" || q.Get("RegionId") != region || q.Get("Signature") == "" {
			t.Errorf("%s: query %v, want a signed DescribeInstances for the region", region, q)
		}
	}
}
