package container

import "net/netip"

// AddToGroupForTest puts addr in group's set without a container, as a
// container lost without a detach leaves it.
func (n *Network) AddToGroupForTest(addr netip.Addr, group string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.joinGroup(addr, group)
}
