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
    "registry.opentofu.org/hadron-ai/hadron" = "$install_dir"
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
url=$("$tf" -chdir="$dir" output -raw infer_url)
token=$("$tf" -chdir="$dir" output -raw token)
say "asking the endpoint to classify test images: POST $url"
(cd "$root" && go run ./examples/quickstart/predict -url "$url" -token "$token" -n 10)
say "done. The node keeps serving; see the outputs with: terraform -chdir=examples/quickstart output"
say "remove everything with: make demo-destroy"
