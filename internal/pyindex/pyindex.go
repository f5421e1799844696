// Package pyindex is a Python package index for tests where PyPI is not
// reachable: it turns Debian's pure-Python packages (python3-flask,
// python3-django, gunicorn …, fetched with apt-get download) into wheels
// and serves them as a PEP 503 "simple" index, so that pip installs real
// Flask and Django, dependencies and console scripts included.
package pyindex

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Wheel is one wheel of the index.
type Wheel struct {
	Name     string // normalized project name
	Version  string
	File     string // the wheel's file name
	SHA256   string // hex
	Requires []string
	data     []byte
}

// Hash is the wheel's hash as lock files write it.
func (w *Wheel) Hash() string { return "sha256:" + w.SHA256 }

// Index is a set of wheels, one per project.
type Index struct {
	Wheels map[string]*Wheel
}

var sepRE = regexp.MustCompile(`[-_.]+`)

// Upstream are the run-time requirements of projects whose Debian package
// leaves them out of its metadata (Debian's own dependencies stand for
// them), as the projects' releases declare them.
var Upstream = map[string][]string{
	"flask":    {"Werkzeug>=2.2.2", "Jinja2>=3.0", "itsdangerous>=2.0", "click>=8.0"},
	"werkzeug": {"MarkupSafe>=2.1.1"},
	"jinja2":   {"MarkupSafe>=2.0"},
	"django":   {"asgiref>=3.3.2,<4", "pytz", "sqlparse>=0.2.2"},
	"gunicorn": {"setuptools>=3.0"},
}

// Normalize is PEP 503's name normalization.
func Normalize(name string) string { return sepRE.ReplaceAllString(strings.ToLower(name), "-") }

// FromDebian downloads the Debian packages into cacheDir (kept between
// runs) with the host's apt-get and makes a wheel of each.
func FromDebian(ctx context.Context, cacheDir string, debs ...string) (*Index, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	var missing []string
	for _, d := range debs {
		if m, _ := filepath.Glob(filepath.Join(cacheDir, d+"_*.deb")); len(m) == 0 {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"download", "-q"}, missing...)...)
		cmd.Dir = cacheDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get download %s: %v\n%s", strings.Join(missing, " "), err, out)
		}
	}
	ix := &Index{Wheels: map[string]*Wheel{}}
	for _, d := range debs {
		m, _ := filepath.Glob(filepath.Join(cacheDir, d+"_*.deb"))
		if len(m) == 0 {
			return nil, fmt.Errorf("apt-get download left no %s package", d)
		}
		w, err := wheelFromDeb(ctx, m[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(m[0]), err)
		}
		ix.Wheels[w.Name] = w
	}
	return ix, nil
}

// wheelFromDeb makes a py3-none-any wheel of what a Debian package puts in
// /usr/lib/python3/dist-packages (compiled extension modules left out:
// the packages used have pure-Python fallbacks), with METADATA from its
// .dist-info or .egg-info.
func wheelFromDeb(ctx context.Context, deb string) (*Wheel, error) {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-deb: %w", err)
	}
	const prefix = "./usr/lib/python3/dist-packages/"
	files := map[string][]byte{}
	meta := map[string][]byte{} // file name in the .dist-info / .egg-info → contents
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rel, ok := strings.CutPrefix(hdr.Name, prefix)
		if !ok || hdr.Typeflag != tar.TypeReg || strings.Contains(rel, "__pycache__") || strings.HasSuffix(rel, ".so") {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		top, rest, _ := strings.Cut(rel, "/")
		if strings.HasSuffix(top, ".dist-info") || strings.HasSuffix(top, ".egg-info") {
			if rest == "" {
				meta["PKG-INFO"] = data // an egg-info file rather than a directory
			} else {
				meta[rest] = data
			}
			continue
		}
		files[rel] = data
	}
	md := meta["METADATA"]
	if md == nil {
		md = meta["PKG-INFO"]
	}
	if md == nil {
		return nil, fmt.Errorf("no .dist-info or .egg-info metadata")
	}
	name, version := header(md, "Name"), header(md, "Version")
	if name == "" || version == "" {
		return nil, fmt.Errorf("metadata without Name and Version")
	}
	requires := requiresDist(md, meta["requires.txt"])
	if up, ok := Upstream[Normalize(name)]; ok {
		requires = append(up, requires...)
	}
	md = withRequires(md, requires)
	dist := strings.ReplaceAll(Normalize(name), "-", "_")
	info := dist + "-" + version + ".dist-info/"
	files[info+"METADATA"] = md
	files[info+"WHEEL"] = []byte("Wheel-Version: 1.0\nGenerator: skiff-pyindex\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
	if ep := meta["entry_points.txt"]; ep != nil {
		files[info+"entry_points.txt"] = ep
	}
	var record strings.Builder
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[n]))
	}
	fmt.Fprintf(&record, "%sRECORD,,\n", info)
	files[info+"RECORD"] = []byte(record.String())
	names = append(names, info+"RECORD")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate})
		if err != nil {
			return nil, err
		}
		if _, err := f.Write(files[n]); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return &Wheel{Name: Normalize(name), Version: version, File: dist + "-" + version + "-py3-none-any.whl",
		SHA256: hex.EncodeToString(sum[:]), Requires: requires, data: buf.Bytes()}, nil
}

