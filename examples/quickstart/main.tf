# Hadron quickstart on the local cloud, no account needed: one node, a CNN
# trained on Fashion-MNIST, and an endpoint serving the trained model. `make
# demo` applies it with a locally built provider, then asks the endpoint to
# classify a few test images.
terraform {
  required_providers {
    hadron = {
      source = "hadron-ai/hadron"
    }
  }
}

provider "hadron" {}

variable "data_dir" {
  description = "Fashion-MNIST IDX files (Debian package dataset-fashion-mnist)."
  type        = string
  default     = "/usr/share/datasets/fashion-mnist"
}

variable "epochs" {
  type    = number
  default = 1
}

variable "train_limit" {
  description = "Training images to use (0: all 60,000)."
  type        = number
  default     = 20000
}

variable "test_limit" {
  description = "Test images to evaluate (0: all 10,000)."
  type        = number
  default     = 0
}

variable "seed" {
  type    = number
  default = 42
}

resource "hadron_gpu_instance" "node" {
  name = "quickstart"
  tags = { purpose = "quickstart" }
}

# The classic image classifier: Conv2D 32 -> MaxPool -> Conv2D 64 -> MaxPool
# -> Conv2D 128 -> MaxPool -> Flatten -> Dense 512 -> Dense 10, pixels
# rescaled by 1/255, Adam on cross-entropy, a validation split.
resource "hadron_training_job" "cnn" {
  name         = "fashion-cnn"
  instance_ids = [hadron_gpu_instance.node.id]

  engine = {
    input_shape = [28, 28, 1]
    layers = [
      { type = "conv2d", filters = 32, kernel_size = [3, 3], activation = "relu" },
      { type = "max_pooling2d", pool_size = [2, 2] },
      { type = "conv2d", filters = 64, kernel_size = [3, 3], activation = "relu" },
      { type = "max_pooling2d", pool_size = [2, 2] },
      { type = "conv2d", filters = 128, kernel_size = [3, 3], activation = "relu" },
      { type = "max_pooling2d", pool_size = [2, 2] },
      { type = "flatten" },
      { type = "dense", units = 512, activation = "relu" },
      { type = "dense", units = 10 },
    ]
    loss             = "sparse_categorical_crossentropy"
    optimizer        = { type = "adam", learning_rate = 0.001 }
    epochs           = var.epochs
    batch_size       = 64
    validation_split = 0.1
    seed             = var.seed
  }

  dataset = {
    format       = "idx"
    location     = "node"
    train_images = "${var.data_dir}/train-images-idx3-ubyte.gz"
    train_labels = "${var.data_dir}/train-labels-idx1-ubyte.gz"
    test_images  = "${var.data_dir}/t10k-images-idx3-ubyte.gz"
    test_labels  = "${var.data_dir}/t10k-labels-idx1-ubyte.gz"
    rescale      = 1 / 255
    limit        = var.train_limit
    test_limit   = var.test_limit
  }
}

# Serves whatever the job trained: a new model (another seed, more epochs)
# rolls out in place, keyed by its sha256.
resource "hadron_model_endpoint" "classifier" {
  name           = "fashion"
  instance_ids   = [hadron_gpu_instance.node.id]
  source         = hadron_training_job.cnn.model_uri
  sha256         = hadron_training_job.cnn.model_sha256
  max_batch_size = 32
}

output "node" {
  description = "What the node's agent reports about itself."
  value = {
    id              = hadron_gpu_instance.node.id
    status          = hadron_gpu_instance.node.status
    vcpus           = hadron_gpu_instance.node.vcpus
    gpus            = hadron_gpu_instance.node.detected_gpu_count
    runtime_version = hadron_gpu_instance.node.runtime_version
  }
}

output "test_accuracy" {
  value = hadron_training_job.cnn.test_accuracy
}

output "history" {
  value = hadron_training_job.cnn.history
}

output "infer_url" {
  description = "Open Inference Protocol v2 endpoint of the model."
  value       = hadron_model_endpoint.classifier.infer_url
}

output "model_sha256" {
  value = hadron_model_endpoint.classifier.sha256
}

output "token" {
  description = "Bearer token of the node's agent: terraform output -raw token"
  value       = hadron_gpu_instance.node.token
  sensitive   = true
}
