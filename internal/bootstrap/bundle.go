package bootstrap

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Names of the bundle's files inside a version directory on the node.
const (
	AgentFile = "bin/hadrond"
	ORTFile   = "lib/libonnxruntime.so.1"
)

// Arches are the node architectures a bundle can carry, as Go names them.
var supportedArches = []string{"amd64", "arm64"}

// crossCC and crossPackage name the C cross compilers (and their Debian
// packages) used when building for the other architecture.
var (
	crossCC      = map[string]string{"amd64": "x86_64-linux-gnu-gcc", "arm64": "aarch64-linux-gnu-gcc"}
	crossPackage = map[string]string{"amd64": "gcc-x86-64-linux-gnu", "arm64": "gcc-aarch64-linux-gnu"}
)

// DefaultVersionVar is the linker variable that holds the runtime version.
const DefaultVersionVar = "github.com/hadron-ai/terraform-provider-hadron/internal/version.Version"

// ManifestName is the manifest's file name in a bundle directory.
const ManifestName = "manifest.json"

// Bundle is one version of the node runtime: the files to install, per
// architecture.
type Bundle struct {
	Version string
	Files   []File
}

// File is one file of a bundle, for one architecture. Exactly one of Source
// (a file on the provider's machine) and URL (fetched at install time) is set.
type File struct {
	// Arch is "amd64" or "arm64".
	Arch string
	// Name is the path inside the version directory: AgentFile or ORTFile.
	Name string
	// Source is the absolute path of the file on this machine.
	Source string
	// URL is where the file is downloaded from, when Source is empty.
	URL string
	// SHA256 is the file's lower-case hex digest; always set.
	SHA256 string
	// Size in bytes; -1 when unknown (URL files).
	Size int64
	// Mode is the file's permission bits on the node.
	Mode fs.FileMode
	// Gzip, when set, is a gzip-compressed copy of Source: Install uploads it
	// instead (about 2.6 times fewer bytes for hadrond and ONNX Runtime) when
	// the node has gzip, and verifies the decompressed file.
	Gzip     string
	GzipSize int64
	// GLIBC is the newest glibc symbol version the file needs ("2.34"), or
	// "" when it needs none; Install checks it against the node's glibc.
	GLIBC string
}

