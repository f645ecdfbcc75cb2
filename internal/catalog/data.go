package catalog

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

//go:embed catalog.json
var embeddedJSON []byte

// SchemaVersion is the catalog.json format this package reads and writes.
const SchemaVersion = 1

// File is the catalog.json document. The refresh program reads and writes it
// through Decode and Encode so that the layout stays stable.
type File struct {
	SchemaVersion int         `json:"schema_version"`
	AsOf          string      `json:"as_of"`    // date the prices are valid for
	Compiled      string      `json:"compiled"` // date the file was written
	Currency      string      `json:"currency"`
	Sources       []string    `json:"sources"`
	Notes         []string    `json:"notes"`
	Clouds        []FileCloud `json:"clouds"`
}

// FileCloud is one cloud's section of the catalog file.
type FileCloud struct {
	Name    string       `json:"name"`
	Source  string       `json:"source"`
	Regions []FileRegion `json:"regions"`
	Types   []FileType   `json:"types"`
	Prices  []FilePrice  `json:"prices"`
}

// FileRegion lists a region's zones.
type FileRegion struct {
	Name  string   `json:"name"`
	Zones []string `json:"zones"`
}

// FileType is one instance type's hardware.
type FileType struct {
	Name         string  `json:"name"`
	Family       string  `json:"family"`
	GPU          string  `json:"gpu"`
	GPUCount     int     `json:"gpu_count"`
	GPUMemoryGiB float64 `json:"gpu_memory_gib"`
	VCPUs        int     `json:"vcpus"`
	MemoryGiB    float64 `json:"memory_gib"`
	Arch         string  `json:"arch"`
	// SpotDiscount estimates the usual spot discount (0.6 means spot costs
	// 40% of on-demand), used where no spot price is known.
	SpotDiscount float64 `json:"spot_discount"`
}

// FilePrice is one instance type's price and zones in one region.
type FilePrice struct {
	Type     string  `json:"type"`
	Region   string  `json:"region"`
	OnDemand float64 `json:"on_demand"`
	// Spot is a known spot price; zero means estimate it from SpotDiscount.
	Spot float64 `json:"spot,omitempty"`
	// Estimate marks an approximated on-demand price.
	Estimate bool     `json:"estimate"`
	Zones    []string `json:"zones"`
}

