package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The errors of a user that the root file system does not name.
var (
	ErrUnknownUser  = errors.New("not in the image's /etc/passwd")
	ErrUnknownGroup = errors.New("not in the image's /etc/group")
)

// maxAccountFile caps what is read of /etc/passwd or /etc/group: they come
// from the image.
const maxAccountFile = 4 << 20

// ids is a process's user and groups.
type ids struct {
	uid, gid uint32
	extra    []uint32
}

// lookupUser resolves an image config's user, as Docker reads it: "name",
// "uid", "name:group", "uid:gid", "name:gid", "uid:group". Names are looked
// up in root's /etc/passwd and /etc/group, opened inside root (symlinks
// are followed as if root were "/", so none leads out of it). Without a
// group, a named user gets its passwd group; a numeric one gets gid = uid.
// A named user also gets the groups /etc/group lists it in.
func lookupUser(root, user string) (ids, error) {
	var out ids
	us, gs, hasGroup := strings.Cut(user, ":")
	if us == "" || (hasGroup && gs == "") {
		return out, fmt.Errorf("image user %q: empty user or group", user)
	}
	var name string
	if n, err := strconv.ParseUint(us, 10, 32); err == nil {
		out.uid, out.gid = uint32(n), uint32(n)
	} else {
		b, err := readInRoot(root, "etc/passwd")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, fmt.Errorf("image user %q: %w", user, err)
		}
		ent, ok := findPasswd(b, us)
		if !ok {
			return out, fmt.Errorf("image user %q: %w", us, ErrUnknownUser)
		}
		out.uid, out.gid, name = ent.uid, ent.gid, us
	}
	var groups []groupEntry
	if !hasGroup && name == "" {
		return out, nil // numeric, no group: nothing to read
	}
	b, err := readInRoot(root, "etc/group")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return out, fmt.Errorf("image user %q: %w", user, err)
	}
	groups = parseGroups(b)
	if hasGroup {
		if n, err := strconv.ParseUint(gs, 10, 32); err == nil {
			out.gid = uint32(n)
		} else {
			found := false
			for _, g := range groups {
				if g.name == gs {
					out.gid, found = g.gid, true
					break
				}
			}
			if !found {
				return out, fmt.Errorf("image group %q: %w", gs, ErrUnknownGroup)
			}
		}
	}
	if name != "" {
		for _, g := range groups {
			if g.gid != out.gid && g.hasMember(name) && len(out.extra) < 64 {
				out.extra = append(out.extra, g.gid)
			}
		}
	}
	return out, nil
}

// resolveUser returns a copy of s with s.User looked up in the root file
// system at rootPath.
func (r *Runc) resolveUser(s *Spec, rootPath string) (*Spec, error) {
	id, err := lookupUser(rootPath, s.User)
	if err != nil {
		return nil, err
	}
	if s.UserNS {
		for _, n := range append([]uint32{id.uid, id.gid}, id.extra...) {
			if n >= r.cfg.IDMap.Size {
				return nil, fmt.Errorf("image user %q: id %d is outside the container's range (0-%d)", s.User, n, r.cfg.IDMap.Size-1)
			}
		}
	}
	c := *s
	c.UID, c.GID, c.ExtraGIDs = id.uid, id.gid, id.extra
	return &c, nil
}

// readInRoot reads the regular file rel inside root, up to maxAccountFile.
func readInRoot(root, rel string) ([]byte, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	how := unix.OpenHow{
		// O_NONBLOCK: a FIFO in its place must not hang the daemon.
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	var fd int
	for {
		fd, err = unix.Openat2(dir, rel, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/" + rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("/%s is not a regular file", rel)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxAccountFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAccountFile {
		return nil, fmt.Errorf("/%s is larger than %d bytes", rel, maxAccountFile)
	}
	return b, nil
}

type passwdEntry struct {
	uid, gid uint32
}

// findPasswd finds name in a passwd file (name:password:uid:gid:…);
// malformed lines are skipped.
func findPasswd(b []byte, name string) (passwdEntry, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxAccountFile)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] != name {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 == nil && err2 == nil {
			return passwdEntry{uid: uint32(uid), gid: uint32(gid)}, true
		}
	}
	return passwdEntry{}, false
}

type groupEntry struct {
	name    string
	gid     uint32
	members string // comma-separated
}

func (g groupEntry) hasMember(name string) bool {
	for m := range strings.SplitSeq(g.members, ",") {
		if m == name {
			return true
		}
	}
	return false
}

// parseGroups reads a group file (name:password:gid:members); malformed
// lines are skipped.
func parseGroups(b []byte) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxAccountFile)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] == "" {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		out = append(out, groupEntry{name: f[0], gid: uint32(gid), members: f[3]})
	}
	return out
}
