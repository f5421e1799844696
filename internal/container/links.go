package container

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Services and the groups linked to them.
//
// A container started with a NetGroup has its address in the group's set
// (named setPrefix+group) while it runs. A Link is a pair of rules in the
// links chain: the group's addresses may open TCP connections to the
// service's address and port, and the service may answer them. Everything
// else to or from the service pool is dropped after the links chain (see
// installRules), so the links chain is the whole of what reaches a
// service. The chain and the sets are kept across daemon restarts: apps
// and services keep running, and so must the paths between them.

const (
	linksChain = "links"
	setPrefix  = "g-"
)

var groupRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,47}$`)

// ValidGroup reports whether name can name a network group.
func ValidGroup(name string) bool { return groupRE.MatchString(name) }

var (
	tcpOnly = []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
	resetTCP = &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
)

// LinkRule is one open path: the addresses of Group may connect to
// Service on Port.
type LinkRule struct {
	Group   string
	Service netip.Addr
	Port    uint16
}

func (l LinkRule) key() string { return fmt.Sprintf("link %s %s %d", l.Group, l.Service, l.Port) }

func (n *Network) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: n.cfg.Table}
}

func (n *Network) groupSet(group string) *nftables.Set {
	return &nftables.Set{Table: n.table(), Name: setPrefix + group, KeyType: nftables.TypeIPAddr}
}

// joinGroup removes addr from every group set (it may have been another
// container's before) and, for a group, adds it to that group's set.
func (n *Network) joinGroup(addr netip.Addr, group string) error {
	if group != "" && !ValidGroup(group) {
		return fmt.Errorf("invalid network group %q", group)
	}
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := n.scrub(c, addr); err != nil {
		return err
	}
	if group != "" {
		s := n.groupSet(group)
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
		if err := c.SetAddElements(s, []nftables.SetElement{{Key: addr.AsSlice()}}); err != nil {
			return err
		}
	}
	return c.Flush()
}

// leaveGroups takes addr out of every group set.
func (n *Network) leaveGroups(addr netip.Addr) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := n.scrub(c, addr); err != nil {
		return err
	}
	return c.Flush()
}

// scrub queues the removal of addr from each group set holding it.
func (n *Network) scrub(c *nftables.Conn, addr netip.Addr) error {
	sets, err := c.GetSets(n.table())
	if err != nil {
		return fmt.Errorf("list sets: %w", err)
	}
	key := addr.AsSlice()
	for _, s := range sets {
		if !strings.HasPrefix(s.Name, setPrefix) {
			continue
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return fmt.Errorf("list set %s: %w", s.Name, err)
		}
		for _, e := range elems {
			if slices.Equal(e.Key, key) {
				if err := c.SetDeleteElements(s, []nftables.SetElement{{Key: key}}); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// Members lists the addresses in group's set.
func (n *Network) Members(group string) ([]netip.Addr, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	s, err := c.GetSetByName(n.table(), setPrefix+group)
	if err != nil {
		return nil, nil // no set: no member yet
	}
	elems, err := c.GetSetElements(s)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, e := range elems {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// Link opens the path from group's containers to the service at l.Service
// on l.Port. Linking twice is linking once.
func (n *Network) Link(l LinkRule) error {
	if !ValidGroup(l.Group) || !n.cfg.ServicePool.Contains(l.Service) || l.Port == 0 {
		return fmt.Errorf("link %s to %s:%d: invalid group, service address or port", l.Group, l.Service, l.Port)
	}
	return n.editLinks(func(c *nftables.Conn, existing map[string][]*nftables.Rule) error {
		if len(existing[l.key()]) > 0 {
			return nil
		}
		return n.addLink(c, l)
	})
}

// addLink queues Link's set and rules on c.
func (n *Network) addLink(c *nftables.Conn, l LinkRule) error {
	t := n.table()
	ch := &nftables.Chain{Name: linksChain, Table: t}
	s := n.groupSet(l.Group)
	if err := c.AddSet(s, nil); err != nil {
		return err
	}
	inGroup := func(offset uint32) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		}
	}
	svc := netip.PrefixFrom(l.Service, 32)
	port := make([]byte, 2)
	binary.BigEndian.PutUint16(port, l.Port)
	portAt := func(offset uint32) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		}
	}
	established := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le32(expr.CtStateBitESTABLISHED), Xor: le32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le32(0)},
	}
	acc := []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	ud := userdata.AppendString(nil, userdata.TypeComment, l.key())
	// To the service: from the group, to its port.
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: ud,
		Exprs: cat(inGroup(12), ipv4Daddr(svc), tcpOnly, portAt(2), acc)})
	// Back: the service's answers on connections the group opened.
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: ud,
		Exprs: cat(ipv4Saddr(svc), inGroup(16), tcpOnly, portAt(0), established, acc)})
	return nil
}

// Unlink closes the path Link opened; connections open on it are reset at
// their next packet. Unlinking what is not linked is not an error.
func (n *Network) Unlink(l LinkRule) error {
	return n.editLinks(func(c *nftables.Conn, existing map[string][]*nftables.Rule) error {
		return delRules(c, existing[l.key()])
	})
}

// RemoveGroup removes group's set and every link of it, in one step: its
// app is gone, so nothing joins the group again, and what stayed would be
// dead rules and sets in the table until a teardown. Removing a group that
// has neither is not an error.
func (n *Network) RemoveGroup(group string) error {
	if !ValidGroup(group) {
		return fmt.Errorf("invalid network group %q", group)
	}
	return n.editLinks(func(c *nftables.Conn, existing map[string][]*nftables.Rule) error {
		for k, rules := range existing {
			if !strings.HasPrefix(k, "link "+group+" ") {
				continue
			}
			if err := delRules(c, rules); err != nil {
				return err
			}
		}
		if s, err := c.GetSetByName(n.table(), setPrefix+group); err == nil {
			c.DelSet(s)
		}
		return nil
	})
}

// editLinks hands edit the links chain's rules by key, under n's lock, and
// applies what edit queued on c in one batch (nothing, if it queued none).
func (n *Network) editLinks(edit func(c *nftables.Conn, existing map[string][]*nftables.Rule) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	existing, err := n.linkRules(c)
	if err != nil {
		return err
	}
	if err := edit(c, existing); err != nil {
		return err
	}
	return c.Flush()
}

func delRules(c *nftables.Conn, rules []*nftables.Rule) error {
	for _, r := range rules {
		if err := c.DelRule(r); err != nil {
			return err
		}
	}
	return nil
}

// Links lists the open paths.
func (n *Network) Links() ([]LinkRule, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	existing, err := n.linkRules(c)
	if err != nil {
		return nil, err
	}
	var out []LinkRule
	for k := range existing {
		var l LinkRule
		var svc string
		if _, err := fmt.Sscanf(k, "link %s %s %d", &l.Group, &svc, &l.Port); err != nil {
			continue
		}
		if l.Service, err = netip.ParseAddr(svc); err == nil {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b LinkRule) int { return strings.Compare(a.key(), b.key()) })
	return out, nil
}

// linkRules returns the links chain's rules by their key.
func (n *Network) linkRules(c *nftables.Conn) (map[string][]*nftables.Rule, error) {
	rules, err := c.GetRules(n.table(), &nftables.Chain{Name: linksChain, Table: n.table()})
	if err != nil {
		return nil, fmt.Errorf("list link rules: %w", err)
	}
	out := map[string][]*nftables.Rule{}
	for _, r := range rules {
		if k, _ := userdata.GetString(r.UserData, userdata.TypeComment); strings.HasPrefix(k, "link ") {
			out[k] = append(out[k], r)
		}
	}
	return out, nil
}
