#!/usr/bin/env bash
# Installs what building, testing and running Hadron needs, into a cache that
# survives clones: ${HADRON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hadron}.
# Every step is idempotent and says what it does. Usage:
#   prereqs.sh [terraform] [ort] [debs] [torch] [env]
# "env" prints shell assignments (TF_ACC_TERRAFORM_PATH, TF_CLI_CONFIG_FILE,
# HADRON_ORT_LIBRARY, ...). After "--", the rest is a command run with those
# variables exported:  prereqs.sh terraform ort -- go test ./...
set -euo pipefail

cache="${HADRON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hadron}"
mkdir -p "$cache"

ort_version=1.24.1
ort_sha256_amd64=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
ort_sha256_arm64=7954e8bdedb497f830c6a679e818d98399b7f4d81ade1126c3e0be74d28111ab
tofu_version=v1.12.6

say() { echo "==> $*" >&2; }

# terraform_path prints the Terraform CLI to use: terraform or tofu on PATH
# first, else OpenTofu built from the Go module proxy into the cache.
terraform_path() {
  if [ -n "${TF_ACC_TERRAFORM_PATH:-}" ] && [ -x "${TF_ACC_TERRAFORM_PATH}" ]; then
    echo "$TF_ACC_TERRAFORM_PATH"; return
  fi
  local p
  for p in terraform tofu; do
    if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return; fi
  done
  echo "$cache/tofu/$tofu_version/tofu"
}

install_terraform() {
  local p; p=$(terraform_path)
  [ -x "$p" ] && return 0
  say "no terraform or tofu on PATH: building OpenTofu $tofu_version from the Go module proxy (about 4 minutes, once)"
  local dir
  dir=$(go mod download -json "github.com/opentofu/opentofu@$tofu_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "could not download github.com/opentofu/opentofu@$tofu_version" >&2; exit 1; }
  mkdir -p "$(dirname "$p")"
  (cd "$dir" && GOFLAGS=-mod=mod go build -o "$p.tmp" ./cmd/tofu)
  mv "$p.tmp" "$p"
  say "OpenTofu installed at $p"
}

ort_dir() {
  local arch=$1
  echo "$cache/onnxruntime/$ort_version/linux-$arch"
}

install_ort() {
  local have=1 arch
  for arch in x64 arm64; do
    [ -f "$(ort_dir $arch)/libonnxruntime.so.1" ] || have=0
  done
  [ "$have" = 1 ] && return 0
  command -v npm >/dev/null 2>&1 || { say "installing npm (Debian) to fetch ONNX Runtime"; apt_install npm; }
  say "fetching ONNX Runtime $ort_version (npm package onnxruntime-node@$ort_version)"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" \
    package/bin/napi-v6/linux/x64/libonnxruntime.so.1 package/bin/napi-v6/linux/arm64/libonnxruntime.so.1
  for arch in x64 arm64; do
    local want=$ort_sha256_amd64; [ "$arch" = arm64 ] && want=$ort_sha256_arm64
    local f="$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
    local got; got=$(sha256sum "$f" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
      echo "ONNX Runtime linux/$arch: sha256 $got, want $want: refusing it" >&2; rm -rf "$tmp"; exit 1
    fi
    mkdir -p "$(ort_dir $arch)"
    cp "$f" "$(ort_dir $arch)/libonnxruntime.so.1.tmp"
    mv "$(ort_dir $arch)/libonnxruntime.so.1.tmp" "$(ort_dir $arch)/libonnxruntime.so.1"
  done
  rm -rf "$tmp"
  say "ONNX Runtime $ort_version installed under $cache/onnxruntime/$ort_version (sha256 verified)"
}

apt_updated=0
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing Debian packages: ${missing[*]}"
  if [ "$apt_updated" = 0 ]; then $sudo apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Real data, models and peers the tests use: Fashion-MNIST, the ONNX backend
# conformance tests, OpenSSH's sshd for bootstrap tests, and the ONNX checker.
install_debs() {
  apt_install dataset-fashion-mnist libonnx-testdata openssh-server openssh-client python3-onnx sudo
}

install_torch() {
  apt_install python3-torch python3-numpy
}

print_env() {
  local tfrc="$cache/terraformrc"
  [ -f "$tfrc" ] || printf '# Hadron test CLI configuration (intentionally empty).\n' > "$tfrc"
  local tf; tf=$(terraform_path)
  echo "TF_ACC_TERRAFORM_PATH=$tf"
  # OpenTofu resolves providers on its own registry: the acceptance harness
  # must name the provider there too.
  case "$(basename "$tf")" in tofu*) echo "TF_ACC_PROVIDER_HOST=registry.opentofu.org" ;; esac
  echo "TF_CLI_CONFIG_FILE=$tfrc"
  echo "HADRON_ORT_LIBRARY=$(ort_dir x64)/libonnxruntime.so.1"
  echo "HADRON_ORT_LIBRARY_ARM64=$(ort_dir arm64)/libonnxruntime.so.1"
  echo "HADRON_CACHE=$cache"
}

[ $# -gt 0 ] || set -- terraform ort debs
while [ $# -gt 0 ]; do
  step=$1; shift
  case "$step" in
    --)
      while IFS= read -r kv; do export "${kv?}"; done < <(print_env)
      [ $# -gt 0 ] || exit 0
      exec "$@" ;;
    terraform) install_terraform ;;
    ort) install_ort ;;
    debs) install_debs ;;
    torch) install_torch ;;
    env) print_env ;;
    *) echo "prereqs.sh: unknown step $step (want terraform, ort, debs, torch, env or -- COMMAND)" >&2; exit 2 ;;
  esac
done
