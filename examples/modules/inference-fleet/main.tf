# A GPU inference fleet: N nodes and one model endpoint across them, on the
# cloud a variable picks. The endpoint rolls a new model out node by node.
terraform {
  required_providers {
    hadron = {
      source = "hadron-ai/hadron"
    }
  }
}

variable "name" {
  description = "Fleet name; nodes are <name>-0, <name>-1, ..."
  type        = string
}

variable "node_count" {
  type    = number
  default = 2
}

variable "cloud" {
  description = "local, aws or aliyun."
  type        = string
  default     = "local"
}

variable "gpu" {
  description = "GPU model per node on aws/aliyun (e.g. A10G, A10, T4); ignored on local."
  type        = string
  default     = "A10G|A10"
}

variable "region" {
  type    = string
  default = null
}

variable "ssh_private_key" {
  description = "Private key for cloud nodes (the provider installs hadrond over SSH)."
  type        = string
  default     = null
  sensitive   = true
}

variable "model_source" {
  description = "ONNX model: a local path, an http(s) URL, or a training job's model_uri."
  type        = string
}

variable "model_sha256" {
  type    = string
  default = null
}

variable "max_batch_size" {
  type    = number
  default = 16
}

locals {
  cloud_node = var.cloud != "local"
}

resource "hadron_gpu_instance" "node" {
  count  = var.node_count
  name   = "${var.name}-${count.index}"
  cloud  = var.cloud
  region = local.cloud_node ? var.region : null

  dynamic "gpu" {
    for_each = local.cloud_node ? [1] : []
    content {
      model = var.gpu
      count = 1
    }
  }

  dynamic "ssh" {
    for_each = local.cloud_node ? [1] : []
    content {
      private_key = var.ssh_private_key
    }
  }

  tags = { fleet = var.name }
}

resource "hadron_model_endpoint" "model" {
  name           = var.name
  instance_ids   = hadron_gpu_instance.node[*].id
  source         = var.model_source
  sha256         = var.model_sha256
  max_batch_size = var.max_batch_size
}

output "infer_urls" {
  description = "Inference URL per node."
  value       = hadron_model_endpoint.model.urls
}

output "hourly_price" {
  description = "What the fleet costs, USD per hour."
  value       = sum(concat([0], hadron_gpu_instance.node[*].hourly_price))
}

output "model_sha256" {
  value = hadron_model_endpoint.model.sha256
}

output "tokens" {
  value     = hadron_gpu_instance.node[*].token
  sensitive = true
}
