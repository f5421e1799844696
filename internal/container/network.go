package container

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetworkConfig places containers on a private network.
type NetworkConfig struct {
	// Pool is where each container's /30 comes from (default
	// 10.213.0.0/16): .1 is the host's end, .2 the container's.
	Pool netip.Prefix
	// LinkPrefix starts the host-side veth names (default "sk", at most 7
	// characters); every rule matches it as a wildcard, so no other table
	// on the host may match a prefix of it, or it one of theirs.
	LinkPrefix string
	// Table is the nftables table (family inet) skiff owns (default "skiff").
	Table string
	// LockFile serializes address allocation between processes.
	LockFile string
	// ServicePool is the part of Pool that services' fixed addresses
	// (Spec.Address) come from; no other container gets an address in it.
	// Default: the last sixteenth of Pool (at least a /30). An address in it is reachable
	// only along Link's paths: not from the host, not from other
	// containers, and it reaches nothing itself.
	ServicePool netip.Prefix
}

// Network gives containers a veth each and keeps the host's rules: a
// container reaches the internet through NAT, and nothing else: not the
// host's own addresses (its loopback services, SSH, anything listening),
// not other containers, not link-local metadata services. Only the host
// itself connects to a container.
//
// Addresses are not recorded anywhere but on the links themselves: the
// host end of each veth carries its /30, so allocation and lookup survive
// daemon restarts, and a container's veth disappears with its network
// namespace.
type Network struct {
	cfg NetworkConfig
	log *slog.Logger
	mu  sync.Mutex
}

// NewNetwork installs the rules (replacing the table if it exists) and
// turns on IPv4 forwarding when it is off. It refuses a link prefix that
// another nftables table on the host matches, or that matches one of its
// (another skiff daemon's, or one not torn down): their rules would apply
// to each other's containers.
func NewNetwork(cfg NetworkConfig, log *slog.Logger) (*Network, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkLinkPrefix(cfg); err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, log: log}
	if err := n.installRules(); err != nil {
		return nil, fmt.Errorf("network rules: %w", err)
	}
	// Addresses of the pool that no container holds are unreachable, not
	// sent to the default gateway: a dial to an instance that just went
	// away must fail here, never leave the host. Each container's /30 is
	// more specific and wins.
	if err := netlink.RouteReplace(poolRoute(cfg.Pool)); err != nil {
		return nil, fmt.Errorf("pool route: %w", err)
	}
	if err := EnableForwarding(ipForwardPath); err != nil {
		return nil, err
	}
	return n, nil
}

func (cfg NetworkConfig) withDefaults() (NetworkConfig, error) {
	if !cfg.Pool.IsValid() {
		cfg.Pool = netip.MustParsePrefix("10.213.0.0/16")
	}
	if cfg.LinkPrefix == "" {
		cfg.LinkPrefix = "sk"
	}
	if cfg.Table == "" {
		cfg.Table = "skiff"
	}
	if cfg.LockFile == "" {
		cfg.LockFile = "/run/skiff-network.lock"
	}
	if !cfg.Pool.Addr().Is4() || cfg.Pool.Bits() > 28 || len(cfg.LinkPrefix) > 7 {
		return cfg, fmt.Errorf("network: pool %s must be IPv4 and /28 or larger, link prefix %q at most 7 characters", cfg.Pool, cfg.LinkPrefix)
	}
	cfg.Pool = cfg.Pool.Masked()
	if !cfg.ServicePool.IsValid() {
		cfg.ServicePool = lastPart(cfg.Pool, min(cfg.Pool.Bits()+4, 30))
	}
	cfg.ServicePool = cfg.ServicePool.Masked()
	if !cfg.ServicePool.Addr().Is4() || cfg.ServicePool.Bits() > 30 || cfg.ServicePool.Bits() <= cfg.Pool.Bits() || !cfg.Pool.Contains(cfg.ServicePool.Addr()) {
		return cfg, fmt.Errorf("network: service pool %s must be a part of the pool %s, /30 or larger", cfg.ServicePool, cfg.Pool)
	}
	return cfg, nil
}

func poolRoute(pool netip.Prefix) *netlink.Route {
	return &netlink.Route{Dst: ipnet(pool.Addr(), pool.Bits()), Type: unix.RTN_UNREACHABLE}
}

