package layer

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"
)

// ent is one entry of a test archive.
type ent struct {
	name, link string
	typ        byte
	body       string
	mode       int64
	size       int64 // overrides len(body) when set
	xattrs     map[string]string
}

func dir(name string) ent          { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func file(name, body string) ent   { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func symlink(name, to string) ent  { return ent{name: name, typ: tar.TypeSymlink, link: to} }
func hardlink(name, to string) ent { return ent{name: name, typ: tar.TypeLink, link: to} }

// mktar builds an archive; a header whose content is missing (size set) is
// written anyway, as a hostile archive would.
func mktar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: size,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if e.xattrs != nil {
			hdr.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				hdr.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.size != 0 {
			return buf.Bytes() // content left out on purpose
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
