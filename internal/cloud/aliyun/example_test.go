package aliyun_test

import (
	"context"
	"fmt"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/aliyun"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeecs"
)

// Example points the backend at the fake ECS endpoint, as the provider's
// acceptance tests do: the fake's test credentials and URL go into Config (or
// the aliyun provider block), and its hooks inject faults.
func Example() {
	srv := fakeecs.Start(fakeecs.Options{})
	defer srv.Close()
	srv.SetStock("cn-hangzhou", "cn-hangzhou-h", "ecs.gn7i-c8g1.2xlarge", false)

	ctx := context.Background()
	b, err := aliyun.NewWithEnv(ctx, aliyun.Config{
		Region:          "cn-hangzhou",
		AccessKeyID:     fakeecs.TestAccessKeyID,
		AccessKeySecret: fakeecs.TestAccessKeySecret,
		Endpoint:        srv.URL,
		PollInterval:    time.Millisecond,
	}, func(string) string { return "" })
	if err != nil {
		fmt.Println(err)
		return
	}
	inst, err := b.Create(ctx, cloud.Spec{
		Name:           "demo",
		IdempotencyKey: "hadron_gpu_instance.demo",
		Candidates: []cloud.Candidate{
			{Region: "cn-hangzhou", Zone: "cn-hangzhou-h", InstanceType: "ecs.gn7i-c8g1.2xlarge"},
			{Region: "cn-hangzhou", Zone: "cn-hangzhou-i", InstanceType: "ecs.gn7i-c8g1.2xlarge"},
		},
		SSHPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f demo",
		AllowedCIDRs: []string{"203.0.113.0/24"},
		RuntimePort:  8000,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range inst.Attempts {
		fmt.Printf("%s %q\n", a.Candidate.Zone, a.Code)
	}
	fmt.Println(inst.State, len(srv.Instances()))
	if err := b.Delete(ctx, inst.ID); err != nil {
		fmt.Println(err)
	}
	fmt.Println(len(srv.Instances()), len(srv.SecurityGroups()), len(srv.KeyPairs()))
	// Output:
	// cn-hangzhou-h "NoStock"
	// cn-hangzhou-i ""
	// running 1
	// 0 0 0
}
