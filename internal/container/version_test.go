package container

import (
	"context"
	"os/exec"
	"testing"
)

func TestRuncVersionPolicy(t *testing.T) {
	cases := []struct {
		out, allow string
		ok         bool
	}{
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n", "", true},
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\nspec: 1.0.2-dev\n", "", false},
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\n", "1.1.5+ds1-1", true},
		{"runc version 1.1.11\ncommit: v1.1.11-0-g4bccb38c\n", "", false},
		{"runc version 1.1.12\ncommit: v1.1.12-0-g51d5e946\n", "", true},
		{"runc version 1.2.7\ncommit: x\n", "", false},
		{"runc version 1.2.8\ncommit: x\n", "", true},
		{"runc version 1.3.2\ncommit: x\n", "", false},
		{"runc version 1.3.3\ncommit: x\n", "", true},
		{"runc version 1.4.0\ncommit: x\n", "", true},
		{"runc version 1.0.3\ncommit: x\n", "", false},
		{"runc version 0.1.1\n", "", false},
		{"garbage", "", false},
	}
	for _, c := range cases {
		err := ParseRuncVersion(c.out).Acceptable(c.allow)
		if (err == nil) != c.ok {
			t.Errorf("%q allow %q: err = %v, want ok=%v", c.out, c.allow, err, c.ok)
		}
	}
}

func TestInstalledRuncPasses(t *testing.T) {
	bin, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("no runc installed")
	}
	v, err := CheckRunc(context.Background(), bin, "")
	if err != nil {
		t.Fatalf("installed runc %+v refused: %v", v, err)
	}
}
