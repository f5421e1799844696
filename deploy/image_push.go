package deploy

import (
	"context"
	"io"

	"github.com/skiffhq/skiff"
)

// pushImage copies a new release's image to where the app's scheduler
// runs it from (a cluster's external registry), with the push's progress,
// before its release phase and rollout need it. An app whose scheduler
// pulls from this server needs nothing.
func (p *Pipeline) pushImage(ctx context.Context, app *skiff.App, rel *skiff.Release, out io.Writer) error {
	if p.cfg.Scheduler == nil {
		return nil
	}
	s, err := p.schedulerFor(ctx, app.ID)
	if err != nil {
		return err
	}
	ip, ok := s.(skiff.ImagePusher)
	if !ok {
		return nil
	}
	said := false
	return ip.PushImage(ctx, &skiff.InstanceSpec{AppID: app.ID, AppName: app.Name, Release: rel.Version, Image: rel.Image}, func(line string) {
		if !said {
			step(out, "Pushing the image for the cluster's nodes")
			said = true
		}
		detail(out, "%s", line)
	})
}
