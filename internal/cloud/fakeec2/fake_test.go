package fakeec2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

const (
	testAccess = "AKIDFAKETEST"
	testSecret = "fake-test-secret"
)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.AccessKeyID == "" {
		cfg.AccessKeyID, cfg.SecretAccessKey = testAccess, testSecret
	}
	srv, err := Start(cfg, "")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func client(srv *Server, region, access, secret, token string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:           region,
		BaseEndpoint:     awssdk.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(access, secret, token),
		RetryMaxAttempts: 1,
	})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func runInput(token, zone string) *ec2.RunInstancesInput {
	in := &ec2.RunInstancesInput{ImageId: awssdk.String(DefaultImageID), InstanceType: types.InstanceTypeG5Xlarge,
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(1), ClientToken: awssdk.String(token)}
	if zone != "" {
		in.Placement = &types.Placement{AvailabilityZone: awssdk.String(zone)}
	}
	return in
}

// signedRequest builds a DescribeInstances request signed with the SDK's signer.
func signedRequest(t *testing.T, srv *Server, secret, region, token string) *http.Request {
	t.Helper()
	body := "Action=DescribeInstances&Version=2016-11-15"
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sum := sha256.Sum256([]byte(body))
	creds := awssdk.Credentials{AccessKeyID: testAccess, SecretAccessKey: secret, SessionToken: token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "ec2", region, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestSigV4Verification(t *testing.T) {
	srv := start(t, Config{})
	tokenSrv := start(t, Config{AccessKeyID: testAccess, SecretAccessKey: testSecret, SessionToken: "session-1"})
	tests := []struct {
		name   string
		srv    *Server
		req    func() *http.Request
		status int
	}{
		{"valid", srv, func() *http.Request { return signedRequest(t, srv, testSecret, "us-east-1", "") }, 200},
		{"wrong secret", srv, func() *http.Request { return signedRequest(t, srv, "wrong", "us-east-1", "") }, 401},
		{"region not served", srv, func() *http.Request { return signedRequest(t, srv, testSecret, "eu-west-9", "") }, 401},
		{"tampered body", srv, func() *http.Request {
			r := signedRequest(t, srv, testSecret, "us-east-1", "")
			b := "Action=DescribeInstances&Version=2016-11-16"
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(b)), int64(len(b))
			return r
		}, 401},
		{"tampered date", srv, func() *http.Request {
			r := signedRequest(t, srv, testSecret, "us-east-1", "")
			r.Header.Set("X-Amz-Date", "20200101T000000Z")
			return r
		}, 401},
		{"unsigned", srv, func() *http.Request {
			r := signedRequest(t, srv, testSecret, "us-east-1", "")
			r.Header.Del("Authorization")
			return r
		}, 401},
		{"session token", tokenSrv, func() *http.Request { return signedRequest(t, tokenSrv, testSecret, "us-east-1", "session-1") }, 200},
		{"missing session token", tokenSrv, func() *http.Request { return signedRequest(t, tokenSrv, testSecret, "us-east-1", "") }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.DefaultClient.Do(tt.req())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			if tt.status == 401 && (!bytes.Contains(body, []byte("<Code>AuthFailure</Code>")) || !bytes.Contains(body, []byte("<RequestID>"))) {
				t.Errorf("body = %s, want an AuthFailure error document with a RequestID", body)
			}
			if tt.status == 200 && !bytes.Contains(body, []byte("<requestId>")) {
				t.Errorf("body = %s, want a requestId", body)
			}
		})
	}
}

func TestClientTokenIdempotency(t *testing.T) {
	srv := start(t, Config{})
	east := client(srv, "us-east-1", testAccess, testSecret, "")
	ctx := ctxT(t)
	first, err := east.RunInstances(ctx, runInput("tok-1", "us-east-1b"))
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	again, err := east.RunInstances(ctx, runInput("tok-1", "us-east-1b"))
	if err != nil {
		t.Fatalf("RunInstances again: %v", err)
	}
	if id1, id2 := *first.Instances[0].InstanceId, *again.Instances[0].InstanceId; id1 != id2 || *first.ReservationId != *again.ReservationId {
		t.Errorf("same token gave %s and %s, want the same instance", id1, id2)
	}
	if _, err := east.RunInstances(ctx, runInput("tok-1", "us-east-1c")); code(err) != "IdempotentParameterMismatch" {
		t.Errorf("same token, other zone: err = %v, want IdempotentParameterMismatch", err)
	}
	// Tokens are per region.
	west := client(srv, "us-west-2", testAccess, testSecret, "")
	other, err := west.RunInstances(ctx, runInput("tok-1", "us-west-2a"))
	if err != nil {
		t.Fatalf("RunInstances in us-west-2: %v", err)
	}
	if *other.Instances[0].InstanceId == *first.Instances[0].InstanceId {
		t.Errorf("a token of another region returned the us-east-1 instance")
	}
	// A terminated instance is still returned for its token.
	if err := srv.Terminate(*first.Instances[0].InstanceId, true); err != nil {
		t.Fatal(err)
	}
	gone, err := east.RunInstances(ctx, runInput("tok-1", "us-east-1b"))
	if err != nil || gone.Instances[0].State.Name != types.InstanceStateNameTerminated {
		t.Errorf("token of a terminated instance = %v, %v; want the terminated instance", gone, err)
	}
	if n := len(srv.Instances()); n != 2 {
		t.Errorf("instances = %d, want 2", n)
	}
}

