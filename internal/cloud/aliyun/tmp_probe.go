package aliyun

import _ "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
