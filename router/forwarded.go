package router

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Behind a load balancer or CDN that terminates connections (Config.
// TrustedProxies), the TCP peer is that proxy, not the client. From a trusted
// peer the router believes X-Forwarded-For (the client is the rightmost
// address that is not itself a trusted proxy), X-Forwarded-Proto and
// X-Forwarded-Port; from anyone else it ignores them, as it always did.

// maxForwardedHops bounds the X-Forwarded-For chain the router walks and
// passes on.
const maxForwardedHops = 20

// forwarded is what a request says about its client.
type forwarded struct {
	clientIP string // the client, for X-Real-Ip and the access log
	chain    string // X-Forwarded-For to send: the trusted chain, then the peer
	proto    string // "" unless a trusted proxy said http or https
	port     string // "" unless a trusted proxy gave a port
}

func (r *Router) trusted(ip string) bool {
	if len(r.cfg.TrustedProxies) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range r.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor works out the client of req, whose TCP peer is peer.
func (r *Router) forwardedFor(req *http.Request, peer string) forwarded {
	f := forwarded{clientIP: peer, chain: peer}
	if !r.trusted(peer) {
		return f
	}
	var hops []string
	for _, v := range req.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	if len(hops) > maxForwardedHops {
		hops = hops[len(hops)-maxForwardedHops:]
	}
	// Walk from the nearest hop outwards while the hops are trusted; the
	// first one that is not is the client. A hop that is not an address
	// ends the walk at the last trusted one.
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			hops = hops[i+1:]
			break
		}
		hops[i] = a.Unmap().String()
		f.clientIP = hops[i]
		if !r.trusted(hops[i]) {
			hops = hops[i:]
			break
		}
	}
	f.chain = strings.Join(append(hops, peer), ", ")
	if p := lastValue(req.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
		f.proto = p
	}
	if p := lastValue(req.Header.Get("X-Forwarded-Port")); p != "" {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			f.port = strconv.Itoa(n)
		}
	}
	return f
}

// lastValue is the last element of a comma-separated header value, lower-cased.
func lastValue(v string) string {
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(v))
}
