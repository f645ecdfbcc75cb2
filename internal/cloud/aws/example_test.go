package aws_test

import (
	"context"
	"fmt"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/aws"
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
)

// A test starts the fake EC2 endpoint, injects a capacity error in zone a,
// and points the backend at it: the instance lands in zone b.
func Example_fakeEndpoint() {
	ctx := context.Background()
	srv, err := fakeec2.Start(fakeec2.Config{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "example-secret"}, "")
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.SetFaults(fakeec2.Faults{Capacity: []fakeec2.CapacityFault{{Zone: "us-east-1a"}}})

	b, err := aws.New(ctx, aws.Config{
		Region:          "us-east-1",
		EC2Endpoint:     srv.URL,
		AccessKey:       "AKIDEXAMPLE",
		SecretKey:       "example-secret",
		PollInterval:    time.Millisecond,
		RetryMaxBackoff: time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	inst, err := b.Create(ctx, cloud.Spec{
		Name:           "example",
		IdempotencyKey: "hadron_gpu_instance.example",
		Candidates: []cloud.Candidate{
			{Region: "us-east-1", Zone: "us-east-1a", InstanceType: "g6.xlarge"},
			{Region: "us-east-1", Zone: "us-east-1b", InstanceType: "g6.xlarge"},
		},
		AllowedCIDRs: []string{"192.0.2.0/24"},
		RuntimePort:  7070,
		PublicIP:     true,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(inst.State, inst.Zone)
	for _, a := range inst.Attempts {
		fmt.Printf("%s %q\n", a.Candidate.Zone, a.Code)
	}
	if err := b.Delete(ctx, inst.ID); err != nil {
		panic(err)
	}
	fmt.Println(len(srv.LiveInstances()), "live instances")
	// Output:
	// running us-east-1b
	// us-east-1a "InsufficientInstanceCapacity"
	// us-east-1b ""
	// 0 live instances
}
