package skiff_test

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestValidateDomainPolicy(t *testing.T) {
	for _, in := range []string{"localhost", "a.localhost", "bücher.de", "example"} {
		if got, err := skiff.ValidateDomain(in); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
	if _, err := skiff.ValidateDomain("bücher.de"); !strings.Contains(err.Error(), "xn--") {
		t.Errorf("a Unicode name gets no hint: %v", err)
	}
}

func TestDomainCovers(t *testing.T) {
	if !skiff.DomainCovers("*.example.com", "www.example.com") || skiff.DomainCovers("*.example.com", "a.b.example.com") || skiff.DomainCovers("*.example.com", "example.com") {
		t.Error("wildcard coverage is wrong")
	}
}
