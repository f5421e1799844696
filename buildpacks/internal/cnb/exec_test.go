package cnb

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A command runs the program found in its own PATH, not the caller's.
func TestRunUsesCommandPath(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "whoami-tool")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho from-layer \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	bc := &BuildContext{Context: context.Background(), Log: NewLog(&out)}
	env := Env{"PATH=/usr/bin:/bin"}.PrependPath(dir)
	if err := bc.Run(Cmd{Name: "whoami-tool", Args: []string{"x"}, Env: env}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "       from-layer x\n" {
		t.Errorf("output %q", out.String())
	}
	if err := bc.Run(Cmd{Name: "whoami-tool", Env: Env{"PATH=/usr/bin:/bin"}}); err == nil {
		t.Error("found a tool outside the command's PATH")
	}
}

func TestIndentedOutput(t *testing.T) {
	var out bytes.Buffer
	w := NewLog(&out).Indented()
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\r\nprogress 10%\rprogress 100%\nlast"))
	w.Close()
	want := "       one\n       two\n       progress 100%\n       last\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	var big bytes.Buffer
	w = NewLog(&big).Indented()
	w.Write(bytes.Repeat([]byte("x"), maxPartialLine+10))
	if big.Len() == 0 {
		t.Error("a line longer than the cap stays buffered")
	}
	w.Write([]byte("y\n"))
	w.Close()
	if n := strings.Count(big.String(), "\n"); n != 2 {
		t.Errorf("a long line: %d lines", n)
	}
}
