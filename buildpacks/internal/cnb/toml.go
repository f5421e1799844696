package cnb

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// BuildPlan is what detect contributes to the build plan.
type BuildPlan struct {
	Provides []Provide `toml:"provides,omitempty"`
	Requires []Require `toml:"requires,omitempty"`
}

// Provide names a dependency the buildpack can provide.
type Provide struct {
	Name string `toml:"name"`
}

// Require names a dependency the buildpack needs, with metadata for the
// provider.
type Require struct {
	Name     string         `toml:"name"`
	Metadata map[string]any `toml:"metadata,omitempty"`
}

// BuildpackPlan is the part of the resolved plan handed to one buildpack.
type BuildpackPlan struct {
	Entries []Require `toml:"entries"`
}

// Process is a process type in launch.toml. With buildpack API 0.9 and
// later Command is exec'd directly by the launcher, without a shell and
// without expanding variables: a buildpack that needs a shell says so
// (["bash", "-c", ...]).
type Process struct {
	Type       string   `toml:"type"`
	Command    []string `toml:"command"`
	Args       []string `toml:"args,omitempty"`
	Default    bool     `toml:"default,omitempty"`
	WorkingDir string   `toml:"working-dir,omitempty"`
}

// Label is an image label in launch.toml.
type Label struct {
	Key   string `toml:"key"`
	Value string `toml:"value"`
}

type launchTOML struct {
	Labels    []Label   `toml:"labels,omitempty"`
	Processes []Process `toml:"processes,omitempty"`
}

func (bc *BuildContext) writeLaunch() error {
	if len(bc.processes) == 0 && len(bc.labels) == 0 {
		return nil
	}
	return writeTOML(filepath.Join(bc.LayersDir, "launch.toml"), launchTOML{Labels: bc.labels, Processes: bc.processes})
}

func readTOML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if _, err := toml.Decode(string(data), v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeTOML replaces path atomically, so a buildpack killed halfway never
// leaves a half-written file for the lifecycle to misread.
func writeTOML(path string, v any) error {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(v); err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return WriteFileAtomic(path, buf.Bytes(), 0o644)
}

// WriteFileAtomic writes data to a temporary file beside path and renames it
// into place.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// DecodeTOML decodes TOML text into v.
func DecodeTOML(data []byte, v any) error {
	_, err := toml.Decode(string(data), v)
	return err
}
