# With no blocks, everything runs on the local cloud: nodes are hadrond
# processes on this machine.
provider "hadron" {}

# Clouds are configured only where used. Credentials come from each SDK's
# standard chain (environment, profiles, instance roles).
provider "hadron" {
  alias = "clouds"

  aws {
    region = "us-east-1"
  }

  aliyun {
    region = "cn-hangzhou"
  }

  budget {
    max_hourly_price = 5.00
  }
}
