package main

import (
	"context"
	"fmt"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

func refreshAWS(ctx context.Context, f *catalog.File, cfg config, getenv func(string) string) ([]string, error) {
	return nil, fmt.Errorf("aws refresh not implemented yet")
}
