package build

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBuildOutputPhasesAndFilter(t *testing.T) {
	var user bytes.Buffer
	log, err := openCappedLog(filepath.Join(t.TempDir(), "b.log"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o := newBuildOutput(&user, log, 1<<20)
	clock := time.Unix(0, 0)
	o.now = func() time.Time { return clock }
	step := func(d time.Duration, s string) { clock = clock.Add(d); o.Write([]byte(s)) }
	step(0, "===> ANALYZING\nImage with name \"x\" not found\n")
	step(time.Second, "===> DETECTING\nskiff/go 0.1.0\n===> RESTORING\n")
	step(2*time.Second, "===> BUILDING\n-----> Installing Go\x1b[31m red\x1b[0m\n       go: downloading\r\n")
	step(5*time.Second, "===> EXPORTING\nAdding layer 'x'\nERROR: failed to export: boom\n")
	step(3*time.Second, "")
	o.finish()
	got := user.String()
	want := "       skiff/go 0.1.0\n-----> Installing Go red\n       go: downloading\nERROR: failed to export: boom\n"
	if got != want {
		t.Errorf("user output:\n%q\nwant\n%q", got, want)
	}
	ph := o.Phases()
	if ph.Analyze != time.Second || ph.Restore != 2*time.Second || ph.Build != 5*time.Second || ph.Export != 3*time.Second {
		t.Errorf("phases %+v", ph)
	}
	if o.lastError() != "failed to export: boom" {
		t.Errorf("lastError %q", o.lastError())
	}
	if s := ph.String(); s != "detect 0.0s, restore 3.0s, build 5.0s, export 3.0s" {
		t.Errorf("phases line %q", s)
	}
}

func TestCappedLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.log")
	l, _ := openCappedLog(p, 100)
	for range 50 {
		l.WriteLine("0123456789")
	}
	l.Close()
	b := readFile(t, p)
	if len(b) > 150 || !strings.Contains(b, "[log truncated at 100 bytes]") || strings.Count(b, "truncated") != 1 {
		t.Errorf("log %d bytes: %q", len(b), b)
	}
}

func FuzzBuildOutput(f *testing.F) {
	f.Add([]byte("===> BUILDING\nhello\x1b]0;title\x07world\n"), 3)
	f.Add([]byte("===> BUILDING\n"+strings.Repeat("x", 20000)), 7)
	f.Add([]byte("\x1b[2J\x1b[H\x9b31m\r\x00"), 1)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		var user bytes.Buffer
		o := newBuildOutput(&user, nil, 1<<20)
		o.Write([]byte("===> BUILDING\n"))
		if chunk <= 0 {
			chunk = 1
		}
		for i := 0; i < len(data); i += chunk {
			o.Write(data[i:min(i+chunk, len(data))])
		}
		o.finish()
		for _, line := range strings.Split(strings.TrimSuffix(user.String(), "\n"), "\n") {
			if len(line) > maxLine+8 {
				t.Fatalf("line of %d bytes", len(line))
			}
			for _, r := range line {
				if r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 {
					t.Fatalf("control character %U reached the terminal: %q", r, line)
				}
			}
		}
	})
}

func TestBuildOutputCappedForThePusher(t *testing.T) {
	var user bytes.Buffer
	o := newBuildOutput(&user, nil, 1000)
	o.Write([]byte("===> BUILDING\n"))
	for range 100 {
		o.Write([]byte(strings.Repeat("y", 99) + "\n"))
	}
	o.Write([]byte("ERROR: failed to build: exit status 1\n"))
	o.finish()
	if user.Len() > 1200 || strings.Count(user.String(), "the rest is not shown") != 1 {
		t.Errorf("%d bytes reached the pusher:\n%s", user.Len(), user.String())
	}
	if o.lastOutput() != strings.Repeat("y", 99) {
		t.Errorf("lastOutput %q", o.lastOutput())
	}
}

// A buildpack's failure message of several lines (the message and its
// hints) is repeated whole in the build's error, not only its last line;
// warnings printed before it are not part of it.
func TestBuildOutputFailureMessageWhole(t *testing.T) {
	o := newBuildOutput(io.Discard, nil, 1<<20)
	o.Write([]byte("===> BUILDING\n-----> Node.js app detected\n" +
		" !     Warning: yarn.lock found\n" +
		" !     missing npm start: package.json has no \"start\" script and there is no server.js\n" +
		" !     Add a start script to package.json, like \"scripts\": {\"start\": \"node index.js\"},\n" +
		" !     or a server.js, or a Procfile with a web process.\n" +
		"ERROR: failed to build: exit status 1\n"))
	o.finish()
	want := `missing npm start: package.json has no "start" script and there is no server.js Add a start script to package.json, like "scripts": {"start": "node index.js"}, or a server.js, or a Procfile with a web process.`
	if got := o.lastOutput(); got != want {
		t.Errorf("lastOutput\n%q\nwant\n%q", got, want)
	}
	err := lifecycleError(51, o.lastError(), o.lastOutput())
	if !strings.Contains(err.Error(), "a buildpack failed: missing npm start") || !strings.HasSuffix(err.Error(), "with a web process.") {
		t.Errorf("summary %q", err)
	}
}
