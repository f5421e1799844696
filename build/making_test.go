package build

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// A push while the default builder is being made (make run makes it after
// the daemon starts) is told to wait for it, not to make one.
func TestBuilderBeingMade(t *testing.T) {
	p := newTestPlatform(t, Config{})
	_, err := p.builder(context.Background(), DefaultBuilder)
	if err == nil || !strings.Contains(err.Error(), "run skiff builder:create") {
		t.Fatalf("no builder: %v", err)
	}
	p.making.Store(time.Now().Add(-40 * time.Second).UnixNano())
	_, err = p.builder(context.Background(), DefaultBuilder)
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "being made (for 40s now") || strings.Contains(err.Error(), "builder:create") {
		t.Fatalf("while it is made: %v", err)
	}
}
