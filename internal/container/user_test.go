package container

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func writeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if target, ok := strings.CutPrefix(body, "symlink:"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\n# a comment\nbroken line\ncnb:x:1000:1000::/home/cnb:/bin/sh\nweb:x:1001:2000::/:/\nbad:x:notanumber:1:::\n"
	testGroup  = "root:x:0:\ncnb:x:1000:\nstaff:x:50:cnb,web\nwww:x:2000:\ndocker:x:999:other,cnb\n"
)

func TestLookupUser(t *testing.T) {
	root := writeRoot(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	for _, tc := range []struct {
		user string
		want ids
		err  error
	}{
		{"cnb", ids{1000, 1000, []uint32{50, 999}}, nil},
		{"web", ids{1001, 2000, []uint32{50}}, nil},
		{"cnb:staff", ids{1000, 50, []uint32{999}}, nil},
		{"cnb:4242", ids{1000, 4242, []uint32{50, 999}}, nil},
		{"1000:www", ids{1000, 2000, nil}, nil},
		{"1234", ids{1234, 1234, nil}, nil},
		{"0:0", ids{0, 0, nil}, nil},
		{"nobody", ids{}, ErrUnknownUser},
		{"bad", ids{}, ErrUnknownUser},
		{"cnb:nogroup", ids{}, ErrUnknownGroup},
	} {
		got, err := lookupUser(root, tc.user)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: err %v, want %v", tc.user, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v %v, want %+v", tc.user, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", ":", "cnb:", ":cnb"} {
		if _, err := lookupUser(root, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestLookupUserStaysInRoot: symlinks in the image are followed as the
// container would see them, never to the host's files.
func TestLookupUserStaysInRoot(t *testing.T) {
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "passwd"), []byte("hostonly:x:4321:4321::/:/\n"), 0o644)
	for name, files := range map[string]map[string]string{
		"absolute": {"etc/passwd": "symlink:" + filepath.Join(host, "passwd")},
		"dotdot":   {"etc/passwd": "symlink:../../../../../../../../" + filepath.Join(host, "passwd")},
		"dir":      {"etc": "symlink:" + host},
	} {
		root := writeRoot(t, nil)
		os.RemoveAll(filepath.Join(root, "etc"))
		for p, body := range files {
			os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
			os.Symlink(strings.TrimPrefix(body, "symlink:"), filepath.Join(root, p))
		}
		if id, err := lookupUser(root, "hostonly"); !errors.Is(err, ErrUnknownUser) {
			t.Errorf("%s: the host's passwd was read: %+v %v", name, id, err)
		}
	}
	// A symlink that stays inside the image is fine.
	root := writeRoot(t, map[string]string{"usr/share/accounts": testPasswd, "etc/passwd": "symlink:/usr/share/accounts"})
	if id, err := lookupUser(root, "cnb"); err != nil || id.uid != 1000 {
		t.Errorf("symlink inside the image: %+v %v", id, err)
	}
}

func TestLookupUserOddFiles(t *testing.T) {
	root := writeRoot(t, nil)
	// A FIFO must not hang the daemon.
	if err := unix.Mkfifo(filepath.Join(root, "etc", "passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := lookupUser(root, "cnb"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO passwd: %v", err)
	}
	root = writeRoot(t, map[string]string{"etc/passwd": strings.Repeat("x", maxAccountFile+1)})
	if _, err := lookupUser(root, "cnb"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge passwd: %v", err)
	}
	root = writeRoot(t, nil) // no /etc/passwd at all
	if _, err := lookupUser(root, "cnb"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("no passwd: %v", err)
	}
}

// FuzzAccountFiles: passwd and group files come from images.
func FuzzAccountFiles(f *testing.F) {
	f.Add([]byte(testPasswd), "cnb")
	f.Add([]byte(testGroup), "staff")
	f.Add([]byte("a:b:c\n::::\n\x00:x:1:1\n"), "a")
	f.Add([]byte(strings.Repeat(":", 5000)), "")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		findPasswd(b, name)
		for _, g := range parseGroups(b) {
			if g.name == "" {
				t.Fatalf("group without a name from %q", b)
			}
			g.hasMember(name)
		}
	})
}