// header returns the first value of an RFC 822 style metadata header.
func header(md []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, key+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// requiresDist returns the metadata's Requires-Dist, or those of an
// egg-info's requires.txt ("[extra]" and "[:marker]" sections).
func requiresDist(md, requiresTxt []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Requires-Dist: "); ok {
			out = append(out, strings.TrimSpace(v))
		}
	}
	if len(out) > 0 || requiresTxt == nil {
		return out
	}
	marker := ""
	for _, line := range strings.Split(string(requiresTxt), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "["):
			section := strings.Trim(line, "[]")
			extra, cond, _ := strings.Cut(section, ":")
			var parts []string
			if extra != "" {
				parts = append(parts, fmt.Sprintf("extra == %q", extra))
			}
			if cond != "" {
				parts = append(parts, "("+cond+")")
			}
			marker = strings.Join(parts, " and ")
		case marker != "":
			out = append(out, line+"; "+marker)
		default:
			out = append(out, line)
		}
	}
	return out
}

// withRequires returns metadata with exactly the given Requires-Dist.
func withRequires(md []byte, requires []string) []byte {
	head, body, _ := bytes.Cut(md, []byte("\n\n"))
	var b bytes.Buffer
	for _, line := range strings.Split(string(head), "\n") {
		if !strings.HasPrefix(line, "Requires-Dist: ") {
			b.WriteString(line + "\n")
		}
	}
	for _, r := range requires {
		b.WriteString("Requires-Dist: " + r + "\n")
	}
	b.WriteString("\n")
	b.Write(body)
	return b.Bytes()
}

// Handler serves the index: /simple/ lists the projects, /simple/<name>/
// a project's wheel with its sha256, /files/<wheel> the wheel.
func (ix *Index) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path)
		switch {
		case p == "/simple":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintln(w, "<!DOCTYPE html><html><body>")
			names := make([]string, 0, len(ix.Wheels))
			for n := range ix.Wheels {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(w, "<a href=\"/simple/%s/\">%s</a>\n", n, n)
			}
			fmt.Fprintln(w, "</body></html>")
		case strings.HasPrefix(p, "/simple/"):
			wh := ix.Wheels[Normalize(strings.TrimPrefix(p, "/simple/"))]
			if wh == nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, "<!DOCTYPE html><html><body><a href=\"/files/%s#sha256=%s\">%s</a></body></html>\n", wh.File, wh.SHA256, html.EscapeString(wh.File))
		case strings.HasPrefix(p, "/files/"):
			for _, wh := range ix.Wheels {
				if wh.File == strings.TrimPrefix(p, "/files/") {
					w.Header().Set("Content-Type", "application/octet-stream")
					_, _ = w.Write(wh.data) // to a client that may have gone
					return
				}
			}
			http.NotFound(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
