# Hadron quickstart on the local cloud: no account needed. `make demo` applies
# it with a locally built provider (see README.md for dev_overrides).
terraform {
  required_providers {
    hadron = {
      source = "hadron-ai/hadron"
    }
  }
}

provider "hadron" {}

resource "hadron_gpu_instance" "node" {
  name = "quickstart"
  tags = { purpose = "quickstart" }
}

output "node_id" {
  value = hadron_gpu_instance.node.id
}

output "endpoint" {
  description = "Base URL of the node's agent."
  value       = hadron_gpu_instance.node.endpoint
}

output "node" {
  description = "What the node's agent reports about itself."
  value = {
    status          = hadron_gpu_instance.node.status
    hostname        = hadron_gpu_instance.node.hostname
    vcpus           = hadron_gpu_instance.node.vcpus
    memory_mb       = hadron_gpu_instance.node.memory_mb
    gpus            = hadron_gpu_instance.node.detected_gpu_count
    gpu_model       = hadron_gpu_instance.node.detected_gpu_model
    runtime_version = hadron_gpu_instance.node.runtime_version
  }
}

output "token" {
  description = "Bearer token of the node's agent: terraform output -raw token"
  value       = hadron_gpu_instance.node.token
  sensitive   = true
}
