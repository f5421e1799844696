package skiff

import (
	"context"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Volume is persistent storage: a named directory on the scheduler's host
// that outlives instances, deploys and daemon restarts, mounted into the
// containers of the apps (or the service) it is given to. Its ID keys it
// on disk, so a name reused after the volume is destroyed starts empty.
type Volume struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Owner string `json:"owner,omitempty"` // the user who created it; empty for the local CLI or a removed user
	// Service, when set, names the backing service whose data the volume
	// holds; the storage:* commands neither mount nor remove such a volume.
	Service string `json:"service,omitempty"`
	// SizeBytes is what the volume may hold, and what it takes of the
	// server's disk budget; 0 for a volume without a limit (a server whose
	// volumes are plain directories). A service's volume is a directory
	// its own disks are mounted on: SizeBytes is their sizes added up
	// (PostgreSQL's WAL disk with its data disk).
	SizeBytes int64     `json:"size_bytes"`
	CreatedAt time.Time `json:"created_at"`
	// Apps lists the apps it is mounted into (names), for reports.
	Apps []string `json:"apps,omitempty"`
}

var volumeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$`)

// ValidateVolumeName checks a volume name: 1 to 63 lower-case letters,
// digits, '.', '_' and '-', starting and ending with a letter or digit,
// without "..". It is never a path.
func ValidateVolumeName(name string) error {
	if !volumeNameRE.MatchString(name) || strings.Contains(name, "..") {
		return Errorf(EINVALID, "invalid storage name %s: use up to 63 lower-case letters, digits, '.', '_' and '-' (like myapp-uploads)", quoteForUser(name))
	}
	return nil
}

// AppMount is a volume mounted at a path inside an app's containers, as
// storage:mount made it.
type AppMount struct {
	Volume   string `json:"volume"`    // the volume's name, as users see it
	VolumeID string `json:"volume_id"` // what the scheduler mounts
	Path     string `json:"path"`      // absolute, clean
	// ProcessTypes limits the mount to instances of these process types
	// and to one-offs of these kinds ("run", "release", "cron"); empty
	// means every container of the app.
	ProcessTypes []string `json:"process_types,omitempty"`
}

// One-off kinds, as Mount.ProcessTypes and formations name them.
const (
	OneOffRun     = "run"     // run, run:detached
	OneOffRelease = "release" // the release phase and the postdeploy scripts
	OneOffCron    = "cron"    // cron runs
)

// AppliesTo reports whether the mount belongs in a container of the
// process type or one-off kind.
func (m *AppMount) AppliesTo(processType string) bool {
	return len(m.ProcessTypes) == 0 || slices.Contains(m.ProcessTypes, processType)
}

func (m *AppMount) overlaps(o *AppMount) bool {
	if len(m.ProcessTypes) == 0 || len(o.ProcessTypes) == 0 {
		return true
	}
	for _, t := range m.ProcessTypes {
		if slices.Contains(o.ProcessTypes, t) {
			return true
		}
	}
	return false
}

// MountsFor returns what the scheduler mounts into a container of the
// process type (or one-off kind).
func MountsFor(mounts []AppMount, processType string) []Mount {
	var out []Mount
	for _, m := range mounts {
		if m.AppliesTo(processType) {
			out = append(out, Mount{Volume: m.VolumeID, Path: m.Path})
		}
	}
	return out
}

// MaxMounts caps an app's mounts.
const MaxMounts = 32

// reservedMountPaths are where skiff or the image's launcher need what the
// image holds, or what skiff itself puts there.
var reservedMountPaths = []string{"/proc", "/sys", "/dev", "/cnb", "/layers", "/etc/resolv.conf", "/etc/hosts"}

// ParseMountPath checks a path to mount a volume at: absolute, clean, of
// printable characters without ':' or ',', not the root, the app's own
// directory, or a system directory.
func ParseMountPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") || len(p) > 255 || strings.ContainsAny(p, ":,\\") ||
		strings.ContainsFunc(p, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return "", Errorf(EINVALID, "mount path %s must be an absolute path inside the container (like /app/storage), without spaces, ':' or ','", quoteForUser(p))
	}
	for _, part := range strings.Split(p, "/") {
		if part == "." || part == ".." {
			return "", Errorf(EINVALID, "mount path %s must not contain . or .. parts", quoteForUser(p))
		}
	}
	clean := path.Clean(p)
	if clean == "/" || clean == "/workspace" || clean == "/app" {
		return "", Errorf(EINVALID, "cannot mount over %s: it would hide the app; mount a directory below it (like %s/storage)", clean, strings.TrimSuffix(clean, "/"))
	}
	for _, r := range reservedMountPaths {
		if clean == r || strings.HasPrefix(clean, r+"/") {
			return "", Errorf(EINVALID, "cannot mount at %s: %s belongs to the platform", clean, r)
		}
	}
	return clean, nil
}

// ParseMountSpec reads storage:mount's "<name>:<path>". Dokku's form with a
// host directory ("/var/lib/dokku/data/storage/<name>:<path>") is read as
// the volume <name>, since skiff mounts only volumes it made.
func ParseMountSpec(spec string) (volume, mountPath string, err error) {
	src, dst, ok := strings.Cut(spec, ":")
	if !ok || src == "" || dst == "" {
		return "", "", Errorf(EINVALID, "%s is not <storage>:<path>; use like uploads:/app/storage", quoteForUser(spec))
	}
	if strings.HasPrefix(src, "/") {
		name := path.Base(path.Clean(src))
		if path.Dir(path.Clean(src)) != DokkuStorageDir {
			return "", "", Errorf(EINVALID, "skiff mounts only its own storage, by name: storage:ensure-directory <name>, then storage:mount <app> <name>:%s", dst)
		}
		src = name
	}
	if err := ValidateVolumeName(src); err != nil {
		return "", "", err
	}
	if mountPath, err = ParseMountPath(dst); err != nil {
		return "", "", err
	}
	return src, mountPath, nil
}

// DokkuStorageDir is where Dokku keeps storage:ensure-directory's
// directories; storage:mount reads a path below it as a volume name.
const DokkuStorageDir = "/var/lib/dokku/data/storage"

// ValidateMounts checks a set of mounts: at most MaxMounts, and no two at
// the same path, or one inside another, in the same container.
func ValidateMounts(mounts []AppMount) error {
	if len(mounts) > MaxMounts {
		return Errorf(EINVALID, "an app may have at most %d mounts", MaxMounts)
	}
	for i := range mounts {
		for j := range i {
			a, b := &mounts[i], &mounts[j]
			nested := a.Path == b.Path || strings.HasPrefix(a.Path, b.Path+"/") || strings.HasPrefix(b.Path, a.Path+"/")
			if nested && a.overlaps(b) {
				return Errorf(EINVALID, "%s would be mounted at %s, where %s is mounted at %s; choose paths that do not nest", a.Volume, a.Path, b.Volume, b.Path)
			}
		}
	}
	return nil
}

// VolumeService stores volumes and the apps' mounts. Names are unique;
// CreateVolume fails with ECONFLICT when one is taken, the Find methods
// with ENOTFOUND. Changes record audit events for the actor in ctx.
type VolumeService interface {
	CreateVolume(ctx context.Context, v *Volume) error // sets ID, Owner, CreatedAt
	FindVolume(ctx context.Context, name string) (*Volume, error)
	// SetVolumeSize records a volume's new size.
	SetVolumeSize(ctx context.Context, name string, size int64) error
	ListVolumes(ctx context.Context) ([]*Volume, error)
	// DeleteVolume removes the record; ECONFLICT while an app mounts it.
	DeleteVolume(ctx context.Context, name string) error
	// Mounts are the app's mounts as its next release will have them.
	Mounts(ctx context.Context, appID string) ([]AppMount, error)
	SetMounts(ctx context.Context, appID string, mounts []AppMount) error
}

// StorageBudget is what the volumes' sizes may add up to on a server, and
// what they add up to: every volume's, the backing services' disks too.
type StorageBudget struct {
	BudgetBytes int64 `json:"budget_bytes"` // 0: no budget but the disk's room
	GivenBytes  int64 `json:"given_bytes"`
}

// Left is what a new volume may still take (0 when the budget is spent);
// -1 without a budget.
func (b StorageBudget) Left() int64 {
	if b.BudgetBytes <= 0 {
		return -1
	}
	return max(b.BudgetBytes-b.GivenBytes, 0)
}

// VolumeUsage is what a volume takes: its files, and its size (0 when it
// has no limit).
type VolumeUsage struct {
	UsedBytes int64 `json:"used_bytes"`
	SizeBytes int64 `json:"size_bytes"`
}

// Volumes keeps volumes on the scheduler's host. Methods are idempotent
// and safe for concurrent use; ids are Volume.ID values.
type Volumes interface {
	// Ensure makes the volume (size bytes; it may not hold more) if it is
	// missing, and makes it ready to mount (after a reboot, too).
	Ensure(ctx context.Context, id string, size int64) error
	// Path is the directory a local scheduler bind-mounts.
	Path(id string) (string, error)
	// Usage is what the volume's files take, and its size.
	Usage(ctx context.Context, id string) (VolumeUsage, error)
	// Resize grows the volume to size bytes.
	Resize(ctx context.Context, id string, size int64) error
	// Remove deletes the volume and everything in it.
	Remove(ctx context.Context, id string) error
}
