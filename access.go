package skiff

import "context"

// AuthorizeApp is the one access rule, applied by every edge that acts on
// an app by name (SSH commands, git transfers): it validates the name,
// finds the app and checks that actor may use it — admins and the local
// CLI always, others when they own it or were granted access (ownerOnly:
// only its owner or an admin). Users who may not use the app get
// ErrNotAuthorized whether it exists or not, so that no answer tells them
// which names are taken; only admins, who see every app, learn that it
// does not exist (ENOTFOUND). The edge logs a refusal (err ==
// ErrNotAuthorized) in its own terms.
func AuthorizeApp(ctx context.Context, apps AppService, access AccessService, actor *Actor, name string, ownerOnly bool) (*App, error) {
	if err := ValidateAppName(name); err != nil {
		return nil, err
	}
	if actor == nil {
		return nil, ErrNotAuthorized
	}
	app, err := apps.FindAppByName(ctx, name)
	switch {
	case ErrorCode(err) == ENOTFOUND && actor.Admin():
		return nil, Errorf(ENOTFOUND, "app %s does not exist; create it with apps:create %s", name, name)
	case ErrorCode(err) == ENOTFOUND:
		return nil, ErrNotAuthorized
	case err != nil:
		return nil, err
	}
	if actor.User == nil { // the local CLI: root on the server
		return app, nil
	}
	// Asked afresh, so that a user demoted or removed a moment ago is
	// refused now.
	ok, err := access.HasAccess(ctx, app.ID, actor.User)
	if err != nil {
		return nil, err
	}
	if !ok || ownerOnly && !actor.User.Admin && app.Owner != actor.Name {
		return nil, ErrNotAuthorized
	}
	return app, nil
}
