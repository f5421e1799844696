// Package procfile is the buildpack that turns a Procfile into the image's
// process types. It runs last in every group, so its types replace those a
// language buildpack guessed: a Procfile always wins.
package procfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// Buildpack is the Procfile buildpack.
var Buildpack = &cnb.Buildpack{
	ID:          "skiff/procfile",
	Name:        "Procfile",
	Description: "Process types from a Procfile",
	Detect:      detect,
	Build:       build,
}

func detect(dc *cnb.DetectContext) (*cnb.BuildPlan, error) {
	fi, err := os.Stat(dc.AppFile("Procfile"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil
	}
	return &cnb.BuildPlan{}, nil
}

func build(bc *cnb.BuildContext) error {
	bc.Log.Step("Discovering process types")
	procs, err := Read(bc.AppFile("Procfile"))
	if err != nil {
		return err
	}
	names := make([]string, len(procs))
	for i, p := range procs {
		names[i] = p.Name
		bc.AddProcess(Process(p))
	}
	bc.Log.Detail("Procfile declares types -> %s", strings.Join(names, ", "))
	return nil
}

// Read reads and parses a Procfile; a malformed one is a *cnb.UserError.
func Read(path string) ([]skiff.ProcessType, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte over the limit is enough for the parser to refuse it.
	data, err := io.ReadAll(io.LimitReader(f, skiff.MaxProcfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read Procfile: %w", err)
	}
	procs, err := skiff.ParseProcfile(data)
	if err != nil {
		return nil, cnb.Failf("%s", skiff.ErrorMessage(err)).Hint("Fix the Procfile, commit it and push again.")
	}
	return procs, nil
}

// Process is the launch.toml entry for a Procfile line. Procfile commands
// are shell command lines (Heroku runs them with bash), so they run through
// bash, which the run image has; bash execs a lone command itself, so the
// app still receives the launcher's signals.
func Process(p skiff.ProcessType) cnb.Process {
	return cnb.Process{Type: p.Name, Command: []string{"bash", "-c", p.Command}, Default: p.Name == "web"}
}
