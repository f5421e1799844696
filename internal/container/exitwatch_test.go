package container_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/internal/container/containertest"
)

// Where the kernel's process-event connector reports nothing (skiff on a
// server that is itself a container: the kernel ignores listeners outside
// the initial PID namespace), exit codes and signals are still known: this
// test runs the exit tests again in a PID namespace of their own, where the
// connector is blind, and checks that the Runc said so.
func TestExitStatusWhereTheConnectorIsBlind(t *testing.T) {
	containertest.RequireRoot(t)
	if os.Getenv("SKIFF_TEST_PIDNS") != "" {
		t.Skip("already inside the PID namespace")
	}
	cmd := exec.Command("/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "--", os.Args[0],
		"-test.run", "^(TestExitCodeAndSignal|TestAdoptAfterRestart|TestDegradedInPIDNamespace)$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "SKIFF_TEST_PIDNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a PID namespace: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestExitCodeAndSignal", "--- PASS: TestAdoptAfterRestart", "--- PASS: TestDegradedInPIDNamespace"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// TestDegradedInPIDNamespace runs inside the PID namespace of the test
// above: the Runc notices the blind connector and says what it does instead.
func TestDegradedInPIDNamespace(t *testing.T) {
	e := containertest.New(t)
	d := e.Runc.Degraded()
	if os.Getenv("SKIFF_TEST_PIDNS") == "" {
		// On this host the connector reports, and nothing is degraded.
		if len(d) != 0 {
			t.Logf("this host is degraded already: %v", d)
		}
		return
	}
	if len(d) != 1 || !strings.Contains(d[0], "connector reports nothing here") {
		t.Fatalf("Degraded() = %v, want the connector named", d)
	}
}
