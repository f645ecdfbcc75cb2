package provider

import (
	"fmt"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
)

// Every diagnostic the provider emits is built here, so wording stays uniform:
// a title-style summary, then a sentence of detail with what to do, then the
// original error.

func rootPath(names ...string) path.Path {
	p := path.Root(names[0])
	for _, n := range names[1:] {
		p = p.AtName(n)
	}
	return p
}

func attrError(p path.Path, summary, detail string) diag.Diagnostic {
	return diag.NewAttributeErrorDiagnostic(p, summary, detail)
}

func errorDiag(summary, detail string, err error) diag.Diagnostic {
	if err != nil {
		detail = fmt.Sprintf("%s\n\n%s", detail, err)
	}
	return diag.NewErrorDiagnostic(summary, detail)
}

func unexpectedDataDiag(got any) diag.Diagnostic {
	return diag.NewErrorDiagnostic("Unexpected Provider Data",
		fmt.Sprintf("Expected *providerData, got %T. This is a bug in the provider; please report it.", got))
}

func unsupportedForCloudDiag(p path.Path, cloudName string) diag.Diagnostic {
	return attrError(p, "Attribute not supported for this cloud",
		fmt.Sprintf("%s is not supported with cloud = %q. Remove it, or choose a cloud that supports it.", p, cloudName))
}

// diagList is the diagnostics type helpers return.
type diagList = diag.Diagnostics

// durationRE matches Go durations such as "2ms", "500us", "1.5s".
var durationRE = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)