func TestStateTransitions(t *testing.T) {
	srv := start(t, Config{PendingPolls: 2, ShuttingDownPolls: 1})
	c := client(srv, "us-east-1", testAccess, testSecret, "")
	ctx := ctxT(t)
	out, err := c.RunInstances(ctx, runInput("", ""))
	if err != nil {
		t.Fatal(err)
	}
	id := *out.Instances[0].InstanceId
	if got := out.Instances[0].State.Name; got != types.InstanceStateNamePending {
		t.Errorf("RunInstances state = %s, want pending", got)
	}
	poll := func() types.InstanceStateName {
		d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		return d.Reservations[0].Instances[0].State.Name
	}
	var got []types.InstanceStateName
	for i := 0; i < 3; i++ {
		got = append(got, poll())
	}
	term, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if term.TerminatingInstances[0].CurrentState.Name != types.InstanceStateNameShuttingDown ||
		term.TerminatingInstances[0].PreviousState.Name != types.InstanceStateNameRunning {
		t.Errorf("TerminateInstances = %+v, want running -> shutting-down", term.TerminatingInstances[0])
	}
	got = append(got, poll(), poll())
	want := []types.InstanceStateName{"pending", "pending", "running", "shutting-down", "terminated"}
	if strings.Join(statesToStrings(got), ",") != strings.Join(statesToStrings(want), ",") {
		t.Errorf("states = %v, want %v", got, want)
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0000000000000dead"}}); code(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("unknown id: err = %v, want InvalidInstanceID.NotFound", err)
	}
}

func statesToStrings(s []types.InstanceStateName) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

func TestFaults(t *testing.T) {
	srv := start(t, Config{})
	c := client(srv, "us-east-1", testAccess, testSecret, "")
	ctx := ctxT(t)
	tests := []struct {
		name   string
		faults Faults
		call   func() error
		code   string
	}{
		{"throttle", Faults{Throttle: 1}, func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}, "RequestLimitExceeded"},
		{"throttle other action", Faults{Throttle: 1, ThrottleAction: "RunInstances"}, func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}, ""},
		{"500", Faults{ServerErrors: 1}, func() error {
			_, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{})
			return err
		}, "InternalError"},
		{"capacity in zone", Faults{Capacity: []CapacityFault{{Zone: "us-east-1a", InstanceType: "g5.xlarge"}}}, func() error {
			_, err := c.RunInstances(ctx, runInput("", "us-east-1a"))
			return err
		}, "InsufficientInstanceCapacity"},
		{"capacity in other zone", Faults{Capacity: []CapacityFault{{Zone: "us-east-1a"}}}, func() error {
			_, err := c.RunInstances(ctx, runInput("", "us-east-1b"))
			return err
		}, ""},
		{"spot only", Faults{Capacity: []CapacityFault{{Market: "spot", Code: "MaxSpotInstanceCountExceeded"}}}, func() error {
			_, err := c.RunInstances(ctx, runInput("", "us-east-1b"))
			return err
		}, ""},
		{"not found after create", Faults{NotFoundPolls: 1}, func() error {
			out, err := c.RunInstances(ctx, runInput("", ""))
			if err != nil {
				return err
			}
			_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{*out.Instances[0].InstanceId}})
			return err
		}, "InvalidInstanceID.NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetFaults(tt.faults)
			defer srv.SetFaults(Faults{})
			if err := tt.call(); code(err) != tt.code {
				t.Errorf("err = %v, want code %q", err, tt.code)
			}
		})
	}
}

