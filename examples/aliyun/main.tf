# One A10 on Alibaba Cloud in Hangzhou, with stock-aware zone fallback. Apply
# it with your own account: ALIBABA_CLOUD_ACCESS_KEY_ID and
# ALIBABA_CLOUD_ACCESS_KEY_SECRET, an aliyun CLI profile, or an ECS RAM role.
terraform {
  required_providers {
    hadron = {
      source = "hadron-ai/hadron"
    }
  }
}

variable "my_cidr" {
  description = "Your public address range, allowed to reach SSH and the agent."
  type        = string
}

provider "hadron" {
  aliyun {
    region = "cn-hangzhou"
  }
}

resource "hadron_gpu_instance" "gpu" {
  name   = "serve-a10"
  cloud  = "aliyun"
  region = "cn-hangzhou"
  zones  = ["cn-hangzhou-i", "cn-hangzhou-j", "cn-hangzhou-k"] # zones without stock are skipped

  gpu {
    model = "A10"
    count = 1
  }
  spot                = true # SpotAsPriceGo
  associate_public_ip = true
  allowed_cidrs       = [var.my_cidr]

  ssh {
    user        = "root"
    private_key = file("~/.ssh/id_ed25519")
  }
}

output "where" {
  value = "${hadron_gpu_instance.gpu.instance_type} in ${hadron_gpu_instance.gpu.zone}"
}

output "endpoint" {
  value = hadron_gpu_instance.gpu.endpoint
}
