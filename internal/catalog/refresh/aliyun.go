package main

import (
	"context"
	"fmt"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

func refreshAliyun(ctx context.Context, f *catalog.File, cfg config, getenv func(string) string) ([]string, error) {
	return nil, fmt.Errorf("aliyun refresh not implemented yet")
}
