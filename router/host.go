package router

import (
	"strings"

	"github.com/skiffhq/skiff"
)

// maxHostLen is the longest DNS name (253) plus room for a port.
const maxHostLen = 260

// CanonicalHost returns host as the route table keys it: lower-case, without
// a port and without a trailing dot. ok is false for anything that is not a
// plain DNS name or IP literal (empty, control characters, non-ASCII, bad
// port), which the router answers with 400. It allocates only when host has
// upper-case letters.
func CanonicalHost(host string) (canon string, ok bool) {
	if host == "" || len(host) > maxHostLen {
		return "", false
	}
	if host[0] == '[' { // IPv6 literal, with or without a port
		end := strings.IndexByte(host, ']')
		if end < 0 || (end+1 < len(host) && !validPort(host[end+1:])) {
			return "", false
		}
		h := host[1:end]
		for i := 0; i < len(h); i++ {
			c := h[i]
			if !(isHex(c) || c == ':' || c == '.') {
				return "", false
			}
		}
		return lower(host[:end+1]), true
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if !validPort(host[i:]) {
			return "", false
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return "", false
	}
	upper := false
	prev := byte('.')
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c >= 'A' && c <= 'Z':
			upper = true
		case c == '.':
			if prev == '.' {
				return "", false // empty label
			}
		default:
			return "", false
		}
		prev = c
	}
	if upper {
		return strings.ToLower(host), true
	}
	return host, true
}

// validPort accepts ":" followed by 1 to 5 digits, and a bare ":" (RFC 3986
// allows an empty port).
func validPort(p string) bool {
	if p == "" || p[0] != ':' || len(p) > 6 {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// ValidateDomain checks a custom domain as an admin command receives it and
// returns its canonical form: a DNS name of at least two labels, optionally
// "*." followed by one (wildcards), without port or IP literal.
func ValidateDomain(d string) (string, error) {
	name := d
	wild := strings.HasPrefix(name, "*.")
	if wild {
		name = name[2:]
	}
	canon, ok := CanonicalHost(name)
	if !ok || strings.ContainsAny(name, ":[") || !strings.Contains(canon, ".") || len(canon) > 253 {
		return "", skiff.Errorf(skiff.EINVALID, "invalid domain %q: use a DNS name like www.example.com or *.example.com", clip(d))
	}
	for _, label := range strings.Split(canon, ".") {
		if len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", skiff.Errorf(skiff.EINVALID, "invalid domain %q: each label must be 1 to 63 characters and not start or end with '-'", clip(d))
		}
	}
	if isIPv4(canon) {
		return "", skiff.Errorf(skiff.EINVALID, "invalid domain %q: an IP address is not a domain", clip(d))
	}
	if wild {
		return "*." + canon, nil
	}
	return canon, nil
}

func isIPv4(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
