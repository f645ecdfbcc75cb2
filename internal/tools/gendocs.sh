#!/usr/bin/env bash
# Renders docs/ with tfplugindocs from the provider schema that our own
# Terraform CLI reports (tfplugindocs cannot download Terraform here).
#   gendocs.sh          regenerate docs/ in place
#   gendocs.sh check    fail when docs/ differs from what the schema renders
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tf=${TF_ACC_TERRAFORM_PATH:-$(command -v terraform || command -v tofu)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/bin/terraform-provider-hadron" "$root"
cat > "$tmp/tfrc" <<EOT
provider_installation {
  dev_overrides {
    "registry.terraform.io/hadron-ai/hadron" = "$tmp/bin"
    "registry.opentofu.org/hadron-ai/hadron" = "$tmp/bin"
  }
  direct {}
}
EOT
mkdir -p "$tmp/cfg"
cat > "$tmp/cfg/main.tf" <<'EOT'
terraform {
  required_providers {
    hadron = { source = "hadron-ai/hadron" }
  }
}
EOT
TF_CLI_CONFIG_FILE="$tmp/tfrc" "$tf" -chdir="$tmp/cfg" providers schema -json > "$tmp/schema.json" 2> "$tmp/schema.err" || {
  cat "$tmp/schema.err" >&2; exit 1; }

# tfplugindocs looks the schema up by short name.
sed -i -E 's#"registry\.(terraform\.io|opentofu\.org)/hadron-ai/hadron"#"hadron"#' "$tmp/schema.json"

dir=$root
if [ "${1:-}" = check ]; then
  dir="$tmp/provider"
  mkdir -p "$dir"
  cp -r "$root/examples" "$dir/"
  [ -d "$root/templates" ] && cp -r "$root/templates" "$dir/"
  [ -d "$root/docs" ] && cp -r "$root/docs" "$dir/"
fi
(cd "$root" && go tool tfplugindocs generate --provider-dir "$dir" --provider-name hadron \
  --rendered-provider-name Hadron --providers-schema "$tmp/schema.json") > "$tmp/gen.log" 2>&1 || {
  cat "$tmp/gen.log" >&2; exit 1; }

if [ "${1:-}" = check ]; then
  if ! diff -ru "$root/docs" "$dir/docs" > "$tmp/diff"; then
    echo "docs/ is stale: run 'make generate' and commit docs/. Differences:" >&2
    head -60 "$tmp/diff" >&2
    exit 1
  fi
  echo "docs/ is up to date"
fi