func TestAdminAPI(t *testing.T) {
	srv := start(t, Config{})
	c := client(srv, "us-east-1", testAccess, testSecret, "")
	ctx := ctxT(t)
	do := func(method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatalf("%s %s: decoding: %v", method, path, err)
			}
		}
		return resp.StatusCode
	}
	if st := do("PUT", "/admin/faults", `{"hold_run_instances": true}`, nil); st != 200 {
		t.Fatalf("PUT faults: %d", st)
	}
	if st := do("POST", "/admin/public-ips", `{"ips": ["127.0.0.2"]}`, nil); st != 200 {
		t.Fatalf("POST public-ips: %d", st)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.RunInstances(ctx, runInput("held", ""))
		errc <- err
	}()
	var calls []Call
	if st := do("GET", "/admin/calls?action=RunInstances&min=1&timeout=10s", "", &calls); st != 200 || len(calls) != 1 || !calls[0].Held {
		t.Fatalf("GET calls = %d %+v, want one held RunInstances", st, calls)
	}
	var list []Instance
	if do("GET", "/admin/instances", "", &list); len(list) != 1 || list[0].PublicIP != "127.0.0.2" || list[0].ID != calls[0].InstanceID {
		t.Fatalf("instances = %+v, want the held instance with public IP 127.0.0.2", list)
	}
	select {
	case err := <-errc:
		t.Fatalf("RunInstances answered while held: %v", err)
	default:
	}
	do("POST", "/admin/release", "", nil)
	if err := <-errc; err != nil {
		t.Fatalf("RunInstances after release: %v", err)
	}
	var in Instance
	if st := do("POST", "/admin/instances/"+list[0].ID+"/terminate?immediate=true", "", &in); st != 200 || in.State != "terminated" {
		t.Errorf("terminate = %d %+v, want terminated", st, in)
	}
	if st := do("POST", "/admin/instances/i-nope/terminate", "", nil); st != 404 {
		t.Errorf("terminate unknown = %d, want 404", st)
	}
	if st := do("GET", "/admin/calls?action=Nothing&min=1&timeout=10ms", "", nil); st != http.StatusRequestTimeout {
		t.Errorf("waiting for calls that never come = %d, want 408", st)
	}
	var faults Faults
	if do("GET", "/admin/faults", "", &faults); faults.HoldRunInstances {
		t.Errorf("faults after release = %+v, want hold cleared", faults)
	}
	if st := do("PUT", "/admin/faults", `{"bogus": 1}`, nil); st != 400 {
		t.Errorf("PUT unknown fault field = %d, want 400", st)
	}
	var subnets []Subnet
	if do("GET", "/admin/subnets", "", &subnets); len(subnets) != 10 {
		t.Errorf("subnets = %d, want one per default zone (10)", len(subnets))
	}

	if st := do("PUT", "/admin/offerings/us-east-1", `{"g5.xlarge": ["us-east-1f"]}`, nil); st != 200 {
		t.Fatalf("PUT /admin/offerings = %d", st)
	}
	offs, err := c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{LocationType: types.LocationTypeAvailabilityZone})
	if err != nil {
		t.Fatalf("DescribeInstanceTypeOfferings: %v", err)
	}
	if o := offs.InstanceTypeOfferings; len(o) != 1 || o[0].InstanceType != "g5.xlarge" || awssdk.ToString(o[0].Location) != "us-east-1f" {
		t.Errorf("offerings = %+v, want g5.xlarge in us-east-1f only", o)
	}
	if st := do("PUT", "/admin/spot-price-history", `[{"instance_type": "g5.xlarge", "zone": "us-east-1f", "price": 0.5, "timestamp": "2026-01-01T00:00:00Z"}]`, nil); st != 200 {
		t.Fatalf("PUT /admin/spot-price-history = %d", st)
	}
	hist, err := c.DescribeSpotPriceHistory(ctx, &ec2.DescribeSpotPriceHistoryInput{})
	if err != nil {
		t.Fatalf("DescribeSpotPriceHistory: %v", err)
	}
	if h := hist.SpotPriceHistory; len(h) != 1 || awssdk.ToString(h[0].SpotPrice) != "0.500000" || h[0].ProductDescription != "Linux/UNIX" {
		t.Errorf("spot price history = %+v, want one Linux/UNIX entry at 0.500000", h)
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	if _, err := Start(Config{}, "0.0.0.0:0"); err == nil {
		t.Errorf("Start on 0.0.0.0: want an error")
	}
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"Deep Learning * (Ubuntu 22.04) *", "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20250815", true},
		{"Deep Learning * (Ubuntu 22.04) *", "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 20.04) 20250815", false},
		{"g5.?xlarge", "g5.2xlarge", true},
		{"g5.?xlarge", "g5.xlarge", false},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := matchWildcard(tt.pattern, tt.s); got != tt.want {
			t.Errorf("matchWildcard(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestOnCallSeesRunInstancesBeforeTheAnswer(t *testing.T) {
	seen := make(chan Call, 10)
	var srv *Server
	srv = start(t, Config{OnCall: func(c Call) {
		if c.Action == "RunInstances" {
			if _, ok := srv.Instance(c.InstanceID); !ok {
				t.Errorf("OnCall for %s before the instance exists", c.InstanceID)
			}
			seen <- c
		}
	}})
	c := client(srv, "us-east-1", testAccess, testSecret, "")
	out, err := c.RunInstances(ctxT(t), runInput("", ""))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case call := <-seen:
		if call.InstanceID != *out.Instances[0].InstanceId || call.RequestID == "" {
			t.Errorf("OnCall got %+v, want the new instance and a request id", call)
		}
	default:
		t.Fatal("OnCall was not called before RunInstances answered")
	}
}

func TestRunInstancesRefusesUnimplementedParameters(t *testing.T) {
	srv := start(t, Config{})
	c := client(srv, "us-east-1", testAccess, testSecret, "")
	in := runInput("", "")
	in.EbsOptimized = awssdk.Bool(true)
	if _, err := c.RunInstances(ctxT(t), in); code(err) != "InvalidParameter" {
		t.Errorf("RunInstances with EbsOptimized: err = %v, want InvalidParameter", err)
	}
}