const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// EnableForwarding turns on IPv4 forwarding (at path, the sysctl's file)
// unless it is on already: a host where /proc/sys is read-only (a
// container, say) works when its owner has turned it on, and gets told what
// to set when not.
func EnableForwarding(path string) error {
	if v, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(v)) == "1" {
		return nil
	}
	if err := os.WriteFile(path, []byte("1"), 0); err != nil {
		return fmt.Errorf("IPv4 forwarding is off and skiff cannot turn it on (%w); apps need it for their outbound traffic: "+
			"set net.ipv4.ip_forward=1 on the host (sysctl -w net.ipv4.ip_forward=1, and in /etc/sysctl.d/ to keep it; "+
			"in a container, in the container's configuration), then start skiff again", err)
	}
	return nil
}

// checkLinkPrefix refuses a link prefix that overlaps a wildcard interface
// match in another table on the host.
func checkLinkPrefix(cfg NetworkConfig) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	tables, err := c.ListTables()
	if err != nil {
		return fmt.Errorf("list nftables tables: %w", err)
	}
	mine := []byte(cfg.LinkPrefix)
	for _, t := range tables {
		if t.Name == cfg.Table && t.Family == nftables.TableFamilyINet {
			continue
		}
		for _, p := range linkMatches(c, t) {
			if bytes.HasPrefix(p, mine) || bytes.HasPrefix(mine, p) {
				return fmt.Errorf("network: the veth prefix %q overlaps %q, which nftables table %s matches "+
					"(another skiff daemon, or one not torn down): give this daemon another --resource-prefix, "+
					"or stop that one and run skiff teardown with its --resource-prefix", cfg.LinkPrefix, p, t.Name)
			}
		}
	}
	return nil
}

// linkMatches returns the interface-name prefixes the table's rules match
// as wildcards (an exact name match ends in NUL and is left out).
func linkMatches(c *nftables.Conn, t *nftables.Table) [][]byte {
	var out [][]byte
	chains, _ := c.ListChainsOfTableFamily(t.Family)
	for _, ch := range chains {
		if ch.Table.Name != t.Name {
			continue
		}
		rules, _ := c.GetRules(t, ch)
		for _, r := range rules {
			for i, e := range r.Exprs {
				m, ok := e.(*expr.Meta)
				if !ok || (m.Key != expr.MetaKeyIIFNAME && m.Key != expr.MetaKeyOIFNAME) || i+1 >= len(r.Exprs) {
					continue
				}
				if cmp, ok := r.Exprs[i+1].(*expr.Cmp); ok && len(cmp.Data) > 0 && bytes.IndexByte(cmp.Data, 0) < 0 {
					out = append(out, cmp.Data)
				}
			}
		}
	}
	return out
}

// Remove deletes the table. Containers still running lose their isolation
// rules, so only tests and uninstallers call it.
func (n *Network) Remove() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: n.cfg.Table})
	return c.Flush()
}

// RemoveNetwork takes everything NewNetwork put on the host away again,
// without setting anything up first: the table, the pool's unreachable
// route and any veth left with the prefix. IPv4 forwarding stays as it is
// (other software may need it). For teardown; never while a daemon uses
// the network.
func RemoveNetwork(cfg NetworkConfig) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	var errs []error
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if t, _ := c.ListTableOfFamily(cfg.Table, nftables.TableFamilyINet); t != nil {
		c.DelTable(t)
		errs = append(errs, c.Flush())
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, poolRoute(cfg.Pool), netlink.RT_FILTER_DST|netlink.RT_FILTER_TYPE)
	errs = append(errs, err)
	for _, r := range routes {
		errs = append(errs, netlink.RouteDel(&r))
	}
	n := &Network{cfg: cfg}
	for _, name := range n.links() {
		if l, err := netlink.LinkByName(name); err == nil {
			errs = append(errs, netlink.LinkDel(l))
		}
	}
	return errors.Join(errs...)
}

