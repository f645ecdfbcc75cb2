# Serve a local ONNX file on two nodes. Editing the file changes its sha256 in
# the plan, and apply rolls the new model out node by node.
resource "hadron_model_endpoint" "classifier" {
  name               = "classifier"
  instance_ids       = [hadron_gpu_instance.a.id, hadron_gpu_instance.b.id]
  source             = "${path.module}/model.onnx"
  max_batch_size     = 32
  max_queue_delay    = "2ms"
  instances_per_node = 2
  execution_provider = "auto"
}

# Or serve what a training job produced, in the same plan.
resource "hadron_model_endpoint" "trained" {
  name         = "fashion"
  instance_ids = [hadron_gpu_instance.a.id]
  source       = hadron_training_job.cnn.model_uri
  sha256       = hadron_training_job.cnn.model_sha256
}

output "infer_url" {
  value = hadron_model_endpoint.classifier.infer_url
}
