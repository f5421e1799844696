package skiff

import (
	"context"
	"io"
)

// Deployer is the one owner of every change to what an app is: creating,
// renaming and destroying it, its pushes, releases, config, formation,
// domains, settings (checks, proxy, maintenance, TLS policy, build) and
// certificates. Each change runs under the app's lock, with its undo in
// the same place when a later step refuses it; a second user's change
// while one runs fails at once with EUNAVAILABLE, saying what holds the
// app. admin parses a command line, makes one Deployer call and prints.
type Deployer interface {
	CreateApp(ctx context.Context, name string) (*App, error)
	RenameApp(ctx context.Context, app *App, newName string) error
	// DestroyApp removes the app and all it has; its volumes stay unless
	// volumes is true (then those no other app mounts go too). It says on
	// out which volumes it removed or kept.
	DestroyApp(ctx context.Context, app *App, volumes bool, out io.Writer) error
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

	// The operations below change how the app is served or built; they
	// take effect at once (the router's) or at the next push or deploy.

	// SetDeployBranch sets the branch whose pushes deploy (git:set).
	SetDeployBranch(ctx context.Context, app *App, branch string) error
	// AddDomain attaches a custom domain (as ValidateDomain reads it; not
	// under the server's own domain; wildcards for admins only) and routes
	// it. If the router refuses it (another app serves the host), it is
	// detached again. It returns the canonical host.
	AddDomain(ctx context.Context, app *App, domain string) (string, error)
	// RemoveDomain detaches a custom domain and stops routing it; it
	// returns the canonical host.
	RemoveDomain(ctx context.Context, app *App, domain string) (string, error)
	// UpdateSettings applies update to the app's settings, validates and
	// stores the result and gives the router the new route; if the router
	// refuses it, the old settings are stored again. An error from update
	// changes nothing. action names the command in the audit trail. It
	// returns the settings in force.
	UpdateSettings(ctx context.Context, app *App, action string, update func(*Settings) error) (*Settings, error)
	// SetCertificate gives the router an uploaded certificate for the app
	// (Routes.SetCertificate); RemoveCertificate removes it.
	SetCertificate(ctx context.Context, app *App, bundle []byte) error
	RemoveCertificate(ctx context.Context, app *App) error

	// Detached runs: one-offs of the current release that outlive the
	// caller (run:detached), listed until they have ended and been reaped.
	RunDetached(ctx context.Context, app *App, command string) (*Instance, error)
	DetachedRuns(ctx context.Context, app *App) ([]*Instance, error)
	// DetachedRun finds one by name (run.1234) or id; ENOTFOUND otherwise.
	DetachedRun(ctx context.Context, app *App, name string) (*Instance, error)
	StopRun(ctx context.Context, app *App, name string) error

	// Clusters. AddCluster checks the cluster at once (Clusters.Check: its
	// API, the grants of rbac.yaml, the namespace) and stores it with a new
	// secret for its nodes' image pulls; RemoveCluster forgets one no app
	// runs on (ECONFLICT, naming them, otherwise); what runs there stays.
	AddCluster(ctx context.Context, c *Cluster) error
	RemoveCluster(ctx context.Context, name string) error
	// ConfigureCluster changes a stored cluster (clusters:set): change
	// edits a copy, which is checked like a new one (Clusters.Check) and
	// stored; then every app on the cluster is applied again with it
	// (progress to out). An app that fails to converge is named in the
	// error; the setting stays, and its next deploy applies it.
	ConfigureCluster(ctx context.Context, name string, change func(*Cluster) error, out io.Writer) error
	// SetScheduler moves the app to a cluster ("": to this server). Its
	// current release starts there (release phase excluded), takes the
	// traffic once ready, and then everything skiff made for the app
	// where it ran before is removed; if it does not become ready there,
	// nothing changes. An app never deployed only records it.
	SetScheduler(ctx context.Context, app *App, cluster string, out io.Writer) error

	// Storage. CreateVolume makes a volume of size bytes (0: the server's
	// default), within the server's storage budget; ResizeVolume grows
	// one; DestroyVolume removes one that no app mounts, with its files.
	CreateVolume(ctx context.Context, name string, size int64) (*Volume, error)
	// ReserveServiceVolume records v, the volume of a backing service
	// (v.Service set; v.SizeBytes what its disks take), within the same
	// budget and under the same lock as CreateVolume; the service makes
	// the files itself. ECONFLICT when the name is taken; past the budget
	// EUNAVAILABLE, saying the budget, what is given, what (a phrase
	// naming the service and its disks) asked for, and what to do; then
	// nothing is recorded.
	ReserveServiceVolume(ctx context.Context, v *Volume, what string) error
	// StorageBudget is the server's storage budget and what of it the
	// volumes (the services' with them) are given.
	StorageBudget(ctx context.Context) (StorageBudget, error)
	ResizeVolume(ctx context.Context, name string, size int64) error
	DestroyVolume(ctx context.Context, name string) error
	VolumeUsage(ctx context.Context, v *Volume) (VolumeUsage, error)
	// Mount and Unmount change the app's mounts: a new release that rolls
	// out (release phase included), unless restart is false or the app was
	// never deployed (then its next release has them).
	Mount(ctx context.Context, app *App, volume, path string, processTypes []string, restart bool, out io.Writer) error
	Unmount(ctx context.Context, app *App, volume, path string, restart bool, out io.Writer) error
}