func (n *Network) installRules() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	// The table is kept if it exists, with the links chain and the group
	// sets in it: the paths from apps to their services are state that
	// must survive a daemon restart. The base chains are flushed and
	// filled again, in the same (atomic) batch.
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: n.cfg.Table})
	accept := nftables.ChainPolicyAccept
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept})
		c.FlushChain(ch)
		return ch
	}
	links := c.AddChain(&nftables.Chain{Name: linksChain, Table: t})
	input := chain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)
	forward := chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	output := chain("output", nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityFilter)
	post := chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	rule := func(ch *nftables.Chain, e ...expr.Any) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e}) }
	p := []byte(n.cfg.LinkPrefix) // compared over its own length: a wildcard
	iif := []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p}}
	oif := []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p}}
	notOif := []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: p}}
	established := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: le32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le32(0)},
	}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	acc := &expr.Verdict{Kind: expr.VerdictAccept}
	// Services: the links chain accepts the linked paths; everything
	// else to or from a service address ends here, established or not,
	// so that an unlink cuts open connections too (with a reset, at once).
	// The host itself never connects to a service.
	// The rules match this network's own links too, so that another
	// network's table on the same pool (a second daemon, tests) leaves
	// these services alone.
	svcDst, svcSrc := cat(oif, ipv4Daddr(n.cfg.ServicePool)), cat(iif, ipv4Saddr(n.cfg.ServicePool))
	rule(forward, &expr.Verdict{Kind: expr.VerdictJump, Chain: links.Name})
	rule(forward, cat(svcDst, tcpOnly, []expr.Any{resetTCP})...)
	rule(forward, cat(svcDst, []expr.Any{drop})...)
	rule(forward, cat(svcSrc, []expr.Any{drop})...)
	rule(output, cat(svcDst, tcpOnly, []expr.Any{resetTCP})...)
	rule(output, cat(svcDst, []expr.Any{drop})...)
	// To the host: only replies to connections the host opened.
	rule(input, cat(iif, established, []expr.Any{acc})...)
	rule(input, cat(iif, []expr.Any{drop})...)
	// Between containers: nothing. Into a container from elsewhere: only
	// replies (the host's own connections do not pass forward).
	rule(forward, cat(iif, oif, []expr.Any{drop})...)
	rule(forward, cat(oif, established, []expr.Any{acc})...)
	rule(forward, cat(oif, []expr.Any{drop})...)
	// Link-local (cloud metadata services) is never for containers.
	rule(forward, cat(iif, ipv4Daddr(netip.MustParsePrefix("169.254.0.0/16")), []expr.Any{drop})...)
	rule(post, cat(ipv4Saddr(n.cfg.Pool), notOif, []expr.Any{&expr.Masq{}})...)
	return c.Flush()
}

// cat joins rule expressions.
func cat(parts ...[]expr.Any) []expr.Any {
	var all []expr.Any
	for _, x := range parts {
		all = append(all, x...)
	}
	return all
}

// lastPart is the last /bits prefix of p.
func lastPart(p netip.Prefix, bits int) netip.Prefix {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:])
	binary.BigEndian.PutUint32(b[:], v+uint32(1)<<(32-p.Bits())-uint32(1)<<(32-bits))
	return netip.PrefixFrom(netip.AddrFrom4(b), bits)
}

func le32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

func ipv4Match(offset uint32, p netip.Prefix) []expr.Any {
	mask := net.CIDRMask(p.Bits(), 32)
	addr := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
	}
}

func ipv4Saddr(p netip.Prefix) []expr.Any { return ipv4Match(12, p) }
func ipv4Daddr(p netip.Prefix) []expr.Any { return ipv4Match(16, p) }

// linkName is the host end of id's veth: the prefix and a hash of the id,
// within the kernel's 15 characters.
func (n *Network) linkName(id string) string {
	h := sha256.Sum256([]byte(id))
	return n.cfg.LinkPrefix + hex.EncodeToString(h[:])[:15-len(n.cfg.LinkPrefix)]
}

// Addr returns the container address of id's veth, if it has one.
func (n *Network) Addr(id string) (netip.Addr, bool) {
	l, err := netlink.LinkByName(n.linkName(id))
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && n.cfg.Pool.Contains(ip) {
			return ip.Next(), true
		}
	}
	return netip.Addr{}, false
}

// attach gives the container whose init is pid a veth: eth0 with the /30's
// second address (fixed, when valid: a service's) and a default route
// through the host's end; its address joins group's set (none for "").
func (n *Network) attach(id string, pid int, fixed netip.Addr, group string) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	lock, err := os.OpenFile(n.cfg.LockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return netip.Addr{}, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return netip.Addr{}, err
	}
	var hostIP netip.Addr
	if fixed.IsValid() {
		if hostIP, err = n.serviceSlot(fixed); err != nil {
			return netip.Addr{}, err
		}
	} else {
		if hostIP, err = n.freeSlot(lastSlot(lock)); err != nil {
			return netip.Addr{}, err
		}
		recordSlot(lock, hostIP)
	}
	ctrIP := hostIP.Next()
	name := n.linkName(id)
	peer := "p" + name[1:]
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer, PeerNamespace: netlink.NsPid(pid)}
	if err := netlink.LinkAdd(veth); err != nil {
		return netip.Addr{}, fmt.Errorf("add veth %s: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = netlink.LinkDel(veth) // undoing a failed setup: its error is the one returned
		}
	}()
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0) // absent on a host without IPv6
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: ipnet(hostIP, 30)}); err != nil {
		return netip.Addr{}, fmt.Errorf("address %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return netip.Addr{}, err
	}
	if err := configureInside(pid, peer, ctrIP, hostIP); err != nil {
		return netip.Addr{}, err
	}
	// Before anything can send from the address: it may have been
	// another app's, and still be in that app's set.
	if err := n.joinGroup(ctrIP, group); err != nil {
		return netip.Addr{}, fmt.Errorf("network group: %w", err)
	}
	ok = true
	return ctrIP, nil
}

