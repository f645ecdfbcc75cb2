#!/usr/bin/env bash
# Applies (or destroys) examples/quickstart with the provider installed in $1,
# through the real Terraform CLI, using dev_overrides.
#   demo.sh INSTALL_DIR [apply|destroy]
set -euo pipefail
install_dir=$1
action=${2:-apply}
root=$(cd "$(dirname "$0")/../.." && pwd)
tf=${TF_ACC_TERRAFORM_PATH:-$(command -v terraform || command -v tofu)}
tfrc="$HADRON_CACHE/demo.tfrc"
mkdir -p "$HADRON_CACHE"
cat > "$tfrc" <<EOT
# Written by make demo: use the locally built Hadron provider.
provider_installation {
  dev_overrides {
    "registry.terraform.io/hadron-ai/hadron" = "$install_dir"
  }
  direct {}
}
EOT
export TF_CLI_CONFIG_FILE=$tfrc
dir="$root/examples/quickstart"
say() { printf '\n==> %s\n' "$*"; }

if [ "$action" = destroy ]; then
  say "destroying the quickstart"
  "$tf" -chdir="$dir" destroy -auto-approve -input=false
  exit 0
fi

say "applying examples/quickstart with $("$tf" version | head -1) (the second run is a no-op)"
"$tf" -chdir="$dir" apply -auto-approve -input=false -compact-warnings
endpoint=$("$tf" -chdir="$dir" output -raw endpoint)
token=$("$tf" -chdir="$dir" output -raw token)
say "asking the node's agent directly: GET $endpoint/v1/node"
curl -fsS -H "Authorization: Bearer $token" "$endpoint/v1/node" && echo
say "done. The node keeps running; remove it with: make demo-destroy"
