// Command hadrond is Hadron's node runtime: `hadrond agent` serves health,
// node information, inference and training on a node; `hadrond version`
// prints the runtime version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hadron-ai/terraform-provider-hadron/internal/version"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/agent"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/api"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/command"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/files"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/oip"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/train"
	"github.com/hadron-ai/terraform-provider-hadron/runtime/train/jobs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, agent.ErrIdlePoweroff):
		fmt.Fprintln(os.Stderr, "hadrond: stopped: idle_timeout reached; the node powers off")
		os.Exit(agent.ExitIdlePoweroff)
	case errors.Is(err, agent.ErrIdle):
		fmt.Fprintln(os.Stderr, "hadrond: stopped: idle_timeout reached")
		os.Exit(agent.ExitIdle)
	case err != nil:
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "hadrond:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `usage: hadrond <command> [flags]

commands:
  agent -config FILE [-listen HOST:PORT] [-data-dir DIR]   run the node agent
  train JOB.hcl                                             run a training job file standalone
  version                                                   print the runtime version
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "agent":
		return runAgent(ctx, args[1:], getenv, stderr)
	case "train":
		if len(args) != 2 {
			fmt.Fprint(stderr, "usage: hadrond train JOB.hcl\n")
			return errUsage
		}
		return train.RunFile(ctx, args[1], stdout)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version.Version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "hadrond: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}

func runAgent(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("HADROND_CONFIG"), "HCL config file (env HADROND_CONFIG)")
	listen := fs.String("listen", "", "override listen address host:port")
	dataDir := fs.String("data-dir", "", "override data directory")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg := agent.DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = agent.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
	services, ortVersion, err := buildServices(cfg, log)
	if err != nil {
		return err
	}
	srv, err := agent.New(cfg, agent.Deps{Logger: log, Services: services, ORTVersion: ortVersion})
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// buildServices constructs the agent's services from its typed config.
func buildServices(cfg agent.Config, log *slog.Logger) ([]api.Service, func() string, error) {
	fsvc, err := files.New(filepath.Join(cfg.DataDir, "files"), nil)
	if err != nil {
		return nil, nil, err
	}
	csvc, err := command.New(filepath.Join(cfg.DataDir, "commands"), log)
	if err != nil {
		return nil, nil, err
	}
	services := []api.Service{fsvc, csvc}
	ortVersion := func() string { return "" }
	if cfg.ORT != nil && cfg.ORT.Library != "" {
		inf, err := oip.New(oip.Config{
			ORT: inference.Options{
				LibraryPath:       cfg.ORT.Library,
				ExecutionProvider: cfg.ORT.ExecutionProvider,
				IntraOpThreads:    cfg.ORT.IntraOpThreads,
			},
			PublicInference: cfg.PublicInference,
			DataDir:         cfg.DataDir,
			ServerVersion:   version.Version,
		}, oip.Deps{Logger: log})
		if err != nil {
			return nil, nil, err
		}
		services = append(services, inf)
		ortVersion = inf.Runtime().Version
	} else {
		log.Warn("no ort.library configured: inference routes are not served")
	}
	trainJobs, err := jobs.New(jobs.Config{Dir: filepath.Join(cfg.DataDir, "train"), Logger: log})
	if err != nil {
		return nil, nil, err
	}
	services = append(services, trainJobs)
	return services, ortVersion, nil
}

func logLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
