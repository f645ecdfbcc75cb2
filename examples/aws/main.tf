# One A10G on AWS, bootstrapped with hadrond and serving a model. Apply it with
# your own account: credentials come from the AWS SDK's usual chain
# (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, instance role).
terraform {
  required_providers {
    hadron = {
      source = "hadron-ai/hadron"
    }
  }
}

variable "my_cidr" {
  description = "Your public address range, allowed to reach SSH and the agent (e.g. 203.0.113.7/32)."
  type        = string
}

provider "hadron" {
  aws {
    region = "us-east-1"
  }
  budget {
    max_hourly_price = 3
  }
}

resource "hadron_gpu_instance" "gpu" {
  name  = "serve-a10g"
  cloud = "aws"
  zones = ["us-east-1a", "us-east-1b", "us-east-1c"] # tried in order on capacity errors

  gpu {
    model = "A10G"
    count = 1
  }
  spot                = false
  root_volume_size    = 100
  associate_public_ip = true
  allowed_cidrs       = [var.my_cidr] # the managed security group opens SSH and 7070 to you only

  ssh {
    private_key = file("~/.ssh/id_ed25519") # its public half becomes a managed key pair
  }

  runtime {
    idle_timeout = "2h"       # no requests and no running jobs for two hours:
    idle_action  = "poweroff" # the node powers off (EC2 stops it); the next apply starts it again
  }

  tags = { team = "ml" }
}

resource "hadron_model_endpoint" "model" {
  name           = "classifier"
  instance_ids   = [hadron_gpu_instance.gpu.id]
  source         = "${path.module}/model.onnx"
  max_batch_size = 32
}

output "where" {
  value = "${hadron_gpu_instance.gpu.instance_type} in ${hadron_gpu_instance.gpu.zone} at $${hadron_gpu_instance.gpu.hourly_price}/h"
}

output "infer_url" {
  value = hadron_model_endpoint.model.infer_url
}
