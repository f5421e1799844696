package admin_test

import (
	"testing"

	"github.com/skiffhq/skiff/admin"
)

// An app's URL names the router's port when it is not HTTP's own: a server
// whose router listens on :8080 answers at http://shop.example.com:8080,
// and http://shop.example.com (port 80) reaches something else or nothing.
func TestWebURLNamesTheRoutersPort(t *testing.T) {
	for port, want := range map[int]string{
		0:     "http://shop.example.com",
		80:    "http://shop.example.com",
		8080:  "http://shop.example.com:8080",
		24080: "http://shop.example.com:24080",
	} {
		if got := (admin.Info{Domain: "example.com", HTTPPort: port}).WebURL("shop"); got != want {
			t.Errorf("port %d: WebURL %q, want %q", port, got, want)
		}
	}
}
