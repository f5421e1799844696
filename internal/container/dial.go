package container

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dial connects to port at the container's address through the
// container's own veth only (SO_BINDTODEVICE). A dial by address alone
// goes wherever the host routes it: once the container has exited and its
// veth is gone, the next container to start (another app's, or another
// daemon's on the same pool) may hold that /30 already, and the dial
// would reach it. Through the veth, it fails instead.
func (c *Container) Dial(ctx context.Context, port uint16, d net.Dialer) (net.Conn, error) {
	if !c.Addr.IsValid() || c.r.cfg.Network == nil {
		return nil, errors.New("the container has no network")
	}
	link := c.r.cfg.Network.linkName(c.ID)
	d.Control = func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = unix.BindToDevice(int(fd), link) }); cerr != nil {
			return cerr
		}
		return err
	}
	return d.DialContext(ctx, "tcp", netip.AddrPortFrom(c.Addr, port).String())
}
