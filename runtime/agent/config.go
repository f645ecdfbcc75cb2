package agent

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Config is the agent's configuration, read once from an HCL file at start-up
// and passed down typed.
type Config struct {
	// Listen is host:port; port 0 picks a free port.
	Listen string `hcl:"listen,optional"`
	// DataDir holds models, jobs and runtime state.
	DataDir string `hcl:"data_dir,optional"`
	// Token is the bearer token; TokenFile is read when Token is empty.
	Token     string `hcl:"token,optional"`
	TokenFile string `hcl:"token_file,optional"`
	// AddrFile, when set, receives the bound base URL once listening.
	AddrFile string `hcl:"addr_file,optional"`
	// PIDFile, when set, receives the process id.
	PIDFile  string `hcl:"pid_file,optional"`
	LogLevel string `hcl:"log_level,optional"`
	// PublicInference lets OIP inference routes be called without the token.
	PublicInference bool `hcl:"public_inference,optional"`
	// IdleTimeout stops the agent after this long without work ("30m"):
	// no request other than GET, HEAD or OPTIONS, and no busy service.
	// Empty or "0" disables it.
	IdleTimeout string `hcl:"idle_timeout,optional"`
	// IdleAction is what the idle timeout does: "stop" the agent (default)
	// or "poweroff" the node, which the service manager carries out when
	// the agent exits with ExitIdlePoweroff.
	IdleAction string `hcl:"idle_action,optional"`

	ORT *ORTConfig `hcl:"ort,block"`
	TLS *TLSConfig `hcl:"tls,block"`
}

// ORTConfig locates ONNX Runtime and chooses its execution provider.
type ORTConfig struct {
	Library           string `hcl:"library,optional"`
	ExecutionProvider string `hcl:"execution_provider,optional"`
	IntraOpThreads    int    `hcl:"intra_op_threads,optional"`
}

// TLSConfig serves HTTPS when both files are set.
type TLSConfig struct {
	CertFile string `hcl:"cert_file"`
	KeyFile  string `hcl:"key_file"`
}

// DefaultConfig returns the configuration used for anything a file leaves out.
func DefaultConfig() Config {
	return Config{
		Listen:   "127.0.0.1:7070",
		DataDir:  "/var/lib/hadron",
		LogLevel: "info",
		ORT:      &ORTConfig{ExecutionProvider: "auto"},
	}
}

// LoadConfig reads an HCL config file over DefaultConfig. Errors name the file,
// line and field.
func LoadConfig(path string) (Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading agent config: %w", err)
	}
	return ParseConfig(path, src)
}

// ParseConfig parses HCL config source; filename is used in error messages.
func ParseConfig(filename string, src []byte) (Config, error) {
	cfg := DefaultConfig()
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if !diags.HasErrors() {
		diags = append(diags, gohcl.DecodeBody(f.Body, nil, &cfg)...)
	}
	if diags.HasErrors() {
		return Config{}, fmt.Errorf("agent config: %s", formatDiags(diags))
	}
	if cfg.ORT == nil {
		cfg.ORT = &ORTConfig{}
	}
	if cfg.ORT.ExecutionProvider == "" {
		cfg.ORT.ExecutionProvider = "auto"
	}
	if err := cfg.validate(filename); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) validate(filename string) error {
	switch c.ORT.ExecutionProvider {
	case "auto", "cpu", "cuda":
	default:
		return fmt.Errorf("agent config: %s: ort.execution_provider: %q is not one of auto, cpu, cuda", filename, c.ORT.ExecutionProvider)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("agent config: %s: log_level: %q is not one of debug, info, warn, error", filename, c.LogLevel)
	}
	switch c.IdleAction {
	case "", IdleStop, IdlePoweroff:
	default:
		return fmt.Errorf("agent config: %s: idle_action: %q is not one of %s, %s", filename, c.IdleAction, IdleStop, IdlePoweroff)
	}
	if c.ORT.IntraOpThreads < 0 {
		return fmt.Errorf("agent config: %s: ort.intra_op_threads: must be 0 (automatic) or more, got %d", filename, c.ORT.IntraOpThreads)
	}
	return nil
}

// ResolveToken returns the configured token, reading TokenFile when Token is empty.
func (c *Config) ResolveToken() (string, error) {
	if c.Token != "" || c.TokenFile == "" {
		return c.Token, nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("reading token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// formatDiags renders diagnostics as "file:line,col: summary; detail".
func formatDiags(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		if d.Subject != nil {
			s = fmt.Sprintf("%s:%d,%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, s)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
