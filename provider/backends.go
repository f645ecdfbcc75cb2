package provider

import (
	"context"
	"fmt"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/aliyun"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/aws"
)

// cloudBackend builds the AWS and Alibaba Cloud backends from the provider's
// blocks; what a block leaves out comes from the SDKs' standard chains.
func (d *providerData) cloudBackend(ctx context.Context, name string) (cloud.Backend, error) {
	switch name {
	case "aws":
		cfg := aws.Config{Region: d.defaultRegion("aws"), EC2Endpoint: d.getenv("HADRON_AWS_EC2_ENDPOINT")}
		if a := d.aws; a != nil {
			cfg.Profile = a.Profile.ValueString()
			cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = a.AccessKey.ValueString(), a.SecretKey.ValueString(), a.Token.ValueString()
			if a.AssumeRole != nil {
				cfg.AssumeRoleARN = a.AssumeRole.RoleARN.ValueString()
				cfg.AssumeRoleSessionName = a.AssumeRole.SessionName.ValueString()
				cfg.AssumeRoleExternalID = a.AssumeRole.ExternalID.ValueString()
			}
			if a.Endpoints != nil && a.Endpoints.EC2.ValueString() != "" {
				cfg.EC2Endpoint = a.Endpoints.EC2.ValueString()
			}
		}
		return aws.New(ctx, cfg)
	case "aliyun":
		cfg := aliyun.Config{Region: d.defaultRegion("aliyun"), Endpoint: d.getenv("HADRON_ALIYUN_ECS_ENDPOINT")}
		if a := d.aliyun; a != nil {
			cfg.AccessKeyID, cfg.AccessKeySecret, cfg.SecurityToken = a.AccessKey.ValueString(), a.SecretKey.ValueString(), a.SecurityToken.ValueString()
			cfg.Profile, cfg.RAMRole = a.Profile.ValueString(), a.RAMRole.ValueString()
			if a.Endpoint.ValueString() != "" {
				cfg.Endpoint = a.Endpoint.ValueString()
			}
		}
		return aliyun.NewWithEnv(ctx, cfg, d.getenv)
	}
	return nil, fmt.Errorf("unknown cloud %q", name)
}

// defaultRegion is the provider block's region for a cloud, else the
// cloud's usual environment variable.
func (d *providerData) defaultRegion(name string) string {
	switch name {
	case "aws":
		if d.aws != nil && d.aws.Region.ValueString() != "" {
			return d.aws.Region.ValueString()
		}
		return firstNonEmpty(d.getenv("AWS_REGION"), d.getenv("AWS_DEFAULT_REGION"))
	case "aliyun":
		if d.aliyun != nil && d.aliyun.Region.ValueString() != "" {
			return d.aliyun.Region.ValueString()
		}
		return firstNonEmpty(d.getenv("ALIBABA_CLOUD_REGION_ID"), d.getenv("ALIBABA_CLOUD_REGION"))
	}
	return ""
}

// backendIn returns a cloud's backend for an instance in region: AWS clients
// are regional, so an instance that landed outside the default region is
// read and deleted through a client of its own region.
func (d *providerData) backendIn(ctx context.Context, name, region string) (cloud.Backend, error) {
	b, err := d.backend(ctx, name)
	if err != nil {
		return nil, err
	}
	if ab, ok := b.(*aws.Backend); ok && region != "" && region != ab.Region() {
		return ab.WithRegion(region), nil
	}
	return b, nil
}
