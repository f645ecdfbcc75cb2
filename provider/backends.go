package provider

import (
	"context"
	"fmt"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// cloudBackend builds the AWS and Alibaba Cloud backends from the provider's
// blocks and the environment.
func (d *providerData) cloudBackend(_ context.Context, name string) (cloud.Backend, error) {
	return nil, fmt.Errorf("cloud %q is not available in this build of the provider yet", name)
}