func configureInside(pid int, peer string, ctrIP, hostIP netip.Addr) error {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("container netns: %w", err)
	}
	defer func() { _ = ns.Close() }()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("container netns: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := h.LinkSetName(l, "eth0"); err != nil {
		return err
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipnet(ctrIP, 30)}); err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return err
		}
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: hostIP.AsSlice()})
}

func ipnet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
}

// lastSlot is the host address of the /30 handed out last, as the
// allocation's lock file records it (invalid when it records none).
func lastSlot(lock *os.File) netip.Addr {
	b := make([]byte, 64)
	k, _ := lock.ReadAt(b, 0)
	a, _ := netip.ParseAddr(strings.TrimSpace(string(b[:k])))
	return a
}

// recordSlot records hostIP's /30 as the one handed out last; losing the
// record only makes the next allocation start from the pool's beginning.
func recordSlot(lock *os.File, hostIP netip.Addr) {
	if err := lock.Truncate(0); err == nil {
		_, _ = lock.WriteAt([]byte(hostIP.String()+"\n"), 0)
	}
}

// freeSlot returns the host address (.1) of the first /30 of the pool no
// link uses after last's (the one handed out last), wrapping around at
// the pool's end: an address a container had is the last to be given out
// again, never at once. While a dead instance's address is still listed
// (its state changes once its container is deleted), what reaches that
// address must not be another app's new container. Slot 0 is left out, so
// no container gets the pool's first address.
func (n *Network) freeSlot(last netip.Addr) (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && n.cfg.Pool.Contains(ip) {
			used[slotOf(ip)] = true
		}
	}
	base := n.cfg.Pool.Addr().As4()
	start := binary.BigEndian.Uint32(base[:])
	slots := uint32(1) << (32 - n.cfg.Pool.Bits()) / 4
	from := uint32(0) // the slot after which to look
	if last.Is4() && n.cfg.Pool.Contains(last) {
		l := slotOf(last).As4()
		from = (binary.BigEndian.Uint32(l[:]) - start) / 4
	}
	for k := uint32(1); k < slots; k++ {
		i := (from+k-1)%(slots-1) + 1 // from+1 … slots-1, then 1 … from
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], start+4*i)
		if s := netip.AddrFrom4(b); !used[s] && !n.cfg.ServicePool.Contains(s) {
			return s.Next(), nil
		}
	}
	return netip.Addr{}, errors.New("network pool exhausted")
}

// serviceSlot checks that addr is a container address (.2 of a /30) in
// the service pool that no link holds, and returns the host's end.
func (n *Network) serviceSlot(addr netip.Addr) (netip.Addr, error) {
	if !n.cfg.ServicePool.Contains(addr) || addr.As4()[3]&3 != 2 {
		return netip.Addr{}, fmt.Errorf("service address %s: not a container address of the service pool %s", addr, n.cfg.ServicePool)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && slotOf(ip) == slotOf(addr) {
			return netip.Addr{}, fmt.Errorf("service address %s is in use", addr)
		}
	}
	return addr.Prev(), nil
}

// ServicePool is where services' addresses come from.
func (n *Network) ServicePool() netip.Prefix { return n.cfg.ServicePool }

func slotOf(ip netip.Addr) netip.Addr {
	b := ip.As4()
	b[3] &^= 3
	return netip.AddrFrom4(b)
}

// detach deletes id's host veth if it is still there (its namespace going
// away normally takes it along) and takes addr, the address it had (looked
// up while the container still ran), out of the group sets.
func (n *Network) detach(id string, addr netip.Addr) error {
	var errs []error
	if addr.IsValid() {
		// Otherwise it may stay in a set: attach scrubs it before reuse.
		errs = append(errs, n.leaveGroups(addr))
	}
	if l, err := netlink.LinkByName(n.linkName(id)); err == nil {
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// links returns the names of the host ends of all veths with the prefix.
func (n *Network) links() []string {
	ls, _ := netlink.LinkList()
	var names []string
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, n.cfg.LinkPrefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}
