// Package buildpacks is skiff's own set of Cloud Native Buildpacks, the
// contents of the default builder: Procfile, static sites, Node.js, Go and
// Python. It owns the list of buildpacks and their order, the packaged tree
// the builder is assembled from (WriteTree), and the entry point of the one
// static binary that serves as every buildpack's bin/detect and bin/build
// and as the static sites' web server (Main).
//
// Each buildpack lives in its own package under internal/; the CNB interface
// they share is internal/cnb.
package buildpacks

import (
	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/golang"
	"github.com/skiffhq/skiff/buildpacks/internal/nodejs"
	"github.com/skiffhq/skiff/buildpacks/internal/procfile"
	"github.com/skiffhq/skiff/buildpacks/internal/python"
	"github.com/skiffhq/skiff/buildpacks/internal/static"
	"github.com/skiffhq/skiff/buildpacks/internal/unsupported"
)

// Version is the version of every buildpack in the set: they are built from
// one binary and released together.
const Version = "0.1.0"

// all lists the buildpacks, in no particular order; Order says which run.
var all = []*cnb.Buildpack{
	procfile.Buildpack,
	static.Buildpack,
	nodejs.Buildpack,
	golang.Buildpack,
	python.Buildpack,
	unsupported.Buildpack,
}

func init() {
	for _, bp := range all {
		bp.Version = Version
	}
}

// Buildpack describes one packaged buildpack.
type Buildpack struct {
	ID, Version, Name, Description string
}

// List returns the buildpacks of the set.
func List() []Buildpack {
	out := make([]Buildpack, len(all))
	for i, bp := range all {
		out[i] = Buildpack{ID: bp.ID, Version: bp.Version, Name: bp.Name, Description: bp.Description}
	}
	return out
}

func lookup(id string) *cnb.Buildpack {
	for _, bp := range all {
		if bp.ID == id {
			return bp
		}
	}
	return nil
}

// GroupEntry is one buildpack of a group in the builder's order.
type GroupEntry struct {
	ID       string `toml:"id"`
	Version  string `toml:"version"`
	Optional bool   `toml:"optional,omitempty"`
}

// Group is one candidate group: the lifecycle picks the first whose
// required buildpacks all pass detection.
type Group struct {
	Group []GroupEntry `toml:"group"`
}

// Order returns the default builder's order (/cnb/order.toml). A language
// buildpack leads each group and the Procfile buildpack follows as an
// optional member, so its process types replace the language's guesses
// (the lifecycle keeps the last definition of a type). Languages come
// first, then static sites, then a bare Procfile; before them all, the
// buildpack that stops apps in languages the builder cannot build.
func Order() []Group {
	lang := func(id string) Group {
		return Group{Group: []GroupEntry{
			{ID: id, Version: Version},
			{ID: procfile.Buildpack.ID, Version: Version, Optional: true},
		}}
	}
	// An app in a language this builder has no buildpack for fails first,
	// with the way forward, rather than building as something it is not.
	order := []Group{{Group: []GroupEntry{{ID: unsupported.Buildpack.ID, Version: Version}}}}
	for _, id := range []string{"skiff/go", "skiff/nodejs", "skiff/python", "skiff/static"} {
		if lookup(id) != nil {
			order = append(order, lang(id))
		}
	}
	return append(order, Group{Group: []GroupEntry{{ID: procfile.Buildpack.ID, Version: Version}}})
}
