# One A10-class GPU (A10G on AWS, A10 on Alibaba Cloud), the cheapest of
# both clouds, under $1.50 per hour.
data "hadron_gpu_offers" "a10" {
  gpu              = "A10|A10G:1"
  clouds           = ["aws", "aliyun"]
  max_hourly_price = 1.50
}

locals {
  a10 = data.hadron_gpu_offers.a10.cheapest
}

output "cheapest_a10" {
  # "aws us-east-1 g5.xlarge at $1.006/h"
  value = format("%s %s %s at $%.3f/h", local.a10.cloud, local.a10.region, local.a10.instance_type, local.a10.hourly_price)
}

# Every 8x A100 offer with 80 GiB per GPU in Alibaba Cloud's China regions,
# on-demand or spot, cheapest first.
data "hadron_gpu_offers" "a100_cn" {
  gpu               = "A100:8"
  min_gpu_memory_gb = 80
  regions           = ["cn-hangzhou", "cn-shanghai", "cn-beijing"]
  spot              = "any"
}

output "a100_cn_offers" {
  value = [for o in data.hadron_gpu_offers.a100_cn.offers :
    format("%s %s %s $%.2f/h", o.region, o.instance_type, o.spot ? "spot" : "on-demand", o.hourly_price)
  ]
}
