package container

import (
	"encoding/binary"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// AddToGroupForTest puts addr in group's set without a container, as a
// container lost without a detach leaves it.
func (n *Network) AddToGroupForTest(addr netip.Addr, group string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.joinGroup(addr, group)
}

// HandOutNextForTest makes addr's /30 the next one the pool hands out (if
// no link holds it), as it is once the allocation has gone round the pool.
func (n *Network) HandOutNextForTest(addr netip.Addr) error {
	lock, err := os.OpenFile(n.cfg.LockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	b := slotOf(addr).As4()
	prev := binary.BigEndian.Uint32(b[:]) - 4
	binary.BigEndian.PutUint32(b[:], prev)
	recordSlot(lock, netip.AddrFrom4(b).Next())
	return nil
}
