// Package version holds the version of the provider and of the node runtime it
// bundles. Both binaries share it, so a provider always installs the runtime of
// its own version. Release builds set it with
// -ldflags "-X github.com/hadron-ai/terraform-provider-hadron/internal/version.Version=1.2.3".
package version

// Version is the provider and runtime version. It is a variable only so the
// linker can set it; nothing assigns it at run time.
var Version = "0.1.0-dev"
