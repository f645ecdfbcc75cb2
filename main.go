// Command terraform-provider-hadron serves the Hadron Terraform provider.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/hadron-ai/terraform-provider-hadron/internal/version"
	"github.com/hadron-ai/terraform-provider-hadron/provider"
)

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version.Version), providerserver.ServeOpts{
		Address: "registry.terraform.io/hadron-ai/hadron",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