// ForArch returns the files for arch, sorted by name, and an error when the
// bundle has none or lacks the agent.
func (b *Bundle) ForArch(arch string) ([]File, error) {
	var out []File
	for _, f := range b.Files {
		if f.Arch == arch {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("runtime bundle %s has no files for linux/%s (it has %s)", b.Version, arch, strings.Join(b.Arches(), ", "))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if !slices.ContainsFunc(out, func(f File) bool { return f.Name == AgentFile }) {
		return nil, fmt.Errorf("runtime bundle %s has no %s for linux/%s", b.Version, AgentFile, arch)
	}
	return out, nil
}

// Arches lists the architectures the bundle carries.
func (b *Bundle) Arches() []string {
	var out []string
	for _, f := range b.Files {
		if !slices.Contains(out, f.Arch) {
			out = append(out, f.Arch)
		}
	}
	sort.Strings(out)
	return out
}

// Size is the total size of the bundle's files for arch (known sizes only).
func (b *Bundle) Size(arch string) int64 {
	var n int64
	for _, f := range b.Files {
		if f.Arch == arch && f.Size > 0 {
			n += f.Size
		}
	}
	return n
}

// WithURL returns a copy of the bundle in which the file name for arch is
// taken from url and verified against sha256 (for example a CUDA build of
// ONNX Runtime given in the provider config).
func (b *Bundle) WithURL(arch, name, url, sha256hex string) (*Bundle, error) {
	if !slices.Contains(supportedArches, arch) {
		return nil, fmt.Errorf("unsupported architecture %q (want one of %s)", arch, strings.Join(supportedArches, ", "))
	}
	sum := strings.ToLower(strings.TrimPrefix(sha256hex, "sha256:"))
	if !isSHA256(sum) {
		return nil, fmt.Errorf("sha256 of %s must be 64 hex digits, got %q", url, sha256hex)
	}
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		return nil, fmt.Errorf("url %q must be http:// or https://", url)
	}
	nb := &Bundle{Version: b.Version}
	for _, f := range b.Files {
		if f.Arch == arch && f.Name == name {
			continue
		}
		nb.Files = append(nb.Files, f)
	}
	mode := fs.FileMode(0o644)
	if name == AgentFile {
		mode = 0o755
	}
	nb.Files = append(nb.Files, File{Arch: arch, Name: name, URL: url, SHA256: sum, Size: -1, Mode: mode})
	return nb, nil
}

// sums renders the SHA256SUMS file for files (sha256sum -c format).
func sums(files []File) string {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	return b.String()
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// manifest is the JSON form of a bundle directory's manifest.json.
type manifest struct {
	Version string         `json:"version"`
	Files   []manifestFile `json:"files"`
}

type manifestFile struct {
	Arch   string `json:"arch"`
	Name   string `json:"name"`
	Path   string `json:"path,omitempty"`
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Mode   string `json:"mode"`
	// GzipPath is the gzip-compressed copy of Path, if any.
	GzipPath string `json:"gzip_path,omitempty"`
	GzipSize int64  `json:"gzip_size,omitempty"`
	// GLIBC is the newest glibc symbol version the file needs.
	GLIBC string `json:"glibc,omitempty"`
}

// LoadBundle reads a bundle directory written by BuildBundle, checking that
// every local file exists with the recorded size. (Digests are checked on the
// node, where it matters.)
func LoadBundle(dir string) (*Bundle, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("reading runtime bundle: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, ManifestName), err)
	}
	if m.Version == "" {
		return nil, fmt.Errorf("parsing %s: no version", filepath.Join(dir, ManifestName))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("reading runtime bundle: %w", err)
	}
	b := &Bundle{Version: m.Version}
	for _, mf := range m.Files {
		mode, err := strconv.ParseUint(mf.Mode, 8, 32)
		if err != nil {
			return nil, fmt.Errorf("runtime bundle %s: file %s: mode %q: %w", dir, mf.Name, mf.Mode, err)
		}
		f := File{Arch: mf.Arch, Name: mf.Name, URL: mf.URL, SHA256: mf.SHA256, Size: mf.Size, Mode: fs.FileMode(mode), GLIBC: mf.GLIBC}
		if !isSHA256(f.SHA256) || !slices.Contains(supportedArches, f.Arch) || !validName(f.Name) {
			return nil, fmt.Errorf("runtime bundle %s: invalid entry %+v", dir, mf)
		}
		if mf.Path != "" {
			f.Source = filepath.Join(abs, filepath.FromSlash(mf.Path))
			st, err := os.Stat(f.Source)
			if err != nil {
				return nil, fmt.Errorf("runtime bundle %s: %w", dir, err)
			}
			if st.Size() != f.Size {
				return nil, fmt.Errorf("runtime bundle %s: %s is %d bytes, manifest says %d", dir, mf.Path, st.Size(), f.Size)
			}
			if mf.GzipPath != "" {
				f.Gzip = filepath.Join(abs, filepath.FromSlash(mf.GzipPath))
				st, err := os.Stat(f.Gzip)
				if err != nil {
					return nil, fmt.Errorf("runtime bundle %s: %w", dir, err)
				}
				if st.Size() != mf.GzipSize {
					return nil, fmt.Errorf("runtime bundle %s: %s is %d bytes, manifest says %d", dir, mf.GzipPath, st.Size(), mf.GzipSize)
				}
				f.GzipSize = mf.GzipSize
			}
		} else if f.URL == "" {
			return nil, fmt.Errorf("runtime bundle %s: file %s has neither path nor url", dir, mf.Name)
		}
		b.Files = append(b.Files, f)
	}
	return b, nil
}

func validName(name string) bool {
	return name != "" && !strings.HasPrefix(name, "/") && path.Clean(name) == name && !strings.HasPrefix(name, "..") &&
		strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+") == ""
}

// BuildOptions says how to build a bundle directory.
type BuildOptions struct {
	// Version is the runtime version, stamped into hadrond and the manifest.
	Version string
	// OutDir receives manifest.json and linux-<arch>/ directories.
	OutDir string
	// ModuleDir is the repository root (where go.mod is).
	ModuleDir string
	// Arches to build; default amd64 and arm64.
	Arches []string
	// ORTLibraries maps an architecture to the libonnxruntime.so.1 to ship
	// for it ($HADRON_ORT_LIBRARY, $HADRON_ORT_LIBRARY_ARM64). An
	// architecture without one ships hadrond alone.
	ORTLibraries map[string]string
	// VersionVar is the -X linker target for the version; default
	// DefaultVersionVar.
	VersionVar string
	// NoCGO builds with CGO_ENABLED=0. hadrond's inference links
	// onnxruntime_go, which needs cgo, so the default is CGO_ENABLED=1 with
	// the C compiler from CC.
	NoCGO bool
	// CC maps an architecture to its C compiler. Default: the go tool's own
	// for this machine's architecture, <triple>-gcc for the other one
	// (aarch64-linux-gnu-gcc from Debian's gcc-aarch64-linux-gnu,
	// x86_64-linux-gnu-gcc from gcc-x86-64-linux-gnu).
	CC map[string]string
	// GoCommand is the go tool; default "go".
	GoCommand string
	// NoGzip skips writing gzip-compressed copies of the files.
	NoGzip bool
	// Env is the environment for go build (os.Environ() when nil); CGO_ENABLED,
	// GOOS and GOARCH are set on top of it.
	Env []string
}

// BuildBundle cross-compiles hadrond (GOOS=linux GOARCH=..., with cgo unless
// NoCGO) for each architecture, copies the ONNX Runtime libraries next to it, and
// writes manifest.json with the version and each file's sha256.
func BuildBundle(ctx context.Context, opts BuildOptions) (*Bundle, error) {
	if opts.Version == "" || opts.OutDir == "" || opts.ModuleDir == "" {
		return nil, errors.New("building runtime bundle: version, output and module directories are required")
	}
	arches := opts.Arches
	if len(arches) == 0 {
		arches = supportedArches
	}
	goCmd := opts.GoCommand
	if goCmd == "" {
		goCmd = "go"
	}
	versionVar := opts.VersionVar
	if versionVar == "" {
		versionVar = DefaultVersionVar
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	out, err := filepath.Abs(opts.OutDir)
	if err != nil {
		return nil, fmt.Errorf("building runtime bundle: %w", err)
	}
	m := manifest{Version: opts.Version}
	for _, arch := range arches {
		if !slices.Contains(supportedArches, arch) {
			return nil, fmt.Errorf("building runtime bundle: unsupported architecture %q", arch)
		}
		dir := filepath.Join(out, "linux-"+arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("building runtime bundle: %w", err)
		}
		bin := filepath.Join(dir, "hadrond")
		cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath",
			"-ldflags", "-s -w -X "+versionVar+"="+opts.Version,
			"-o", bin, "./runtime/cmd/hadrond")
		cmd.Dir = opts.ModuleDir
		cmd.Env = append(slices.Clip(env), "GOOS=linux", "GOARCH="+arch)
		if opts.NoCGO {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
		} else {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
			cc := opts.CC[arch]
			if cc == "" && arch != runtime.GOARCH {
				cc = crossCC[arch]
			}
			if cc != "" {
				if _, err := exec.LookPath(cc); err != nil {
					return nil, fmt.Errorf("building hadrond for linux/%s needs the C cross compiler %s (cgo, for onnxruntime_go): install Debian's %s or set CC: %w", arch, cc, crossPackage[arch], err)
				}
				cmd.Env = append(cmd.Env, "CC="+cc)
			}
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("building hadrond for linux/%s: %w: %s", arch, err, strings.TrimSpace(stderr.String()))
		}
		mf, err := describe(out, bin, arch, AgentFile, 0o755, !opts.NoGzip)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, mf)
		if lib := opts.ORTLibraries[arch]; lib != "" {
			dst := filepath.Join(dir, "libonnxruntime.so.1")
			if err := copyFile(lib, dst); err != nil {
				return nil, fmt.Errorf("building runtime bundle: onnx runtime for linux/%s: %w", arch, err)
			}
			mf, err := describe(out, dst, arch, ORTFile, 0o644, !opts.NoGzip)
			if err != nil {
				return nil, err
			}
			m.Files = append(m.Files, mf)
		}
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("building runtime bundle: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, ManifestName), append(raw, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("building runtime bundle: %w", err)
	}
	return LoadBundle(out)
}

func describe(root, file, arch, name string, mode fs.FileMode, compress bool) (manifestFile, error) {
	sum, size, err := fileSHA256(file)
	if err != nil {
		return manifestFile{}, fmt.Errorf("building runtime bundle: %w", err)
	}
	rel, err := filepath.Rel(root, file)
	if err != nil {
		return manifestFile{}, fmt.Errorf("building runtime bundle: %w", err)
	}
	mf := manifestFile{Arch: arch, Name: name, Path: filepath.ToSlash(rel), SHA256: sum, Size: size, Mode: fmt.Sprintf("%04o", mode)}
	if mf.GLIBC, err = requiredGLIBC(file); err != nil {
		return manifestFile{}, fmt.Errorf("building runtime bundle: %s: %w", rel, err)
	}
	if compress {
		n, err := gzipFile(file, file+".gz")
		if err != nil {
			return manifestFile{}, fmt.Errorf("building runtime bundle: compressing %s: %w", rel, err)
		}
		mf.GzipPath, mf.GzipSize = filepath.ToSlash(rel)+".gz", n
	}
	return mf, nil
}

// requiredGLIBC returns the newest GLIBC_x.y symbol version an ELF file
// imports ("2.34"), or "" for a static binary.
func requiredGLIBC(file string) (string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	syms, err := f.ImportedSymbols()
	if err != nil {
		if errors.Is(err, elf.ErrNoSymbols) {
			return "", nil
		}
		return "", fmt.Errorf("reading imported symbols: %w", err)
	}
	best := ""
	for _, s := range syms {
		v, ok := strings.CutPrefix(s.Version, "GLIBC_")
		if ok && versionLess(best, v) {
			best = v
		}
	}
	return best, nil
}

// versionLess compares dotted numeric versions ("2.3.2" < "2.34"); "" is
// the smallest.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	if a == "" {
		return b != ""
	}
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// gzipFile writes a gzip-compressed copy of src to dst and returns its size.
func gzipFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer os.Remove(dst + ".tmp")
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(dst + ".tmp")
	if err != nil {
		return 0, err
	}
	return st.Size(), os.Rename(dst+".tmp", dst)
}

func fileSHA256(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
