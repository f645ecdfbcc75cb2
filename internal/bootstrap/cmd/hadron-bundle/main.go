// Command hadron-bundle builds the node runtime bundle that the provider
// ships and installs: hadrond cross-compiled for linux/amd64 and linux/arm64,
// the matching ONNX Runtime libraries, gzip copies, and manifest.json with the
// version and each file's sha256. `make install` and the release call it:
//
//	go run ./internal/bootstrap/cmd/hadron-bundle -version 1.2.3 -out dist/runtime
//
// ONNX Runtime comes from -ort-amd64/-ort-arm64, defaulting to
// $HADRON_ORT_LIBRARY and $HADRON_ORT_LIBRARY_ARM64 (internal/tools/prereqs.sh
// env prints them).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/hadron-ai/terraform-provider-hadron/internal/bootstrap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hadron-bundle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("hadron-bundle", flag.ContinueOnError)
	version := fs.String("version", "", "runtime version stamped into hadrond and the manifest (required)")
	out := fs.String("out", "dist/runtime", "output directory")
	module := fs.String("module", ".", "repository root")
	arches := fs.String("arch", "amd64,arm64", "comma-separated architectures")
	ortAMD64 := fs.String("ort-amd64", getenv("HADRON_ORT_LIBRARY"), "libonnxruntime.so.1 for linux/amd64")
	ortARM64 := fs.String("ort-arm64", getenv("HADRON_ORT_LIBRARY_ARM64"), "libonnxruntime.so.1 for linux/arm64")
	noGzip := fs.Bool("no-gzip", false, "do not write gzip copies")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version == "" {
		return fmt.Errorf("-version is required")
	}
	b, err := bootstrap.BuildBundle(ctx, bootstrap.BuildOptions{
		Version:      *version,
		OutDir:       *out,
		ModuleDir:    *module,
		Arches:       strings.Split(*arches, ","),
		ORTLibraries: map[string]string{"amd64": *ortAMD64, "arm64": *ortARM64},
		NoGzip:       *noGzip,
	})
	if err != nil {
		return err
	}
	for _, a := range b.Arches() {
		files, _ := b.ForArch(a)
		var names []string
		for _, f := range files {
			names = append(names, f.Name)
		}
		fmt.Fprintf(stdout, "linux/%s: %s (%.1f MiB)\n", a, strings.Join(names, ", "), float64(b.Size(a))/(1<<20))
	}
	fmt.Fprintf(stdout, "wrote %s/%s (version %s)\n", *out, bootstrap.ManifestName, b.Version)
	return nil
}
