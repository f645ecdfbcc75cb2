# Multicloud GPUs with a budget: "one A10-class GPU, the cheapest of AWS and
# Alibaba Cloud, under $1.50/h", plus a spot T4 batch node that prefers
# Alibaba Cloud, all under $3/h together.
#
# `terraform plan` resolves each gpu requirement against Hadron's GPU catalog
# and pins the ordered list of candidates (zone, then region, then cloud) with
# their prices in the plan: apply tries them in that order and never lands
# anywhere the reviewer did not see. An instance out of capacity in every AWS
# zone lands on the next cloud, and state records where it landed and at what
# price. The provider's budget fails the plan when the instances together may
# cost more; each instance counts at its priciest candidate.
#
#   export AWS_PROFILE=...                      # or any AWS credential source
#   export ALIBABA_CLOUD_ACCESS_KEY_ID=... ALIBABA_CLOUD_ACCESS_KEY_SECRET=...
#   terraform init
#   terraform plan -var "ssh_public_key=$(cat ~/.ssh/id_ed25519.pub)"
#
# The provider installs hadrond on each node over SSH with the keys of your
# ssh-agent (ssh-add ~/.ssh/id_ed25519 first).
terraform {
  required_providers {
    hadron = {
      source = "hadron-ai/hadron"
    }
  }
}

provider "hadron" {
  aws {
    region = "us-east-1"
  }
  aliyun {
    region = "cn-hangzhou"
  }
  # The instances below may cost $1.33/h + $0.489/h at most. With a budget of
  # 1.50 the plan fails: "hourly price $1.819/h of 2 items exceeds the budget
  # of $1.50/h by $0.319/h; biggest: a10-inference $1.33/h (73%), ...".
  budget {
    max_hourly_price = 3.00
  }
}

variable "allowed_cidrs" {
  description = "Addresses allowed to reach the nodes' SSH port, e.g. your office's."
  type        = list(string)
  default     = []
}

variable "ssh_public_key" {
  description = "Public key installed on the nodes (authorized_keys format); its private key must be in your ssh-agent."
  type        = string
}

# What the requirement matches, cheapest first: the same catalog the
# instances below are resolved against.
data "hadron_gpu_offers" "a10" {
  gpu              = "A10|A10G:1"
  clouds           = ["aws", "aliyun"]
  max_hourly_price = 1.50
}

# One A10-class GPU (A10G on AWS, A10 on Alibaba Cloud) wherever it is
# cheapest; the other cloud is the fallback.
resource "hadron_gpu_instance" "inference" {
  name             = "a10-inference"
  clouds           = ["aws", "aliyun"]
  max_hourly_price = 1.50
  allowed_cidrs    = var.allowed_cidrs
  ssh_public_key   = var.ssh_public_key
  tags             = { team = "ml", purpose = "inference" }

  ssh {
    use_agent = true
  }

  gpu {
    model = "A10|A10G"
    count = 1
  }
}

# A spot T4 for batch work, in the order written: Alibaba Cloud's Hangzhou
# zones first (the catalog picks the cheapest type there), then AWS us-west-2.
resource "hadron_gpu_instance" "batch" {
  name           = "t4-batch"
  spot           = true
  allowed_cidrs  = var.allowed_cidrs
  ssh_public_key = var.ssh_public_key
  tags           = { team = "ml", purpose = "batch" }

  ssh {
    use_agent = true
  }

  gpu {
    model = "T4"
    count = 1
  }

  placements = [
    { cloud = "aliyun", region = "cn-hangzhou" },
    { cloud = "aws", region = "us-west-2" },
  ]
}

locals {
  a10 = data.hadron_gpu_offers.a10.cheapest
}

output "cheapest_a10_offer" {
  value = format("%s %s %s at $%.3f/h", local.a10.cloud, local.a10.region, local.a10.instance_type, local.a10.hourly_price)
}

# Where each instance landed and what it costs.
output "landed" {
  value = {
    for n in [hadron_gpu_instance.inference, hadron_gpu_instance.batch] :
    n.name => format("%s %s %s at $%.4f/h", n.cloud, n.zone, n.instance_type, n.hourly_price)
  }
}
