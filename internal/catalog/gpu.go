package catalog

import (
	"fmt"
	"strconv"
	"strings"
)

// gpuAliases maps lower-case spellings to the normalised model names the
// catalog uses. Names not listed are upper-cased.
var gpuAliases = map[string]string{
	"h100": "H100", "h200": "H200", "a100": "A100", "a10g": "A10G", "a10": "A10",
	"l4": "L4", "l40s": "L40S", "l20": "L20", "t4": "T4", "t4g": "T4G", "v100": "V100",
	"a800": "A800", "h800": "H800", "h20": "H20", "a30": "A30", "p100": "P100",
}

// NormalizeGPU returns the catalog's spelling of a GPU model name: "a10g" and
// "A10G" both give "A10G"; an unknown name is upper-cased.
func NormalizeGPU(model string) string {
	m := strings.TrimSpace(model)
	if n, ok := gpuAliases[strings.ToLower(m)]; ok {
		return n
	}
	return strings.ToUpper(m)
}

// GPUChoice is one acceptable GPU model, optionally with a minimum memory per
// GPU (from a suffix such as "A100-80GB").
type GPUChoice struct {
	Model        string
	MinMemoryGiB float64
}

// String renders the choice as parsed, e.g. "A100-80GB".
func (c GPUChoice) String() string {
	if c.MinMemoryGiB > 0 {
		return fmt.Sprintf("%s-%sGB", c.Model, strconv.FormatFloat(c.MinMemoryGiB, 'f', -1, 64))
	}
	return c.Model
}

// GPUSpec is a parsed GPU requirement. The zero value matches any GPU.
type GPUSpec struct {
	// Choices are the acceptable models; empty means any model.
	Choices []GPUChoice
	// Count is the number of GPUs per instance; zero means any count.
	Count int
}

// IsZero reports whether the spec places no constraint.
func (s GPUSpec) IsZero() bool { return len(s.Choices) == 0 && s.Count == 0 }

// String renders the spec in its canonical form, e.g. "A10|A10G:1".
func (s GPUSpec) String() string {
	parts := make([]string, len(s.Choices))
	for i, c := range s.Choices {
		parts[i] = c.String()
	}
	m := strings.Join(parts, "|")
	if m == "" {
		m = "any GPU"
	}
	if s.Count > 0 {
		return fmt.Sprintf("%s:%d", m, s.Count)
	}
	return m
}

// models returns the spec's model names, for messages.
func (s GPUSpec) models() string {
	parts := make([]string, len(s.Choices))
	for i, c := range s.Choices {
		parts[i] = c.String()
	}
	return strings.Join(parts, "|")
}

// Matches reports whether an instance type satisfies the spec.
func (s GPUSpec) Matches(t Type) bool {
	return s.matchesModel(t) && (s.Count == 0 || t.GPUCount == s.Count)
}

func (s GPUSpec) matchesModel(t Type) bool {
	if len(s.Choices) == 0 {
		return true
	}
	for _, c := range s.Choices {
		if c.Model == t.GPU && t.GPUMemoryGiB >= c.MinMemoryGiB {
			return true
		}
	}
	return false
}

// ParseGPU parses a GPU requirement "MODEL[:COUNT]", case-insensitive:
// "A100:8", "H100", "a10g:1", "A100-80GB:8", "A10|A10G:1". The error names
// the part that is wrong.
func ParseGPU(s string) (GPUSpec, error) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return GPUSpec{}, fmt.Errorf("empty GPU requirement: want MODEL or MODEL:COUNT, e.g. \"A100:8\"")
	}
	modelPart, countPart, hasCount := strings.Cut(raw, ":")
	if strings.Contains(countPart, ":") {
		return GPUSpec{}, fmt.Errorf("GPU requirement %q has more than one \":\": want MODEL or MODEL:COUNT", raw)
	}
	var spec GPUSpec
	if hasCount {
		cs := strings.TrimSpace(countPart)
		if cs == "" {
			return GPUSpec{}, fmt.Errorf("GPU requirement %q: missing count after \":\"", raw)
		}
		n, err := strconv.Atoi(cs)
		if err != nil || n <= 0 {
			return GPUSpec{}, fmt.Errorf("GPU requirement %q: count %q is not a positive integer", raw, cs)
		}
		spec.Count = n
	}
	if strings.TrimSpace(modelPart) == "" {
		return GPUSpec{}, fmt.Errorf("GPU requirement %q: missing model before \":\"", raw)
	}
	seen := map[GPUChoice]bool{}
	for _, alt := range strings.Split(modelPart, "|") {
		c, err := parseChoice(alt)
		if err != nil {
			return GPUSpec{}, fmt.Errorf("GPU requirement %q: %w", raw, err)
		}
		if !seen[c] {
			seen[c] = true
			spec.Choices = append(spec.Choices, c)
		}
	}
	return spec, nil
}

func parseChoice(alt string) (GPUChoice, error) {
	a := strings.TrimSpace(alt)
	if a == "" {
		return GPUChoice{}, fmt.Errorf("empty model between \"|\"")
	}
	var c GPUChoice
	name := a
	if i := strings.LastIndex(a, "-"); i > 0 {
		suffix := strings.ToUpper(a[i+1:])
		num := strings.TrimSuffix(strings.TrimSuffix(suffix, "B"), "G")
		if strings.HasSuffix(suffix, "G") || strings.HasSuffix(suffix, "GB") {
			mem, err := strconv.ParseFloat(num, 64)
			if err != nil || mem <= 0 {
				return GPUChoice{}, fmt.Errorf("model %q: memory suffix %q is not like \"80GB\"", a, a[i+1:])
			}
			c.MinMemoryGiB = mem
			name = a[:i]
		}
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return GPUChoice{}, fmt.Errorf("model %q has the character %q: want letters and digits like \"A100\"", a, r)
		}
	}
	c.Model = NormalizeGPU(name)
	return c, nil
}