// Decode parses and validates a catalog file.
func Decode(data []byte) (*File, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding catalog: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks the file's internal consistency: known schema, positive
// prices and sizes, known architectures, normalised GPU names, every price row
// naming a known type and region with zones of that region, every type priced
// somewhere, no duplicates.
func (f *File) Validate() error {
	if f.SchemaVersion != SchemaVersion {
		return fmt.Errorf("catalog schema_version %d, want %d", f.SchemaVersion, SchemaVersion)
	}
	if f.AsOf == "" || f.Currency != "USD" {
		return fmt.Errorf("catalog must record as_of and currency USD (as_of %q, currency %q)", f.AsOf, f.Currency)
	}
	if len(f.Sources) == 0 {
		return fmt.Errorf("catalog records no sources")
	}
	seenCloud := map[string]bool{}
	for _, c := range f.Clouds {
		if c.Name == "" || seenCloud[c.Name] {
			return fmt.Errorf("catalog cloud name %q empty or repeated", c.Name)
		}
		seenCloud[c.Name] = true
		if err := c.validate(); err != nil {
			return fmt.Errorf("catalog cloud %s: %w", c.Name, err)
		}
	}
	return nil
}

func (c *FileCloud) validate() error {
	regionZones := map[string]map[string]bool{}
	for _, r := range c.Regions {
		if r.Name == "" || regionZones[r.Name] != nil {
			return fmt.Errorf("region %q empty or repeated", r.Name)
		}
		if len(r.Zones) == 0 {
			return fmt.Errorf("region %s lists no zones", r.Name)
		}
		zs := map[string]bool{}
		for _, z := range r.Zones {
			zs[z] = true
		}
		regionZones[r.Name] = zs
	}
	types := map[string]bool{}
	for _, t := range c.Types {
		if t.Name == "" || types[t.Name] {
			return fmt.Errorf("instance type %q empty or repeated", t.Name)
		}
		types[t.Name] = true
		switch {
		case t.GPUCount <= 0 || t.VCPUs <= 0 || !positive(t.GPUMemoryGiB) || !positive(t.MemoryGiB):
			return fmt.Errorf("instance type %s: GPU count, GPU memory, vCPUs and memory must be positive", t.Name)
		case t.Arch != ArchX86 && t.Arch != ArchARM:
			return fmt.Errorf("instance type %s: architecture %q, want %s or %s", t.Name, t.Arch, ArchX86, ArchARM)
		case t.GPU == "" || NormalizeGPU(t.GPU) != t.GPU:
			return fmt.Errorf("instance type %s: GPU %q is not a normalised model name", t.Name, t.GPU)
		case t.SpotDiscount < 0 || t.SpotDiscount >= 1 || math.IsNaN(t.SpotDiscount):
			return fmt.Errorf("instance type %s: spot_discount %v outside [0, 1)", t.Name, t.SpotDiscount)
		}
	}
	priced := map[string]bool{}
	seen := map[string]bool{}
	for _, p := range c.Prices {
		key := p.Type + "@" + p.Region
		if seen[key] {
			return fmt.Errorf("price for %s in %s repeated", p.Type, p.Region)
		}
		seen[key] = true
		if !types[p.Type] {
			return fmt.Errorf("price for unknown instance type %s", p.Type)
		}
		zs, ok := regionZones[p.Region]
		if !ok {
			return fmt.Errorf("price for %s in unknown region %s", p.Type, p.Region)
		}
		if !positive(p.OnDemand) || p.Spot < 0 || math.IsNaN(p.Spot) || p.Spot > p.OnDemand {
			return fmt.Errorf("price for %s in %s: on_demand %v must be positive and spot %v within [0, on_demand]", p.Type, p.Region, p.OnDemand, p.Spot)
		}
		if len(p.Zones) == 0 {
			return fmt.Errorf("price for %s in %s lists no zones", p.Type, p.Region)
		}
		for _, z := range p.Zones {
			if !zs[z] {
				return fmt.Errorf("price for %s in %s lists zone %s, not a zone of the region", p.Type, p.Region, z)
			}
		}
		priced[p.Type] = true
	}
	for _, t := range c.Types {
		if !priced[t.Name] {
			return fmt.Errorf("instance type %s has no price in any region", t.Name)
		}
	}
	return nil
}

func positive(v float64) bool { return v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// Encode writes the file in the committed layout: one region, type or price
// per line, so that a refresh shows up as a readable diff.
func Encode(f *File) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	var encErr error
	line := func(v any) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil && encErr == nil {
			encErr = fmt.Errorf("encoding catalog: %w", err)
		}
		return spaced(strings.TrimSuffix(buf.String(), "\n"))
	}
	list := func(indent string, items []string) string {
		return "[\n" + indent + "  " + strings.Join(items, ",\n"+indent+"  ") + "\n" + indent + "]"
	}
	strs := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = line(s)
		}
		return out
	}
	b.WriteString("{\n")
	fmt.Fprintf(&b, "  \"schema_version\": %d,\n", f.SchemaVersion)
	fmt.Fprintf(&b, "  \"as_of\": %s,\n", line(f.AsOf))
	fmt.Fprintf(&b, "  \"compiled\": %s,\n", line(f.Compiled))
	fmt.Fprintf(&b, "  \"currency\": %s,\n", line(f.Currency))
	fmt.Fprintf(&b, "  \"sources\": %s,\n", list("  ", strs(f.Sources)))
	fmt.Fprintf(&b, "  \"notes\": %s,\n", list("  ", strs(f.Notes)))
	b.WriteString("  \"clouds\": [\n")
	for i, c := range f.Clouds {
		b.WriteString("    {\n")
		fmt.Fprintf(&b, "      \"name\": %s,\n", line(c.Name))
		fmt.Fprintf(&b, "      \"source\": %s,\n", line(c.Source))
		var rs, ts, ps []string
		for _, r := range c.Regions {
			rs = append(rs, line(r))
		}
		for _, t := range c.Types {
			ts = append(ts, line(t))
		}
		for _, p := range c.Prices {
			ps = append(ps, line(p))
		}
		fmt.Fprintf(&b, "      \"regions\": %s,\n", list("      ", rs))
		fmt.Fprintf(&b, "      \"types\": %s,\n", list("      ", ts))
		fmt.Fprintf(&b, "      \"prices\": %s\n", list("      ", ps))
		b.WriteString("    }")
		if i < len(f.Clouds)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("  ]\n}\n")
	if encErr != nil {
		return nil, encErr
	}
	return b.Bytes(), nil
}

// spaced turns compact JSON ({"a":1,"b":[2,3]}) into the committed style
// ({"a": 1, "b": [2, 3]}), leaving string contents alone.
func spaced(s string) string {
	var b strings.Builder
	inString, escaped := false, false
	for _, r := range s {
		b.WriteRune(r)
		switch {
		case inString && escaped:
			escaped = false
		case inString && r == '\\':
			escaped = true
		case r == '"':
			inString = !inString
		case !inString && (r == ':' || r == ','):
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
