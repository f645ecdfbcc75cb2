package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
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

// liveCatalogTimeout bounds one region's live catalog lookups at plan time.
const liveCatalogTimeout = 10 * time.Second

// liveCredentials reports whether Hadron may ask a cloud about its offers
// now: its provider block is present, or its standard environment
// credentials are.
func (d *providerData) liveCredentials(name string) bool {
	switch name {
	case "aws":
		return d.aws != nil || (d.getenv("AWS_ACCESS_KEY_ID") != "" && d.getenv("AWS_SECRET_ACCESS_KEY") != "") ||
			d.getenv("AWS_PROFILE") != "" || d.getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != ""
	case "aliyun":
		return d.aliyun != nil || (d.getenv(aliyun.EnvAccessKeyID) != "" && d.getenv(aliyun.EnvAccessKeySecret) != "") ||
			d.getenv(aliyun.EnvProfile) != "" || d.getenv(aliyun.EnvECSRAMRole) != ""
	}
	return false
}

// offerCatalog returns the GPU catalog for a lookup in clouds and regions
// (empty: all), refined with live zones (and, with spotPrices, live spot
// prices) for the clouds that have credentials, with diagnostics for what
// the live lookups could not tell. Without credentials it is the embedded
// catalog, and no call is made.
//
// Instance plans use live zones only: Terraform plans a create again at
// apply time, in a new provider process, and a spot price that moved in
// between would make the pinned candidates disagree with the saved plan.
func (d *providerData) offerCatalog(ctx context.Context, clouds, regions []string, spotPrices bool) (*catalog.Catalog, diag.Diagnostics) {
	once, refiner := &d.zoneRefinerOnce, &d.zoneRefiner
	if spotPrices {
		once, refiner = &d.refinerOnce, &d.refiner
	}
	once.Do(func() {
		live := map[string]catalog.Live{}
		for _, name := range []string{"aws", "aliyun"} {
			if d.liveCredentials(name) {
				live[name] = liveCloud{d: d, name: name, zonesOnly: !spotPrices}
			}
		}
		if len(live) > 0 && d.catalog != nil {
			*refiner = catalog.NewRefiner(d.catalog, live, catalog.RefinerOptions{Timeout: liveCatalogTimeout})
		}
	})
	if *refiner == nil {
		return d.catalog, nil
	}
	var liveClouds []string
	for _, c := range clouds {
		if d.liveCredentials(c) {
			liveClouds = append(liveClouds, c)
		}
	}
	if len(clouds) > 0 && len(liveClouds) == 0 {
		return d.catalog, nil
	}
	cat := (*refiner).Catalog(ctx, liveClouds, regions)
	return cat, catalogWarnings(cat)
}

// liveCloud is a cloud's catalog.Live reached through the provider's
// backend, built on first use (a backend that cannot be built fails the
// lookup, which leaves the embedded data in place with a warning).
type liveCloud struct {
	d         *providerData
	name      string
	zonesOnly bool // spot prices stay the embedded estimates
}

func (l liveCloud) live(ctx context.Context) (catalog.Live, error) {
	b, err := l.d.backend(ctx, l.name)
	if err != nil {
		return nil, fmt.Errorf("configuring the %s backend: %w", l.name, err)
	}
	lv, ok := b.(catalog.Live)
	if !ok {
		return nil, fmt.Errorf("%s backend: %w", l.name, catalog.ErrLiveUnsupported)
	}
	return lv, nil
}

func (l liveCloud) Offerings(ctx context.Context, region string, instanceTypes []string) (map[string][]string, error) {
	lv, err := l.live(ctx)
	if err != nil {
		return nil, err
	}
	return lv.Offerings(ctx, region, instanceTypes)
}

func (l liveCloud) SpotPrices(ctx context.Context, region string, instanceTypes []string) ([]catalog.SpotPrice, error) {
	if l.zonesOnly {
		return nil, catalog.ErrLiveUnsupported
	}
	lv, err := l.live(ctx)
	if err != nil {
		return nil, err
	}
	return lv.SpotPrices(ctx, region, instanceTypes)
}
