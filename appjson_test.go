package skiff_test

import (
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

func TestParseAppJSON(t *testing.T) {
	a, err := skiff.ParseAppJSON([]byte(`{"name": "x", "scripts": {}, "healthchecks": {"web": [
		{"type": "liveness", "path": "/live"},
		{"type": "startup", "name": "ready", "path": "/health/ready", "attempts": 3, "timeout": 5, "wait": 2}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	hc, ok := a.WebCheck()
	if !ok || hc.Path != "/health/ready" || hc.Timeout != 5*time.Second || hc.Interval != 2*time.Second || hc.Deadline != 21*time.Second {
		t.Fatalf("web check %+v %v", hc, ok)
	}
	if a, _ := skiff.ParseAppJSON([]byte(`{"healthchecks": {"worker": [{"path": "/x"}]}}`)); a != nil {
		if _, ok := a.WebCheck(); ok {
			t.Error("a worker check became the web check")
		}
	}
	for _, bad := range []string{`{`, `{"healthchecks": {"web": [{"path": "health"}]}}`, `{"healthchecks": {"web": [{"path": "/a b"}]}}`,
		`{"healthchecks": {"web": [{"path": "/x", "timeout": -1}]}}`, `{"healthchecks": []}`} {
		if _, err := skiff.ParseAppJSON([]byte(bad)); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func FuzzParseAppJSON(f *testing.F) {
	f.Add([]byte(`{"healthchecks": {"web": [{"type": "startup", "path": "/up", "attempts": 2, "timeout": 1}]}}`))
	f.Add([]byte(`{"healthchecks": {"web": [{"path": "nope"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := skiff.ParseAppJSON(data)
		if err != nil {
			return
		}
		if hc, ok := a.WebCheck(); ok && (hc.Path == "" || hc.Path[0] != '/' || hc.Timeout < 0 || hc.Deadline < 0) {
			t.Fatalf("accepted check %+v", hc)
		}
	})
}
