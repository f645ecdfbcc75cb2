package fakeecs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSignatureVector checks StringToSign and Sign against the worked example
// of the ECS signature documentation.
func TestSignatureVector(t *testing.T) {
	params := map[string]string{
		"Action": "DescribeRegions", "Format": "XML", "Version": "2014-05-26", "AccessKeyId": "testid",
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "Timestamp": "2016-02-23T12:46:24Z",
		"SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Signature": "ignored",
	}
	wantSTS := "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1" +
		"%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0" +
		"%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
	if got := StringToSign("GET", params); got != wantSTS {
		t.Errorf("StringToSign =\n%s\nwant\n%s", got, wantSTS)
	}
	if got, want := Sign(wantSTS, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if got, want := percentEncode("a b*c~d/é"), "a%20b%2Ac~d%2F%C3%A9"; got != want {
		t.Errorf("percentEncode = %s, want %s", got, want)
	}
}

// client signs raw RPC requests the way the SDK does, for protocol tests.
type client struct {
	t      *testing.T
	url    string
	id     string
	secret string
	now    time.Time
	nonce  int
}

func newClient(t *testing.T, srv *Server) *client {
	return &client{t: t, url: srv.URL, id: TestAccessKeyID, secret: TestAccessKeySecret, now: time.Now()}
}

func (c *client) params(action string, extra map[string]string) map[string]string {
	c.nonce++
	p := map[string]string{
		"Action": action, "Version": APIVersion, "Format": "JSON", "AccessKeyId": c.id, "RegionId": "cn-hangzhou",
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": fmt.Sprintf("nonce-%d-%d", c.now.UnixNano(), c.nonce),
		"Timestamp": c.now.UTC().Format("2006-01-02T15:04:05Z"),
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// do sends params as a POST form signed with the client's secret (unless
// Signature is already set) and decodes the JSON answer.
func (c *client) do(p map[string]string) (int, map[string]any) {
	c.t.Helper()
	if _, ok := p["Signature"]; !ok {
		p["Signature"] = Sign(StringToSign(http.MethodPost, p), c.secret)
	}
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	resp, err := http.PostForm(c.url+"/", form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		c.t.Fatalf("decoding %s answer: %v", p["Action"], err)
	}
	return resp.StatusCode, body
}

func TestProtocolErrors(t *testing.T) {
	srv := Start(Options{})
	t.Cleanup(srv.Close)
	c := newClient(t, srv)

	replayed := c.params("DescribeVSwitches", nil)
	if status, body := c.do(replayed); status != http.StatusOK {
		t.Fatalf("first request: %d %v", status, body)
	}
	tests := []struct {
		name       string
		params     map[string]string
		wantStatus int
		wantCode   string
	}{
		{"wrong signature", withSig(c.params("DescribeVSwitches", nil), "AAAA"), 400, "SignatureDoesNotMatch"},
		{"unknown key", c.params("DescribeVSwitches", map[string]string{"AccessKeyId": "LTAInobody"}), 404, "InvalidAccessKeyId.NotFound"},
		{"replayed nonce", replayed, 400, "SignatureNonceUsed"},
		{"old timestamp", c.params("DescribeVSwitches", map[string]string{"Timestamp": "2016-02-23T12:46:24Z"}), 400, "InvalidTimeStamp.Expired"},
		{"missing signature method", without(c.params("DescribeVSwitches", nil), "SignatureMethod"), 400, "MissingParameter"},
		{"unknown action", c.params("DescribeDragons", nil), 404, "InvalidAction.NotFound"},
		{"wrong version", c.params("DescribeVSwitches", map[string]string{"Version": "2016-03-14"}), 400, "InvalidVersion"},
		{"unknown region", c.params("DescribeVSwitches", map[string]string{"RegionId": "mars-1"}), 404, "InvalidRegionId.NotFound"},
		{"unknown instance", c.params("DeleteInstance", map[string]string{"InstanceId": "i-bpnothing"}), 404, "InvalidInstanceId.NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := c.do(tt.params)
			if status != tt.wantStatus || body["Code"] != tt.wantCode {
				t.Fatalf("answer = %d %v, want %d %s", status, body, tt.wantStatus, tt.wantCode)
			}
			for _, k := range []string{"RequestId", "HostId", "Message", "Recommend"} {
				if s, _ := body[k].(string); s == "" {
					t.Errorf("error body lacks %s: %v", k, body)
				}
			}
		})
	}
	_, body := c.do(withSig(c.params("DescribeVSwitches", nil), "AAAA"))
	if msg, _ := body["Message"].(string); !strings.Contains(msg, "server string to sign is:POST&%2F&") {
		t.Errorf("SignatureDoesNotMatch message = %q, want the server's string to sign (the SDK compares it)", msg)
	}
}

func withSig(p map[string]string, sig string) map[string]string {
	p["Signature"] = sig
	return p
}

func without(p map[string]string, k string) map[string]string {
	delete(p, k)
	return p
}

// TestLifecycle drives one instance through RunInstances, DescribeInstances
// and DeleteInstance with raw requests.
func TestLifecycle(t *testing.T) {
	srv := Start(Options{})
	t.Cleanup(srv.Close)
	c := newClient(t, srv)
	vsw := srv.VSwitches()[0]
	for _, v := range srv.VSwitches() {
		if v.Zone == "cn-hangzhou-h" {
			vsw = v
		}
	}
	_, body := c.do(c.params("CreateSecurityGroup", map[string]string{"VpcId": vsw.VpcID, "ClientToken": "sg-token"}))
	sg, _ := body["SecurityGroupId"].(string)
	run := map[string]string{
		"InstanceType": "ecs.gn6i-c4g1.xlarge", "ImageId": "ubuntu_24_04_x64_20G_alibase_20250113.vhd",
		"VSwitchId": vsw.ID, "SecurityGroupIds.1": sg, "ClientToken": "tok-1", "Tag.1.Key": "Name", "Tag.1.Value": "n1",
	}
	status, body := c.do(c.params("RunInstances", run))
	if status != http.StatusOK {
		t.Fatalf("RunInstances: %d %v", status, body)
	}
	id := body["InstanceIdSets"].(map[string]any)["InstanceIdSet"].([]any)[0].(string)

	_, again := c.do(c.params("RunInstances", run))
	if got := again["InstanceIdSets"].(map[string]any)["InstanceIdSet"].([]any)[0]; got != id {
		t.Errorf("RunInstances with the same ClientToken = %v, want %s", got, id)
	}
	changed := map[string]string{}
	for k, v := range run {
		changed[k] = v
	}
	changed["InstanceType"] = "ecs.gn7i-c8g1.2xlarge"
	if status, body := c.do(c.params("RunInstances", changed)); status != 400 || body["Code"] != "IdempotentParameterMismatch" {
		t.Errorf("RunInstances with the same token, other parameters = %d %v, want IdempotentParameterMismatch", status, body)
	}

	describe := func() string {
		_, body := c.do(c.params("DescribeInstances", map[string]string{"InstanceIds": `["` + id + `"]`}))
		list := body["Instances"].(map[string]any)["Instance"].([]any)
		if len(list) == 0 {
			return "gone"
		}
		return list[0].(map[string]any)["Status"].(string)
	}
	var seen []string
	for _, want := range []string{"Pending", "Starting", "Running", "Running"} {
		got := describe()
		seen = append(seen, got)
		if got != want {
			t.Fatalf("statuses = %v, want Pending, Starting, Running, Running", seen)
		}
	}
	if status, body := c.do(c.params("DeleteInstance", map[string]string{"InstanceId": id})); status != 403 || body["Code"] != "IncorrectInstanceStatus" {
		t.Errorf("DeleteInstance without Force on a running instance = %d %v, want 403 IncorrectInstanceStatus", status, body)
	}
	if status, body := c.do(c.params("DeleteSecurityGroup", map[string]string{"SecurityGroupId": sg})); status != 403 || body["Code"] != "DependencyViolation" {
		t.Errorf("DeleteSecurityGroup in use = %d %v, want 403 DependencyViolation", status, body)
	}
	if status, body := c.do(c.params("DeleteInstance", map[string]string{"InstanceId": id, "Force": "true"})); status != 200 {
		t.Fatalf("DeleteInstance: %d %v", status, body)
	}
	seen = nil
	for _, want := range []string{"Stopping", "Deleted", "gone"} {
		got := describe()
		seen = append(seen, got)
		if got != want {
			t.Fatalf("statuses = %v, want Stopping, Deleted, gone", seen)
		}
	}
	if status, body := c.do(c.params("DeleteSecurityGroup", map[string]string{"SecurityGroupId": sg})); status != 200 {
		t.Errorf("DeleteSecurityGroup after release = %d %v", status, body)
	}
	if all := srv.AllInstances(); len(all) != 1 || !all[0].Released || all[0].Tags["Name"] != "n1" {
		t.Errorf("AllInstances = %+v, want one released instance tagged Name=n1", all)
	}
}

func TestAdminAPI(t *testing.T) {
	srv := Start(Options{})
	t.Cleanup(srv.Close)
	post := func(path, body string) int {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(path string, v any) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, b)
			}
		}
		return resp.StatusCode
	}
	for path, body := range map[string]string{
		"/_fake/stock":              `{"region":"cn-hangzhou","zone":"cn-hangzhou-h","instance_type":"ecs.gn7i-c8g1.2xlarge","in_stock":false}`,
		"/_fake/run-errors":         `{"zone":"cn-hangzhou-i","instance_type":"","code":"QuotaExceed.ElasticQuota"}`,
		"/_fake/errors":             `{"action":"RunInstances","code":"Throttling.User","count":1}`,
		"/_fake/hide-new-instances": `{"count":0}`,
		"/_fake/public-ips":         `{"ips":["127.0.0.3"]}`,
		"/_fake/offerings":          `{"region":"ap-southeast-1","offerings":{"ecs.gn7i-c8g1.2xlarge":["ap-southeast-1a"]}}`,
		"/_fake/spot-price-history": `{"currency":"CNY","history":[{"instance_type":"ecs.gn7i-c8g1.2xlarge","zone":"ap-southeast-1a","price":3.1,"timestamp":"2026-01-01T00:00:00Z"}]}`,
	} {
		if status := post(path, body); status != http.StatusOK {
			t.Errorf("POST %s = %d, want 200", path, status)
		}
	}
	if status := post("/_fake/stock", "{"); status != http.StatusBadRequest {
		t.Errorf("POST bad JSON = %d, want 400", status)
	}
	if status := get("/_fake/nothing", nil); status != http.StatusNotFound {
		t.Errorf("GET unknown admin route = %d, want 404", status)
	}

	c := newClient(t, srv)
	vswH := ""
	for _, v := range srv.VSwitches() {
		if v.Zone == "cn-hangzhou-h" {
			vswH = v.ID
		}
	}
	sg, _ := srv.AddSecurityGroup("cn-hangzhou")
	run := map[string]string{"InstanceType": "ecs.gn7i-c8g1.2xlarge", "ImageId": "ubuntu_24_04_x64_20G_alibase_20250113.vhd",
		"VSwitchId": vswH, "SecurityGroupId": sg.ID, "InternetMaxBandwidthOut": "10"}
	if _, body := c.do(c.params("RunInstances", run)); body["Code"] != "Throttling.User" {
		t.Errorf("first RunInstances = %v, want the injected Throttling.User", body)
	}
	if _, body := c.do(c.params("RunInstances", run)); body["Code"] != "OperationDenied.NoStock" {
		t.Errorf("RunInstances in a zone without stock = %v, want OperationDenied.NoStock", body)
	}
	srv.SetStock("cn-hangzhou", "cn-hangzhou-h", "ecs.gn7i-c8g1.2xlarge", true)
	_, body := c.do(c.params("RunInstances", run))
	id, _ := body["InstanceIdSets"].(map[string]any)["InstanceIdSet"].([]any)[0].(string)

	var insts []Instance
	if get("/_fake/instances", &insts); len(insts) != 1 || insts[0].ID != id || insts[0].PublicIP != "127.0.0.3" {
		t.Fatalf("GET /_fake/instances = %+v, want %s with public IP 127.0.0.3", insts, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var waited map[string]int
	if status := get("/_fake/wait?action=RunInstances&count=3&timeout=5s", &waited); status != 200 || waited["count"] != 3 {
		t.Errorf("wait = %d %v, want 200 count 3", status, waited)
	}
	if err := srv.WaitForCalls(ctx, "RunInstances", 3); err != nil {
		t.Error(err)
	}
	if status := get("/_fake/wait?action=RunInstances&count=9&timeout=10ms", nil); status != http.StatusRequestTimeout {
		t.Errorf("wait for calls that never come = %d, want 408", status)
	}
	if status := post("/_fake/instances/"+id+"/release", ""); status != 200 {
		t.Errorf("release = %d", status)
	}
	if get("/_fake/instances", &insts); len(insts) != 0 {
		t.Errorf("instances after release = %+v, want none", insts)
	}
	if get("/_fake/instances?all=1", &insts); len(insts) != 1 || !insts[0].Released {
		t.Errorf("all instances = %+v, want the released one", insts)
	}
	var calls []Call
	if get("/_fake/calls?action=RunInstances", &calls); len(calls) != 3 || calls[0].Code != "Throttling.User" || calls[0].Params["Signature"] != "" {
		t.Errorf("calls = %+v, want 3 RunInstances, the first throttled, signatures redacted", calls)
	}
}
