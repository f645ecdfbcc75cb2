# A node on this machine: a hadrond process, ready when apply returns.
resource "hadron_gpu_instance" "dev" {
  name = "dev-node"
  tags = { team = "ml" }
}

output "dev_endpoint" {
  value = hadron_gpu_instance.dev.endpoint
}
