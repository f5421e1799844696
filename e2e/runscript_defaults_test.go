package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// make run reads /etc/default/skiff line by line; a line whose key is not
// a variable name is skipped, never evaluated, and values are taken as
// text. (Run as nobody, the script stops at its root check, after reading
// the file.)
func TestRunScriptDefaultsAreNotEvaluated(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o711)
	os.Chmod(dir, 0o777)
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	marker := filepath.Join(dir, "evaluated")
	defaults := filepath.Join(dir, "defaults")
	lines := []string{
		`SKIFF_X;touch ` + marker + `=1`,
		`SKIFF_Y}" ] || touch ` + marker + `; [ "${SKIFF_Z=1`,
		`SKIFF_Q=$(touch ` + marker + `)`,
		"SKIFF_R=`touch " + marker + "`",
		`SKIFF_DOMAIN="ok.test"`,
	}
	script, _ := filepath.Abs("../scripts/run.sh")
	for _, line := range lines[:len(lines)-1] {
		os.WriteFile(defaults, []byte(line+"\n"+lines[len(lines)-1]+"\n"), 0o644)
		if err := exec.Command(nobody[0], append(nobody[1:], "test", "-r", defaults)...).Run(); err != nil {
			t.Fatalf("the script's user cannot read the defaults file: %v", err)
		}
		cmd := exec.Command(nobody[0], append(nobody[1:], "sh", script)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SKIFF_DEFAULTS=" + defaults, "SKIFF_DATA=" + filepath.Join(dir, "data")}
		out, err := cmd.CombinedOutput()
		if _, serr := os.Stat(marker); serr == nil {
			t.Fatalf("the defaults line %q was evaluated:\n%s", line, out)
		}
		if err == nil || !strings.Contains(string(out), "run it as root") {
			t.Errorf("%q: want the root check after reading the defaults: %v\n%s", line, err, out)
		}
	}
}
