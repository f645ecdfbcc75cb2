# Uses the inference-fleet module: two local nodes serving one model. Set
# cloud = "aws" (with region and ssh_private_key) to run the same fleet on GPUs.
terraform {
  required_providers {
    hadron = {
      source = "hadron-ai/hadron"
    }
  }
}

provider "hadron" {}

module "fleet" {
  source       = "../modules/inference-fleet"
  name         = "classifier"
  node_count   = 2
  cloud        = "local"
  model_source = "${path.module}/../../runtime/inference/testdata/cnn.onnx"
}

output "infer_urls" {
  value = module.fleet.infer_urls
}
