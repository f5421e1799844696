package cnb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"time"

	"github.com/BurntSushi/toml"
)

// LayerTypes says who sees a layer: the app image (Launch), the buildpacks
// after this one (Build), the next build (Cache).
type LayerTypes struct {
	Launch bool `toml:"launch"`
	Build  bool `toml:"build"`
	Cache  bool `toml:"cache"`
}

// Layer is <layers>/<name>/ and its <name>.toml. At the start of a build the
// lifecycle may have restored the TOML's metadata (never its types) and, for
// cached layers, the contents; the buildpack decides whether to keep them.
type Layer struct {
	Name string
	Path string // <layers>/<name>
	toml string // <layers>/<name>.toml

	restored toml.Primitive
	meta     toml.MetaData
	hasMeta  bool
}

var layerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Layer opens the named layer, reading any metadata the lifecycle restored.
func (bc *BuildContext) Layer(name string) (*Layer, error) {
	if !layerNameRE.MatchString(name) || name == "build" || name == "launch" || name == "store" {
		return nil, fmt.Errorf("invalid layer name %q", name)
	}
	l := &Layer{Name: name, Path: filepath.Join(bc.LayersDir, name), toml: filepath.Join(bc.LayersDir, name+".toml")}
	data, err := os.ReadFile(l.toml)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	} else if err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	var doc struct {
		Metadata toml.Primitive `toml:"metadata"`
	}
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		// A metadata file we cannot read is a layer we cannot trust: start over.
		bc.Log.Detail("Ignoring unreadable metadata of layer %s", name)
		return l, nil
	}
	l.restored, l.meta, l.hasMeta = doc.Metadata, md, md.IsDefined("metadata")
	return l, nil
}

// Metadata decodes the restored [metadata] table into v and reports whether
// there was one.
func (l *Layer) Metadata(v any) (bool, error) {
	if !l.hasMeta {
		return false, nil
	}
	if err := l.meta.PrimitiveDecode(l.restored, v); err != nil {
		return false, nil // metadata of an older layout: treat as absent
	}
	return true, nil
}

// SameMetadata reports whether the restored [metadata] table is meta's
// (compared as TOML values; layer metadata holds strings). A launch layer
// with the same metadata as the previous image's can be declared without
// contents, and the exporter reuses that image's layer.
func (l *Layer) SameMetadata(meta any) bool {
	if !l.hasMeta {
		return false
	}
	var old map[string]any
	if err := l.meta.PrimitiveDecode(l.restored, &old); err != nil {
		return false
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(struct {
		Metadata any `toml:"metadata"`
	}{meta}); err != nil {
		return false
	}
	var want struct {
		Metadata map[string]any `toml:"metadata"`
	}
	if _, err := toml.Decode(buf.String(), &want); err != nil {
		return false
	}
	return reflect.DeepEqual(old, want.Metadata)
}

// HasContents reports whether the layer directory exists: for cached layers,
// whether the lifecycle restored the contents.
func (l *Layer) HasContents() bool {
	fi, err := os.Stat(l.Path)
	return err == nil && fi.IsDir()
}

// Reset removes the layer's contents and metadata and creates an empty
// directory for new contents.
func (l *Layer) Reset() error {
	if err := os.RemoveAll(l.Path); err != nil {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	os.Remove(l.toml)
	l.hasMeta = false
	if err := os.MkdirAll(l.Path, 0o755); err != nil {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return nil
}

// Commit writes the layer's TOML with its types and metadata. A launch layer
// committed without a directory tells the exporter to reuse the previous
// image's layer.
func (l *Layer) Commit(types LayerTypes, metadata any) error {
	doc := struct {
		Types    LayerTypes `toml:"types"`
		Metadata any        `toml:"metadata,omitempty"`
	}{types, metadata}
	if err := writeTOML(l.toml, doc); err != nil {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return nil
}

// Remove deletes the layer and its TOML, so it is neither exported nor
// cached.
func (l *Layer) Remove() error {
	if err := os.RemoveAll(l.Path); err != nil {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	if err := os.Remove(l.toml); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return nil
}

// Timestamp returns the current time for layer metadata. Metadata holds
// strings only: the lifecycle keeps it as JSON in the image and the cache,
// so numbers come back as floats and times as strings.
func Timestamp() string { return time.Now().UTC().Format(time.RFC3339) }

// Fresh reports whether a Timestamp is less than ttl old (and not from the
// future, as after a clock jump).
func Fresh(ts string, ttl time.Duration) bool {
	t, err := time.Parse(time.RFC3339, ts)
	age := time.Since(t)
	return err == nil && age < ttl && age > -time.Hour
}

// CacheLayer returns the directory of a cache-only layer (a download or
// build cache), keeping what the last build left in it.
func (bc *BuildContext) CacheLayer(name string) (string, error) {
	l, err := bc.Layer(name)
	if err != nil {
		return "", err
	}
	if !l.HasContents() {
		if err := l.Reset(); err != nil {
			return "", err
		}
	}
	return l.Path, l.Commit(LayerTypes{Cache: true}, nil)
}

// CopyFile copies a regular file, creating dst's directory.
func CopyFile(src, dst string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// EnvScope is where a layer's environment file applies.
type EnvScope string

const (
	EnvBoth   EnvScope = "env"        // subsequent buildpacks and launch
	EnvBuild  EnvScope = "env.build"  // subsequent buildpacks only
	EnvLaunch EnvScope = "env.launch" // the app at launch only
)

// EnvOp is how an environment file modifies a variable.
type EnvOp string

const (
	EnvOverride EnvOp = "override"
	EnvDefault  EnvOp = "default"
	EnvPrepend  EnvOp = "prepend"
	EnvAppend   EnvOp = "append"
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// SetEnv writes an environment file: <layer>/<scope>/<name>.<op>. The
// lifecycle reads it as it is, never through a shell.
func (l *Layer) SetEnv(scope EnvScope, name string, op EnvOp, value string) error {
	if !envNameRE.MatchString(name) {
		return fmt.Errorf("layer %s: invalid variable name %q", l.Name, name)
	}
	dir := filepath.Join(l.Path, string(scope))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	if op == EnvPrepend || op == EnvAppend {
		if err := os.WriteFile(filepath.Join(dir, name+".delim"), []byte(string(os.PathListSeparator)), 0o644); err != nil {
			return fmt.Errorf("layer %s: %w", l.Name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name+"."+string(op)), []byte(value), 0o644); err != nil {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return nil
}
