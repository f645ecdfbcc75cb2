# Local nodes by id; cloud instances as cloud:instance-id.
terraform import hadron_gpu_instance.dev local-0123456789ab
terraform import hadron_gpu_instance.gpu aws:i-0123456789abcdef0
terraform import hadron_gpu_instance.gpu aliyun:i-bp1234567890abcdefgh
