package skiff

import (
	"context"
	"io"
)

// Deployer runs everything that changes what an app is: creating, renaming
// and destroying it, and the push pipeline. Operations on one app are
// serialized; a second push while one runs fails with EUNAVAILABLE.
type Deployer interface {
	CreateApp(ctx context.Context, name string) (*App, error)
	RenameApp(ctx context.Context, app *App, newName string) error
	DestroyApp(ctx context.Context, app *App) error
	// PreReceive runs the pipeline for a push; out is the pusher's terminal
	// (each line reaches them prefixed "remote: "). A non-nil error rejects
	// the push, and its message is printed as the reason.
	PreReceive(ctx context.Context, req *PushRequest, out io.Writer) error

	// The operations below change what runs; each takes the path of a
	// deploy (start, health-gated switch, drain) and writes progress to out.

	// SetConfig changes config vars: a new release, unless restart is false
	// or the app was never deployed.
	SetConfig(ctx context.Context, app *App, ch *ConfigChange, restart bool, out io.Writer) error
	// Rollback makes a new release from version's image and config (0: the
	// deployed release before the current one).
	Rollback(ctx context.Context, app *App, version int, out io.Writer) error
	Scale(ctx context.Context, app *App, quantities map[string]int, out io.Writer) error
	SetLimits(ctx context.Context, app *App, processType string, limits Limits, out io.Writer) error
	// Restart, Stop and Start act on one process type, or all for "".
	Restart(ctx context.Context, app *App, processType string, out io.Writer) error
	Stop(ctx context.Context, app *App, processType string, out io.Writer) error
	Start(ctx context.Context, app *App, processType string, out io.Writer) error
	// Run runs a one-off instance of the current release (req.Spec is
	// filled in) and returns its exit code.
	Run(ctx context.Context, app *App, req *RunRequest) (int, error)
	// UpdateRoute gives the router the app's domains and settings again.
	UpdateRoute(ctx context.Context, app *App) error
}
