# model-name@instance-id[,instance-id...]
terraform import hadron_model_endpoint.classifier classifier@local-0123456789ab,local-ba9876543210
