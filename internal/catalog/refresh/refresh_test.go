package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

func TestParseAWSPriceList(t *testing.T) {
	data, err := os.ReadFile("testdata/aws-price-list.json")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"g5.xlarge": true, "p4d.24xlarge": true, "g6.xlarge": true, "g5.2xlarge": true}
	got, err := parseAWSPriceList(bytes.NewReader(data), want)
	if err != nil {
		t.Fatal(err)
	}
	// Windows, SQL, dedicated, reservation and storage rows are ignored.
	wantPrices := map[string]float64{"g5.xlarge": 1.006, "p4d.24xlarge": 21.9576, "g6.xlarge": 0.8048}
	if !reflect.DeepEqual(got, wantPrices) {
		t.Errorf("parseAWSPriceList = %v, want %v", got, wantPrices)
	}
	if _, err := parseAWSPriceList(strings.NewReader(`{"products": [`), want); err == nil {
		t.Errorf("parseAWSPriceList accepted a truncated file")
	}
}

// copyCatalog puts the fixture catalog in a temporary directory.
func copyCatalog(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("testdata/catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := catalog.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := catalog.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonical, data) {
		t.Fatalf("testdata/catalog.json is not canonical; run: go run ./internal/catalog/refresh -format -file internal/catalog/refresh/testdata/catalog.json")
	}
	path := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCatalog(t *testing.T, path string) *catalog.File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := catalog.Decode(data)
	if err != nil {
		t.Fatalf("refreshed catalog is invalid: %v", err)
	}
	return f
}

func price(t *testing.T, f *catalog.File, cloud, region, typ string) catalog.FilePrice {
	t.Helper()
	for _, c := range f.Clouds {
		for _, p := range c.Prices {
			if c.Name == cloud && p.Region == region && p.Type == typ {
				return p
			}
		}
	}
	t.Fatalf("no %s %s %s row", cloud, region, typ)
	return catalog.FilePrice{}
}

