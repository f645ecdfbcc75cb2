// Command refresh rewrites internal/catalog/catalog.json from the clouds'
// public price data. It is a maintainer's tool run by `make catalog`, never
// by tests, and it needs internet access:
//
//	go run ./internal/catalog/refresh -aws -aliyun
//
// What it does, per cloud, for the instance types and regions already in
// the file (add a type or region by adding its rows by hand first):
//
//   - AWS on-demand prices: the public AWS Price List bulk files (offer
//     AmazonEC2, one file per region; no credentials needed), Linux, shared
//     tenancy, no pre-installed software.
//   - AWS zones (with -zones): DescribeInstanceTypeOfferings with location
//     type availability-zone, through the SDK's default credential chain.
//   - Alibaba Cloud prices: ECS DescribePrice (pay-as-you-go, one hour) with
//     credentials from ALIBABA_CLOUD_ACCESS_KEY_ID and
//     ALIBABA_CLOUD_ACCESS_KEY_SECRET; a CNY quote is converted with
//     -cny-per-usd.
//   - Alibaba Cloud zones (with -zones): DescribeAvailableResource.
//
// Rows that were refreshed lose their estimate flag; rows the clouds did not
// answer for keep their old values and flag, and the run ends with a
// non-zero status. compiled becomes today's date, and so does as_of when
// everything was refreshed. With -format alone it only validates the file and rewrites
// it in the canonical layout (no network).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "refresh:", err)
		os.Exit(1)
	}
}

type options struct {
	file            string
	format          bool
	aws             bool
	aliyun          bool
	zones           bool
	cnyPerUSD       float64
	today           string
	awsPriceListURL string
	aliyunEndpoint  string
	awsEC2Endpoint  string
	httpClient      *http.Client
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("refresh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := options{httpClient: &http.Client{Timeout: 15 * time.Minute}}
	fs.StringVar(&cfg.file, "file", "internal/catalog/catalog.json", "catalog file to rewrite")
	fs.BoolVar(&cfg.format, "format", false, "only validate and rewrite the file in the canonical layout (no network)")
	fs.BoolVar(&cfg.aws, "aws", false, "refresh AWS on-demand prices from the public price list files")
	fs.BoolVar(&cfg.aliyun, "aliyun", false, "refresh Alibaba Cloud prices with DescribePrice (needs credentials)")
	fs.BoolVar(&cfg.zones, "zones", false, "also refresh zones (needs credentials for the selected clouds)")
	fs.Float64Var(&cfg.cnyPerUSD, "cny-per-usd", 7.2, "exchange rate for Alibaba Cloud quotes in CNY")
	fs.StringVar(&cfg.awsPriceListURL, "aws-price-list-url", defaultAWSPriceListURL, "AWS price list URL template (%s is the region)")
	fs.StringVar(&cfg.awsEC2Endpoint, "aws-ec2-endpoint", "", "EC2 endpoint URL override for the zone lookup")
	fs.StringVar(&cfg.aliyunEndpoint, "aliyun-endpoint", "", "Alibaba Cloud ECS endpoint override (host[:port]; http when it is a loopback address)")
	fs.StringVar(&cfg.today, "date", time.Now().UTC().Format(time.DateOnly), "date recorded as as_of and compiled")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !cfg.format && !cfg.aws && !cfg.aliyun {
		fs.Usage()
		return fmt.Errorf("nothing to do: pass -format, -aws and/or -aliyun")
	}
	data, err := os.ReadFile(cfg.file)
	if err != nil {
		return fmt.Errorf("reading catalog: %w", err)
	}
	f, err := catalog.Decode(data)
	if err != nil {
		return err
	}
	var report []string
	var failed error
	if cfg.aws {
		r, err := refreshAWS(ctx, f, cfg, getenv)
		report = append(report, r...)
		failed = errors.Join(failed, err)
	}
	if cfg.aliyun {
		r, err := refreshAliyun(ctx, f, cfg, getenv)
		report = append(report, r...)
		failed = errors.Join(failed, err)
	}
	if cfg.aws || cfg.aliyun {
		f.Compiled = cfg.today
		if failed == nil {
			f.AsOf = cfg.today
		}
	}
	out, err := catalog.Encode(f)
	if err != nil {
		return fmt.Errorf("refreshed catalog is invalid: %w", err)
	}
	if err := os.WriteFile(cfg.file, out, 0o644); err != nil {
		return fmt.Errorf("writing catalog: %w", err)
	}
	for _, line := range report {
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "wrote %s\n", cfg.file)
	// Partial failures keep the old rows for what could not be refreshed
	// and end with a non-zero status.
	return failed
}

// cloudOf returns the file's section for a cloud.
func cloudOf(f *catalog.File, name string) (*catalog.FileCloud, error) {
	for i := range f.Clouds {
		if f.Clouds[i].Name == name {
			return &f.Clouds[i], nil
		}
	}
	return nil, fmt.Errorf("catalog has no %s section", name)
}
