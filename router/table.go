package router

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/skiffhq/skiff"
)

// app is one app's route as a request sees it. The config part is immutable:
// SetApp builds a new app value; state carries over.
type app struct {
	route       skiff.AppRoute
	hosts       []string // default host first, then the domains
	maintenance []byte   // the 503 page
	maxBody     int64    // <=0: no cap
	state       *appState
}

// appState lives as long as the app is routed, across config changes.
type appState struct {
	pool     atomic.Pointer[pool]
	deployMu sync.Mutex // serializes Deploy
	removed  atomic.Bool
}

// table is an immutable snapshot of all routes.
type table struct {
	exact map[string]*app // canonical host → app
	wild  map[string]*app // "example.com" for "*.example.com"
	byID  map[string]*app
}

var emptyTable = &table{exact: map[string]*app{}, wild: map[string]*app{}, byID: map[string]*app{}}

// lookup finds the app for a canonical host: an exact host first, then a
// wildcard one label up. It does not allocate.
func (t *table) lookup(host string) *app {
	if a := t.exact[host]; a != nil {
		return a
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		return t.wild[host[i+1:]]
	}
	return nil
}

// with returns a copy of t in which a replaces the app of the same ID, or an
// ECONFLICT error when one of a's hosts belongs to another app.
func (t *table) with(a *app) (*table, error) {
	for _, h := range a.hosts {
		var owner *app
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			owner = t.wild[rest]
		} else {
			owner = t.exact[h]
		}
		if owner != nil && owner.route.AppID != a.route.AppID {
			return nil, skiff.Errorf(skiff.ECONFLICT, "domain %s is already attached to another app", h)
		}
	}
	n := t.without(a.route.AppID)
	for _, h := range a.hosts {
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			n.wild[rest] = a
		} else {
			n.exact[h] = a
		}
	}
	n.byID[a.route.AppID] = a
	return n, nil
}

// without returns a copy of t without the app id.
func (t *table) without(id string) *table {
	n := &table{
		exact: make(map[string]*app, len(t.exact)),
		wild:  make(map[string]*app, len(t.wild)),
		byID:  make(map[string]*app, len(t.byID)),
	}
	for h, a := range t.exact {
		if a.route.AppID != id {
			n.exact[h] = a
		}
	}
	for h, a := range t.wild {
		if a.route.AppID != id {
			n.wild[h] = a
		}
	}
	for k, a := range t.byID {
		if k != id {
			n.byID[k] = a
		}
	}
	return n
}