// awsPriceServer serves the fixture as every region's price list; the
// us-west-2 file quotes g5.xlarge higher, and regions in fail get HTTP 500.
func awsPriceServer(t *testing.T, fail ...string) *httptest.Server {
	t.Helper()
	data, err := os.ReadFile("testdata/aws-price-list.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		region := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
		for _, f := range fail {
			if f == region {
				http.Error(w, "unavailable", http.StatusInternalServerError)
				return
			}
		}
		body := data
		if region == "us-west-2" {
			body = bytes.ReplaceAll(data, []byte(`"1.0060000000"`), []byte(`"1.0100000000"`))
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRefreshAWSPrices(t *testing.T) {
	path := copyCatalog(t)
	srv := awsPriceServer(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-aws", "-file", path, "-date", "2026-12-04", "-aws-price-list-url", srv.URL + "/%s/index.json"}, func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	f := readCatalog(t, path)
	tests := []struct {
		region, typ string
		want        float64
		estimate    bool
	}{
		{"us-east-1", "g5.xlarge", 1.006, false},
		{"us-west-2", "g5.xlarge", 1.01, false},
		{"us-east-1", "p4d.24xlarge", 21.9576, false},
		{"us-east-1", "g5.2xlarge", 1.3, true}, // not in the price list: kept
	}
	for _, tt := range tests {
		p := price(t, f, "aws", tt.region, tt.typ)
		if p.OnDemand != tt.want || p.Estimate != tt.estimate {
			t.Errorf("%s %s = %v (estimate %t), want %v (estimate %t)", tt.region, tt.typ, p.OnDemand, p.Estimate, tt.want, tt.estimate)
		}
	}
	if p := price(t, f, "aliyun", "cn-hangzhou", "ecs.gn7i-c8g1.2xlarge"); p.OnDemand != 1.5 || !p.Estimate {
		t.Errorf("aliyun row changed by an AWS refresh: %+v", p)
	}
	if f.AsOf != "2026-12-04" || f.Compiled != "2026-12-04" {
		t.Errorf("as_of %q compiled %q, want both 2026-12-04", f.AsOf, f.Compiled)
	}
	for _, want := range []string{
		"aws us-east-1: no price for g5.2xlarge in the price list; kept 1.3 (estimate true)",
		"aws us-west-2: p4d.24xlarge is sold here at $21.9576/h but has no catalog row; add one with its zones",
		"aws us-east-1: 2 prices refreshed",
		"aws us-west-2: 1 prices refreshed",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestRefreshAWSPartialFailure(t *testing.T) {
	path := copyCatalog(t)
	srv := awsPriceServer(t, "us-west-2")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-aws", "-file", path, "-date", "2026-12-04", "-aws-price-list-url", srv.URL + "/%s/index.json"}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "aws us-west-2: fetching price list") || !strings.Contains(err.Error(), "500") {
		t.Fatalf("run error = %v, want the failed region named", err)
	}
	f := readCatalog(t, path)
	if p := price(t, f, "aws", "us-east-1", "g5.xlarge"); p.OnDemand != 1.006 {
		t.Errorf("us-east-1 was not refreshed: %+v", p)
	}
	if p := price(t, f, "aws", "us-west-2", "g5.xlarge"); p.OnDemand != 1.1 || !p.Estimate {
		t.Errorf("failed region changed: %+v", p)
	}
	if f.AsOf != "2025-06-01" || f.Compiled != "2026-12-04" {
		t.Errorf("as_of %q compiled %q, want as_of kept after a partial refresh", f.AsOf, f.Compiled)
	}
}

// fakeECS answers DescribePrice and DescribeAvailableResource the way the ECS
// RPC API does (JSON bodies), for the SDK pointed at it.
func fakeECS(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		var body any
		switch r.Form.Get("Action") {
		case "DescribePrice":
			if r.Form.Get("InstanceType") != "ecs.gn7i-c8g1.2xlarge" || r.Form.Get("PriceUnit") != "Hour" || r.Form.Get("RegionId") != "cn-hangzhou" {
				w.WriteHeader(http.StatusBadRequest)
				body = map[string]any{"RequestId": "bad", "Code": "InvalidParameter", "Message": "unexpected request " + r.Form.Encode()}
				break
			}
			body = map[string]any{"RequestId": "req-price", "PriceInfo": map[string]any{"Price": map[string]any{
				"Currency": "CNY", "OriginalPrice": 9.9,
				"DetailInfos": map[string]any{"DetailInfo": []any{
					map[string]any{"Resource": "instanceType", "OriginalPrice": 9.576},
					map[string]any{"Resource": "systemDisk", "OriginalPrice": 0.324},
				}},
			}}}
		case "DescribeAvailableResource":
			zone := func(id, status, typeStatus string) map[string]any {
				return map[string]any{"ZoneId": id, "Status": status, "AvailableResources": map[string]any{"AvailableResource": []any{
					map[string]any{"Type": "InstanceType", "SupportedResources": map[string]any{"SupportedResource": []any{
						map[string]any{"Value": r.Form.Get("InstanceType"), "Status": typeStatus},
					}}},
				}}}
			}
			body = map[string]any{"RequestId": "req-zones", "AvailableZones": map[string]any{"AvailableZone": []any{
				zone("cn-hangzhou-i", "Available", "Available"),
				zone("cn-hangzhou-k", "Available", "Available"),
				zone("cn-hangzhou-h", "Available", "SoldOut"),
				zone("cn-hangzhou-b", "SoldOut", "Available"),
			}}}
		default:
			w.WriteHeader(http.StatusBadRequest)
			body = map[string]any{"RequestId": "bad", "Code": "InvalidAction", "Message": "unknown action"}
		}
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRefreshAliyunPricesAndZones(t *testing.T) {
	path := copyCatalog(t)
	srv := fakeECS(t)
	env := map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-aliyun", "-zones", "-file", path, "-date", "2026-12-04", "-aliyun-endpoint", strings.TrimPrefix(srv.URL, "http://")},
		func(k string) string { return env[k] }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	f := readCatalog(t, path)
	p := price(t, f, "aliyun", "cn-hangzhou", "ecs.gn7i-c8g1.2xlarge")
	// 9.576 CNY/h for the instance alone at 7.2 CNY/USD.
	if p.OnDemand != 1.33 || p.Estimate || !reflect.DeepEqual(p.Zones, []string{"cn-hangzhou-i", "cn-hangzhou-k"}) {
		t.Errorf("refreshed row = %+v, want $1.33/h in cn-hangzhou-i and -k", p)
	}
	for _, c := range f.Clouds {
		if c.Name == "aliyun" && !reflect.DeepEqual(c.Regions[0].Zones, []string{"cn-hangzhou-b", "cn-hangzhou-h", "cn-hangzhou-i", "cn-hangzhou-k"}) {
			t.Errorf("region zones = %v, want the old ones plus the live ones", c.Regions[0].Zones)
		}
	}
}

func TestRefreshAliyunNeedsCredentials(t *testing.T) {
	path := copyCatalog(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-aliyun", "-file", path}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "ALIBABA_CLOUD_ACCESS_KEY_ID") {
		t.Errorf("run error = %v, want the missing variables named", err)
	}
}

func TestRefreshFormatAndUsage(t *testing.T) {
	path := copyCatalog(t)
	before, _ := os.ReadFile(path)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-format", "-file", path}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("run -format: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Errorf("-format changed a canonical file")
	}
	if err := run(context.Background(), nil, func(string) string { return "" }, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "nothing to do") {
		t.Errorf("run without flags = %v, want a usage error", err)
	}
}

// fakeEC2 answers DescribeInstanceTypeOfferings in the EC2 query protocol.
func fakeEC2(t *testing.T) *httptest.Server {
	t.Helper()
	offered := map[string][]string{
		"us-east-1": {"g5.xlarge:us-east-1b", "g5.xlarge:us-east-1c", "p4d.24xlarge:us-east-1b"},
		"us-west-2": {"g5.xlarge:us-west-2b"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "DescribeInstanceTypeOfferings" || r.Form.Get("LocationType") != "availability-zone" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		// The SigV4 scope names the region: .../<date>/<region>/ec2/aws4_request.
		region := ""
		for _, part := range strings.Split(r.Header.Get("Authorization"), "/") {
			if strings.HasPrefix(part, "us-") {
				region = part
			}
		}
		var items strings.Builder
		for _, o := range offered[region] {
			typ, zone, _ := strings.Cut(o, ":")
			items.WriteString("<item><instanceType>" + typ + "</instanceType><locationType>availability-zone</locationType><location>" + zone + "</location></item>")
		}
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><DescribeInstanceTypeOfferingsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId><instanceTypeOfferingSet>` +
			items.String() + `</instanceTypeOfferingSet></DescribeInstanceTypeOfferingsResponse>`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRefreshAWSZones(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	path := copyCatalog(t)
	prices, ec2srv := awsPriceServer(t), fakeEC2(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-aws", "-zones", "-file", path, "-date", "2026-12-04",
		"-aws-price-list-url", prices.URL + "/%s/index.json", "-aws-ec2-endpoint", ec2srv.URL},
		func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	f := readCatalog(t, path)
	tests := []struct {
		region, typ string
		want        []string
	}{
		{"us-east-1", "g5.xlarge", []string{"us-east-1b", "us-east-1c"}},
		{"us-east-1", "p4d.24xlarge", []string{"us-east-1b"}},
		{"us-east-1", "g5.2xlarge", []string{"us-east-1a"}}, // offered nowhere now: kept and reported
		{"us-west-2", "g5.xlarge", []string{"us-west-2b"}},
	}
	for _, tt := range tests {
		if got := price(t, f, "aws", tt.region, tt.typ).Zones; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %s zones = %v, want %v", tt.region, tt.typ, got, tt.want)
		}
	}
	if !strings.Contains(stdout.String(), "aws us-east-1: g5.2xlarge is offered in no zone now; kept zones [us-east-1a]") {
		t.Errorf("report lacks the unoffered type:\n%s", stdout.String())
	}
}
